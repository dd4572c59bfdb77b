# SPDX-License-Identifier: Apache-2.0
"""How the module behaves beyond the call sites: errors (logged or strict), parity with the
CLI, async calls that never block the loop, two stores in one process, shutdown, no random
vectors, and the type information."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List

import numpy as np
import pytest

import vstore
import vstore.vector_store as vs

from conftest import N_ARTICLES, free_port, run_cli

QUERIES = ["oil prices and opec output", "wheat and corn exports", "bank merger talks", "quarterly net profit"]


# ---- errors -------------------------------------------------------------------------------------


def test_bad_filter_returns_empty_and_logs_then_raises_when_strict(
    backend: Dict[str, str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = {"topic": {"$like": "oil%"}}
    with caplog.at_level(logging.ERROR, logger="vstore"):
        assert vs.search_articles("oil", top_k=5, metadata_filter=bad) == []
    assert any("$like" in r.getMessage() and r.name == "vstore" for r in caplog.records), caplog.text
    monkeypatch.setenv("VSTORE_STRICT", "1")
    with pytest.raises(vstore.InvalidArgument) as err:
        vs.search_articles("oil", top_k=5, metadata_filter=bad)
    assert "$like" in str(err.value)
    with pytest.raises(vstore.InvalidArgument, match="top_k"):
        vs.search_articles("oil", top_k=0)
    with pytest.raises(vstore.InvalidArgument, match="top_k"):
        vs.search_articles("oil", top_k=100001)
    with pytest.raises(vstore.InvalidArgument, match="empty"):
        vs.search_articles("   ", top_k=5)
    with pytest.raises(vstore.NotFound):
        vs.similar_articles("no-such-article", top_k=3)
    with pytest.raises(vstore.InvalidArgument):
        vs.upsert_article({"title": "no uri"})
    with pytest.raises(vstore.InvalidArgument):
        vs.get_vectors_by_metadata(limit=-1)


def test_numpy_values_in_filters_and_articles(backend: Dict[str, str], article_records: List[Dict[str, Any]]) -> None:
    topic = str(article_records[0]["topic"])
    ts = np.int64(0)
    plain = vs.search_articles("oil", top_k=5, metadata_filter={"$and": [{"topic": topic}, {"publication_date_ts": {"$gte": 0}}]})
    numpy = vs.search_articles("oil", top_k=np.int64(5), metadata_filter={"$and": [{"topic": np.str_(topic)}, {"publication_date_ts": {"$gte": ts}}]})
    assert plain and numpy == plain
    assert vs.search_articles("oil", top_k=3, metadata_filter={"topic": {"$in": np.array([topic])}}) == vs.search_articles(
        "oil", top_k=3, metadata_filter={"topic": {"$in": [topic]}})


def test_invalid_strict_setting_is_named(backend: Dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSTORE_STRICT", "maybe")
    with pytest.raises(vstore.InvalidArgument, match='VSTORE_STRICT="maybe"'):
        vs.search_articles("oil", top_k=5)


def test_unreachable_database(use_env: Callable[[Dict[str, str]], None], monkeypatch: pytest.MonkeyPatch,
                              tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    use_env({"DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none?connect_timeout=2",
             "VSTORE_DATA_DIR": str(tmp_path)})
    with caplog.at_level(logging.ERROR, logger="vstore"):
        assert vs.search_articles("oil", top_k=5) == []
        vs.upsert_article({"uri": "x", "title": "t"})
    assert len([r for r in caplog.records if r.name == "vstore"]) >= 2
    h = vs.check_chromadb_health()
    assert h["healthy"] is False and h["collection_exists"] is False and isinstance(h["error"], str)
    assert vs.check_vector_health()["healthy"] is False
    vectors, metadatas, ids = vs.get_vectors_by_metadata()
    assert vectors.shape == (0, 0) and metadatas == [] and ids == []
    monkeypatch.setenv("VSTORE_STRICT", "1")
    with pytest.raises(vstore.Unavailable):
        vs.search_articles("oil", top_k=5)


def test_no_embedder_means_no_random_vectors(
    embedded: Dict[str, str], use_env: Callable[[Dict[str, str]], None], monkeypatch: pytest.MonkeyPatch,
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    use_env({**embedded, "VSTORE_MODEL_DIR": str(tmp_path / "no-model")})
    before = vs.count_embeddings()
    with caplog.at_level(logging.WARNING, logger="vstore"):
        assert vs.search_articles("oil", top_k=5) == []
        vs.upsert_article({"uri": "test:unembedded", "title": "Never stored"})
    assert vs.count_embeddings() == before  # the skip stored nothing
    assert "embedder" in caplog.text
    assert vs.check_vector_health()["embedder"]["available"] is False
    # what needs no embedder still works
    assert len(vs.similar_articles(vs.get_vectors_by_metadata(limit=1)[2][0], top_k=2)) == 2
    monkeypatch.setenv("VSTORE_STRICT", "1")
    with pytest.raises(vstore.VstoreError, match="embedder"):
        vs.search_articles("oil", top_k=5)


def test_ctrl_c_stops_a_bulk_upsert_before_anything_is_written(
    embedded: Dict[str, str], article_records: List[Dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VSTORE_DATA_DIR", embedded["VSTORE_DATA_DIR"])
    monkeypatch.delenv("DATABASE_URL", raising=False)
    store = vstore.Store(backend="pgvector")
    batch = [{**r, "uri": f"test:interrupt:{i}"} for i, r in enumerate(article_records * 2)]  # 800 to embed

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    started = time.perf_counter()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt):
            store.upsert_articles(batch)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - started
    try:
        # stopped after the slice that was embedding (64 texts), not after all 800
        assert elapsed < 5.0, f"took {elapsed:.1f} s to stop"
        assert store.count()["with_embedding"] == N_ARTICLES
        assert store.get_vectors(None, {"uri": {"$in": [b["uri"] for b in batch[:100]]}})[2] == []
    finally:
        store.close()


# ---- parity with the CLI --------------------------------------------------------------------------


def test_module_and_cli_search_return_the_same_ids_and_scores(backend: Dict[str, str]) -> None:
    for query, where in [(QUERIES[0], None), (QUERIES[1], {"topic": "grain"}), (QUERIES[2], {"topic": "acq", "news_source": "Reuters"})]:
        args = ["search", query, "--top-k", "10", "--json"]
        if where:
            args += ["--where", json.dumps(where)]
        cli = json.loads(run_cli(args, backend).stdout)
        module = vs.search_articles(query=query, top_k=10, metadata_filter=where)
        assert [h["id"] for h in module] == [h["id"] for h in cli]
        # The CLI prints each score as the shortest decimal of its float32 value (the precision
        # of the vectors); the module returns the double PostgreSQL computed: equal as float32.
        assert [np.float32(h["score"]) for h in module] == [np.float32(h["score"]) for h in cli]
        assert [h["metadata"] for h in module] == [h["metadata"] for h in cli]


# ---- async --------------------------------------------------------------------------------------


def test_100_concurrent_async_searches_never_block_the_loop(backend: Dict[str, str]) -> None:
    expected = {q: vs.search_articles(q, top_k=10) for q in QUERIES}

    async def main() -> float:
        gaps: List[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        results = await asyncio.gather(
            *(vs.search_articles_async(query=QUERIES[i % 4], top_k=10, metadata_filter=None) for i in range(100))
        )
        done.set()
        await tick
        for i, hits in enumerate(results):
            assert hits == expected[QUERIES[i % 4]]
        assert len(gaps) > 5
        return max(gaps)

    worst = asyncio.run(main())
    assert worst < 0.050, f"the event loop was blocked for {worst * 1000:.1f} ms"


def test_every_async_variant_matches_its_sync_form(backend: Dict[str, str]) -> None:
    uri = vs.get_vectors_by_metadata(limit=1)[2][0]

    async def main() -> None:
        assert await vs.search_articles_async("wheat", top_k=5) == vs.search_articles("wheat", top_k=5)
        assert await vs.similar_articles_async(uri, top_k=4) == vs.similar_articles(uri, top_k=4)
        a, am, ai = await vs.get_vectors_by_metadata_async(limit=5, where={"topic": "earn"})
        b, bm, bi = vs.get_vectors_by_metadata(limit=5, where={"topic": "earn"})
        assert ai == bi and am == bm and np.array_equal(a, b)
        assert (await vs.get_by_ids_async([uri]))["ids"] == [uri]
        projection = await vs.embedding_projection_async(a)
        assert set(projection) == {"points", "centroids", "sizes"}
        assert await vs.search_by_vector_async(a[0], top_k=3) == vs.search_by_vector(a[0], top_k=3)
        assert await vs.upsert_article_async({"uri": "test:async", "title": "Copper mine strike in Chile"}) is None
        assert vs.delete_embeddings(["test:async"]) == 1

    asyncio.run(main())


# ---- several stores, shutdown -------------------------------------------------------------------


def test_one_store_per_backend_in_one_process(embedded: Dict[str, str], chroma: Dict[str, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSTORE_DATA_DIR", embedded["VSTORE_DATA_DIR"])
    monkeypatch.setenv("CHROMA_URL", chroma["CHROMA_URL"])
    monkeypatch.delenv("DATABASE_URL", raising=False)
    pg = vstore.Store(backend="pgvector")
    ch = vstore.Store(backend="chromadb")
    try:
        assert (pg.backend, ch.backend) == ("pgvector", "chromadb")
        overlaps = []
        for q in QUERIES:
            a = [h["id"] for h in pg.search(q, 10)]
            b = [h["id"] for h in ch.search(q, 10)]
            overlaps.append(len(set(a) & set(b)) / 10)
        # a validation script's comparison: both hold the same vectors, HNSW on both sides
        assert sum(overlaps) / len(overlaps) >= 0.9, overlaps
        assert pg.count()["with_embedding"] == ch.count()["with_embedding"] == N_ARTICLES
    finally:
        pg.close()
        ch.close()
    with pytest.raises(vstore.Unavailable, match="closed"):
        pg.search("oil", 3)


def test_dual_backend_through_the_module(embedded: Dict[str, str], chroma: Dict[str, str],
                                         use_env: Callable[[Dict[str, str]], None]) -> None:
    use_env({"VSTORE_DATA_DIR": embedded["VSTORE_DATA_DIR"], "CHROMA_URL": chroma["CHROMA_URL"], "VECTOR_BACKEND": "dual"})
    h = vs.check_vector_health()
    assert h["backend"] == "dual" and h["healthy"] is True, h
    hits = vs.search_articles("crude oil", top_k=5)
    assert len(hits) == 5
    article = {"uri": "test:dual", "title": "Tin prices rally on supply fears", "topic": "tin"}
    vs.upsert_article(article)
    pg = vstore.Store(backend="pgvector")
    ch = vstore.Store(backend="chromadb")
    try:
        # written to both (the secondary through the outbox, drained in the background)
        deadline = time.monotonic() + 20
        while not ch.get_vectors(None, {"uri": "test:dual"})[2] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pg.get_vectors(None, {"uri": "test:dual"})[2] == ["test:dual"]
        assert ch.get_vectors(None, {"uri": "test:dual"})[2] == ["test:dual"]
    finally:
        assert vs.delete_embeddings(["test:dual"]) == 1
        pg.close()
        ch.close()


def test_shutdown_then_use_again(backend: Dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    first = vs.search_articles("copper", top_k=3)
    with caplog.at_level(logging.INFO, logger="vstore"):
        vs.shutdown_vector_store()
        vs.shutdown_vector_store()  # twice is fine
    assert "Vector store shutdown complete" in caplog.text
    assert vs.search_articles("copper", top_k=3) == first
    assert asyncio.run(vs.search_articles_async("copper", top_k=3)) == first


def test_thread_pool_size_setting(backend: Dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    vs.shutdown_vector_store()
    monkeypatch.setenv("CHROMADB_THREAD_POOL_SIZE", "7")
    assert vs.check_chromadb_health()["thread_pool_size"] == 7
    monkeypatch.setenv("CHROMADB_THREAD_POOL_SIZE", "lots")
    h = vs.check_chromadb_health()
    assert h["healthy"] is False and 'CHROMADB_THREAD_POOL_SIZE="lots"' in h["error"]


def test_dotenv_is_read_like_the_cli(embedded: Dict[str, str], use_env: Callable[[Dict[str, str]], None],
                                     tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_env({})
    (tmp_path / ".env").write_text(f"VSTORE_DATA_DIR={embedded['VSTORE_DATA_DIR']}\nVECTOR_BACKEND=pgvector\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(vs, "_dotenv", None)
    assert vs.count_embeddings() == N_ARTICLES
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / ".env").write_text("PGVECTOR_HNSW_M=abc\n")
    vs.shutdown_vector_store()
    monkeypatch.chdir(bad)
    monkeypatch.setenv("VSTORE_STRICT", "1")
    with pytest.raises(vstore.InvalidArgument, match='PGVECTOR_HNSW_M="abc"'):
        vs.count_embeddings()


# ---- install and types --------------------------------------------------------------------------


def test_the_shim_exports_the_application_api(tmp_path: pathlib.Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "vector_store.py").write_text("from vstore.vector_store import *\n")
    code = (
        "from app.vector_store import (upsert_article, upsert_article_async, search_articles, "
        "search_articles_async, similar_articles, similar_articles_async, get_vectors_by_metadata, "
        "get_vectors_by_metadata_async, embedding_projection, embedding_projection_async, get_by_ids, "
        "get_by_ids_async, check_chromadb_health, check_vector_health, shutdown_vector_store, "
        "_get_collection, get_chroma_client, _embed_texts)\n"
        "import inspect\n"
        "assert inspect.iscoroutinefunction(search_articles_async)\n"
        "print(inspect.signature(search_articles))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("(query: 'str', top_k: 'int' = 10, metadata_filter:")


CALL_SITES = '''
from typing import Any, Dict, List
import numpy as np
from app.vector_store import (search_articles, similar_articles, get_vectors_by_metadata_async,
    embedding_projection_async, check_chromadb_health, upsert_article, upsert_article_async, get_by_ids)

async def chat(topic: str, limit: int, since: int) -> List[Dict[str, Any]]:
    results = search_articles(query=f"articles about {topic}", top_k=limit, metadata_filter={"topic": topic})
    results += search_articles("q", top_k=100000, metadata_filter={})
    results += search_articles(query="q", top_k=limit,
        metadata_filter={"$and": [{"topic": topic}, {"publication_date_ts": {"$gte": since}}]})
    for r in results:
        score: float = float(r["score"])
        tags = r["metadata"].get("tags", "").split(",")
    neighbours = [{"id": r["id"], "distance": r["score"]} for r in similar_articles("uri", top_k=5)]
    vecs, metas, ids = await get_vectors_by_metadata_async(limit=10, where={"topic": "technology"})
    shape: tuple[int, ...] = vecs.shape
    proj = await embedding_projection_async(np.zeros((10, 384), dtype=np.float32))
    points = proj["points"]
    ok: bool = check_chromadb_health()["healthy"]
    upsert_article({"uri": "u", "title": "t", "raw": "r"})
    await upsert_article_async({"uri": "u"})
    docs = get_by_ids(ids=["u"], include=["metadatas", "documents"])["documents"]
    return results
'''


def test_a_type_checker_accepts_the_call_sites(tmp_path: pathlib.Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "vector_store.py").write_text("from vstore.vector_store import *\n")
    (tmp_path / "calls.py").write_text(CALL_SITES)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "calls.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    # --strict flags the sample's own unused variables only as notes; errors must be none
    assert done.returncode == 0, done.stdout + done.stderr
    wrong = tmp_path / "wrong.py"
    wrong.write_text("from app.vector_store import search_articles\nsearch_articles(query=1, top_k='5')\n")
    refused = subprocess.run([sys.executable, "-m", "mypy", "wrong.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "query" in refused.stdout, refused.stdout


def test_package_ships_type_information() -> None:
    root = pathlib.Path(vstore.__file__).parent
    assert (root / "py.typed").exists()
    assert (root / "_native.pyi").exists()
