// SPDX-License-Identifier: Apache-2.0
// `vstore bench query|ingest`: registered once the benchmark library lands.
#include "cli/cli_common.hpp"

namespace vstore::cli {
void add_bench_commands(CLI::App&, const Globals&, Action&) {}
}  // namespace vstore::cli
