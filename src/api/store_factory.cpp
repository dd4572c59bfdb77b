// SPDX-License-Identifier: Apache-2.0
// open_store(): the VECTOR_BACKEND facade. It resolves where each backend lives and wires the
// dual store (primary, secondary, outbox) together; the stores themselves live in src/pg,
// src/chroma and api/dual_store.cpp. A dual store whose Chroma secondary cannot be reached at
// open still opens: DualStore keeps trying to open it (at most once a second), and meanwhile
// writes go to the primary and the outbox. The secondary's collection is created only by a
// command that writes (OpenOptions::create); for any other a missing collection is a
// secondary that cannot be opened yet (health reports it), never a collection made as a side
// effect.

#include <fmt/format.h>

#include "api/dual_store.hpp"
#include "chroma/chroma_store.hpp"
#include "vstore/article_store.hpp"
#include "vstore/vector_store.hpp"

namespace vstore {
namespace {

Result<std::unique_ptr<VectorStore>> open_chroma(const Config& config, const OpenOptions& options) {
  chroma::ChromaOptions chroma_options;
  chroma_options.create_collection = options.create;
  VS_TRY_ASSIGN(auto store, chroma::ChromaStore::open(config, chroma_options));
  return std::unique_ptr<VectorStore>(std::move(store));
}

}  // namespace

Result<std::unique_ptr<VectorStore>> open_store(const Config& config, const OpenOptions& options) {
  switch (config.backend) {
    case BackendKind::pgvector: {
      VS_TRY_ASSIGN(std::string conninfo, resolve_conninfo(config));
      return open_pg_store(conninfo, config);
    }
    case BackendKind::chromadb: return open_chroma(config, options);
    case BackendKind::dual: {
      VS_TRY_ASSIGN(std::string conninfo, resolve_conninfo(config));
      VS_TRY_ASSIGN(auto pg, open_pg_store(conninfo, config));
      const OpenOptions chroma_options = options;
      const bool chroma_primary = config.primary == BackendKind::chromadb;
      auto opened = open_chroma(config, chroma_options);
      std::unique_ptr<VectorStore> chroma;
      if (opened) {
        chroma = std::move(*opened);
      } else if (chroma_primary ||
                 !(opened.error().retryable() || (!options.create && opened.error().code() == ErrorCode::not_found))) {
        return fail(opened.error());
      }
      // When the secondary is down, chroma stays null: its writes wait in the outbox.
      api::DualStore::SecondaryOpener reopen;
      if (!chroma_primary) reopen = [config, chroma_options] { return open_chroma(config, chroma_options); };
      api::DualOptions dual;
      dual.shadow_compare = options.shadow_compare || config.shadow_compare;
      VS_TRY_ASSIGN(auto store, api::DualStore::open(chroma_primary ? std::move(chroma) : std::move(pg),
                                                     chroma_primary ? std::move(pg) : std::move(chroma),
                                                     chroma_primary ? "pgvector" : "chromadb", std::move(reopen),
                                                     conninfo, config, dual));
      return std::unique_ptr<VectorStore>(std::move(store));
    }
  }
  return fail(ErrorCode::internal, "unknown VECTOR_BACKEND");
}

}  // namespace vstore
