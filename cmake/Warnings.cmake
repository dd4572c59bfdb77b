# SPDX-License-Identifier: Apache-2.0
# vstore_warnings: the warning flags every first-party target links PRIVATE.
add_library(vstore_warnings INTERFACE)
target_compile_options(vstore_warnings INTERFACE -Wall -Wextra -Wpedantic -Wconversion -Wno-sign-conversion -Wno-missing-field-initializers)
if(VSTORE_DEV_MODE)
  target_compile_options(vstore_warnings INTERFACE -Werror)
endif()
