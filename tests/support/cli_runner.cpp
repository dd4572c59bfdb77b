// SPDX-License-Identifier: Apache-2.0
#include "support/cli_runner.hpp"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace vstore::testing {

std::string vstore_bin() {
  const char* bin = std::getenv("VSTORE_BIN");
  if (bin == nullptr || *bin == '\0') {
    std::fprintf(stderr, "VSTORE_BIN must name the vstore binary (run the tests through ctest)\n");
    std::abort();
  }
  return bin;
}

CmdResult run_shell(const std::string& dir, const std::string& command) {
  const std::filesystem::path err = std::filesystem::path(dir) / "stderr.txt";
  const std::string cmd = "cd '" + dir + "' && " + command + " 2>'" + err.string() + "'";
  CmdResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buf{};
  while (std::size_t n = std::fread(buf.data(), 1, buf.size(), pipe)) r.out.append(buf.data(), n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err);
  r.err.assign(std::istreambuf_iterator<char>(in), {});
  return r;
}

CmdResult run_vstore(const std::string& dir, const std::string& args, const std::string& env) {
  return run_shell(dir, "env -u DATABASE_URL -u VECTOR_BACKEND -u CHROMA_URL -u OPENBLAS_NUM_THREADS VSTORE_DATA_DIR='" +
                            dir + "/data' EMBEDDING_DIM=384 EMBEDDING_PROVIDER=hash " + env + " '" + vstore_bin() + "' " +
                            args);
}

}  // namespace vstore::testing
