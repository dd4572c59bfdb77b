# SPDX-License-Identifier: Apache-2.0
# Third-party dependencies, all from Debian packages (see scripts/setup.sh).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(fmt REQUIRED)
find_package(PostgreSQL REQUIRED)
# libcrypto's SHA-256: reindex's per-row content hash (embedding_text_hash).
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
if(VSTORE_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
