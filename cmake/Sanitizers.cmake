# SPDX-License-Identifier: Apache-2.0
# VSTORE_SANITIZE: build every target configured (libraries, CLI, tests) under sanitizers.
#   ""                   none (the default, and the test command's build)
#   "address"            AddressSanitizer + LeakSanitizer (scripts/sanitize.sh address)
#   "undefined"          UndefinedBehaviorSanitizer (scripts/sanitize.sh undefined)
#   "thread"             ThreadSanitizer (scripts/sanitize.sh thread runs the concurrent suites)
#   "address,undefined"  both in one build, by hand (it compiles about 2.3 times slower than either)
# scripts/sanitize.sh configures build-asan/, build-ubsan/ and build-tsan/ with it and runs the suites; every
# report is fatal (-fno-sanitize-recover=all), so a test that triggers one fails. The runtime
# options the tests use are in scripts/sanitizer_env.sh, suppressions in tests/sanitizers/
# (docs/robustness.md, "Sanitizers").
set(VSTORE_SANITIZE "" CACHE STRING "Sanitizers for every target: empty, address,undefined or thread")
set_property(CACHE VSTORE_SANITIZE PROPERTY STRINGS "" "address" "undefined" "thread" "address,undefined")
if(VSTORE_SANITIZE STREQUAL "")
  return()
elseif(NOT VSTORE_SANITIZE MATCHES "^(address,undefined|address|undefined|thread)$")
  message(FATAL_ERROR "VSTORE_SANITIZE=${VSTORE_SANITIZE}: expected empty, address,undefined, address, undefined or thread")
endif()
add_compile_options(-fsanitize=${VSTORE_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer)
# GCC 12 warns falsely about std::regex and std::function members under -fsanitize (seen in
# src/api/reindex.cpp); the warning stays on in the normal build.
add_compile_options(-Wno-maybe-uninitialized)
add_link_options(-fsanitize=${VSTORE_SANITIZE})
message(STATUS "vstore: building with -fsanitize=${VSTORE_SANITIZE}")
