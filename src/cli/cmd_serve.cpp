// SPDX-License-Identifier: Apache-2.0
// `vstore serve`: the HTTP service (vstore/http_service.hpp) on the configured store, until
// SIGTERM or SIGINT, which finish the requests in flight before the process exits.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "cli/cli_common.hpp"
#include "vstore/article_store.hpp"
#include "vstore/embedder.hpp"
#include "vstore/http_service.hpp"

namespace vstore::cli {
namespace {

// VSTORE_TEST_SERVE_DELAY_MS and VSTORE_TEST_MAP_DELAY_MS: for tests only
// (ServeOptions::test_delay_ms, test_map_delay_ms).
int test_env_ms(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return 0;
  return std::max(0, std::atoi(value));
}

// What the kept map is for: the backend, the store (redacted URL or the embedded cluster's
// directory, and the table or collection), the model and the dimension.
nlohmann::json map_key(const Config& cfg, ArticleStore& store) {
  nlohmann::json key{{"backend", std::string(to_string(cfg.backend))},
                     {"model", std::string(store.embedder().model())},
                     {"dimension", store.store().dimension()}};
  if (cfg.backend != BackendKind::chromadb) {
    key["database"] = cfg.database_url ? redact_url(*cfg.database_url)
                                       : "embedded " + std::filesystem::absolute(cfg.data_dir).lexically_normal().string();
    key["table"] = cfg.table;
  }
  if (cfg.backend != BackendKind::pgvector) {
    key["chroma"] = redact_url(cfg.chroma_url);
    key["collection"] = cfg.chroma_collection;
  }
  if (cfg.backend == BackendKind::dual) key["primary"] = std::string(to_string(cfg.primary));
  return key;
}

// The kept map's file: VSTORE_DATA_DIR/maps/map-HASH.json, HASH the FNV-1a 64 of the key (a
// store and model each get their own file).
std::filesystem::path map_file(const Config& cfg, const nlohmann::json& key) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : key.dump()) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return cfg.data_dir / "maps" / fmt::format("map-{:016x}.json", hash);
}

struct ServeArgs {
  std::string addr;  // empty: VSTORE_HTTP_ADDR
  ServeOptions limits;
  int workers = 4;
};

int run_serve(const Globals& globals, const ServeArgs& args) {
  // SIGTERM and SIGINT go to one thread that stops the service. They are blocked before any
  // thread starts (the pool's, the engine's, the store's), since threads inherit the mask: a
  // thread that did not block them would take the default action and end the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  auto cfg = load(globals);
  if (!cfg) return report(cfg.error());
  ServeOptions options = args.limits;
  options.addr = args.addr.empty() ? cfg->http_addr : args.addr;
  options.api_token = cfg->api_token;
  options.test_delay_ms = test_env_ms("VSTORE_TEST_SERVE_DELAY_MS");
  OpenOptions open;
  open.create = true;  // the service writes: a missing Chroma collection is created
  auto store = open_store(*cfg, open);
  if (!store) return report(store.error());
  auto embedder = make_embedder(*cfg);
  if (!embedder) return report(embedder.error());
  auto articles = std::make_shared<ArticleStore>(std::move(*store), std::move(*embedder), args.workers);
  if (options.map) {
    options.map_key = map_key(*cfg, *articles);
    options.map_file = map_file(*cfg, options.map_key);
    options.test_map_delay_ms = test_env_ms("VSTORE_TEST_MAP_DELAY_MS");
  }
  auto service = HttpService::create(articles, options);
  if (!service) return report(service.error());

  auto port = (*service)->bind();
  if (!port) return report(port.error());
  const std::string shown = options.addr.substr(0, options.addr.rfind(':')) + ":" + std::to_string(*port);
  std::printf("serve: listening on http://%s (backend %s, %s)\n", shown.c_str(), std::string(to_string(cfg->backend)).c_str(),
              options.api_token.empty() ? "no token" : "bearer token required");
  std::fflush(stdout);
  HttpService* running = service->get();
  std::atomic<bool> signalled{false};
  std::thread waiter([&stop_signals, &signalled, running] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (signalled.exchange(true)) return;  // the wake-up below, after run() ended by itself
    std::fprintf(stderr, "serve: %s received: finishing the requests in flight\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    running->stop();
  });
  auto served = (*service)->run();
  if (!signalled.exchange(true)) ::kill(::getpid(), SIGTERM);  // run() ended by itself: wake the waiter
  waiter.join();
  articles->shutdown();
  if (!served) return report(served.error());
  std::printf("serve: stopped\n");
  return k_exit_ok;
}

}  // namespace

void add_serve_commands(CLI::App& app, const Globals& globals, Action& action) {
  static ServeArgs args;
  auto* serve = app.add_subcommand(
      "serve", "the HTTP JSON API (search, similar, upsert, vectors, projection, the map of the collection, health, "
               "/v1/embeddings, /openapi.json) until SIGTERM; a bearer token (VSTORE_API_TOKEN) is required off loopback");
  serve->add_option("--addr", args.addr, "HOST:PORT to listen on (default VSTORE_HTTP_ADDR, 127.0.0.1:8080; port 0 picks one)");
  serve->add_option("--max-body-bytes", args.limits.max_body_bytes, "largest request body; more is 413")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30U))
      ->capture_default_str();
  serve->add_option("--max-top-k", args.limits.max_top_k, "largest top_k; more is 400")->check(CLI::Range(1, 100000))->capture_default_str();
  serve->add_option("--max-batch", args.limits.max_batch, "articles per batch upsert and texts per embeddings call; more is 413")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}))
      ->capture_default_str();
  serve->add_option("--max-vectors", args.limits.max_vectors, "largest limit of /v1/vectors and /v1/projection")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{10000000}))
      ->capture_default_str();
  serve->add_option("--timeout", args.limits.timeout_s, "seconds to read a request and to write its answer; a body that stops arriving gets 408")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  serve->add_option("--threads", args.limits.threads, "connections served at once")->check(CLI::Range(1, 4096))->capture_default_str();
  serve->add_flag("--no-map", [](std::int64_t) { args.limits.map = false; },
                  "no map of the collection (GET /v1/map): nothing is built at start");
  serve->add_flag("--no-access-log", [](std::int64_t) { args.limits.access_log = false; }, "no JSON line per request on stderr");
  serve->callback([&] { action = [&] { return run_serve(globals, args); }; });
}

}  // namespace vstore::cli
