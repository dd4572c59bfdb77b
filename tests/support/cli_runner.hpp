// SPDX-License-Identifier: Apache-2.0
// Test support: runs the built `vstore` binary (VSTORE_BIN, set by CTest) through a shell with
// a clean configuration, capturing its exit code, stdout and stderr.
#pragma once

#include <string>

namespace vstore::testing {

struct CmdResult {
  int code = -1;
  std::string out;
  std::string err;
};

/// Runs `cd DIR && COMMAND 2>DIR/stderr.txt` through the shell (COMMAND is shell text),
/// capturing its exit code, stdout and stderr.
CmdResult run_shell(const std::string& dir, const std::string& command);

/// The path of the vstore binary (VSTORE_BIN, set by CTest). Aborts the test binary when unset.
std::string vstore_bin();

/// Runs `cd DIR && env -u DATABASE_URL -u VECTOR_BACKEND -u CHROMA_URL VSTORE_DATA_DIR=DIR/data
/// EMBEDDING_DIM=384 EMBEDDING_PROVIDER=hash ENV vstore ARGS` (ENV and ARGS are shell text).
/// Aborts the test binary when VSTORE_BIN is not set.
CmdResult run_vstore(const std::string& dir, const std::string& args, const std::string& env = "");

}  // namespace vstore::testing
