# SPDX-License-Identifier: Apache-2.0
"""The application's call sites (original-api-contract.md, section 4), each driven the way it
calls the module, on every backend: keyword arguments, filters, top_k values and the fields the
caller reads, checked field by field."""
from __future__ import annotations

import collections
import datetime as dt
import json
import math
from typing import Any, Dict, List

import numpy as np
import pytest

import vstore
import vstore.vector_store as vs

from conftest import N_ARTICLES

# The metadata fields callers read from search results, and their type when present.
# (Absent fields are left out, as the ChromaDB module did: the test data has no category for some.)
STRING_FIELDS = ("uri", "title", "summary", "topic", "news_source", "publication_date", "tags")
OPTIONAL_STRING_FIELDS = ("category", "sentiment", "future_signal", "time_to_impact", "driver_type")


def topic_counts(records: List[Dict[str, Any]]) -> collections.Counter[str]:
    return collections.Counter(str(r["topic"]) for r in records)


def check_hits(hits: Any, top_k: int) -> None:
    """The result shape every search call site relies on."""
    assert isinstance(hits, list)
    assert len(hits) <= top_k
    previous = -1.0
    for hit in hits:
        assert set(hit) == {"id", "score", "metadata"}
        assert isinstance(hit["id"], str) and hit["id"]
        assert isinstance(hit["score"], float)
        assert 0.0 <= hit["score"] <= 2.0  # cosine distance
        assert hit["score"] >= previous - 1e-12  # ascending
        previous = hit["score"]
        md = hit["metadata"]
        assert isinstance(md, dict)
        assert md["uri"] == hit["id"]
        for field in STRING_FIELDS:
            assert isinstance(md.get(field), str), (field, md.get(field))
        for field in OPTIONAL_STRING_FIELDS:
            assert field not in md or isinstance(md[field], str), (field, md[field])
        assert isinstance(md["publication_date_ts"], int)
        # newsletter / tool plugins split tags on ","; kissql parses the date with fromisoformat
        assert all(isinstance(t, str) for t in md["tags"].split(","))
        dt.datetime.fromisoformat(md["publication_date"])


def test_auspex_chart_topic_search(backend: Dict[str, str], article_records: List[Dict[str, Any]]) -> None:
    topic, count = topic_counts(article_records).most_common(1)[0]
    hits = vs.search_articles(query=f"articles about {topic}", top_k=100, metadata_filter={"topic": topic})
    check_hits(hits, 100)
    assert len(hits) == min(100, count)
    assert all(h["metadata"]["topic"] == topic for h in hits)
    for h in hits:  # fields _get_articles_for_chart reads
        md = h["metadata"]
        for field in ("title", "summary", "category", "publication_date", "news_source"):
            assert field in md


def test_chat_path_and_filter_with_publication_date_string(
    backend: Dict[str, str], article_records: List[Dict[str, Any]]
) -> None:
    topic = topic_counts(article_records).most_common(1)[0][0]
    dates = sorted(str(r["publication_date"]) for r in article_records if r["topic"] == topic)
    cutoff = dates[len(dates) // 2][:10]  # a day in the middle
    since = f"{cutoff} 00:00:00"
    expected = sum(1 for d in dates if d[:10] >= cutoff)
    hits = vs.search_articles(
        query="quarterly results and shares",
        top_k=500,
        metadata_filter={"$and": [{"topic": topic}, {"publication_date": {"$gte": since}}]},
    )
    check_hits(hits, 500)
    assert len(hits) == expected
    for h in hits:
        assert h["metadata"]["topic"] == topic
        assert h["metadata"]["publication_date"][:10] >= cutoff
        similarity_score = h["score"]  # auspex_service renames it
        assert isinstance(similarity_score, float)


def test_auspex_tools_and_filter_with_publication_date_ts(
    backend: Dict[str, str], article_records: List[Dict[str, Any]]
) -> None:
    topic = topic_counts(article_records).most_common(2)[1][0]
    stamps = sorted(
        int(dt.datetime.fromisoformat(str(r["publication_date"]).replace("Z", "+00:00")).timestamp())
        for r in article_records
        if r["topic"] == topic
    )
    epoch = stamps[len(stamps) // 3]
    day = epoch - epoch % 86400  # Chroma keeps the day; compare from its midnight on both sides
    expected = sum(1 for s in stamps if s >= day)
    hits = vs.search_articles(
        "oil and energy prices",
        top_k=1000,
        metadata_filter={"$and": [{"topic": topic}, {"publication_date_ts": {"$gte": day}}]},
    )
    check_hits(hits, 1000)
    assert len(hits) == expected
    assert all(h["metadata"]["publication_date_ts"] >= day for h in hits)


def test_plugin_and_newsletter_unfiltered(backend: Dict[str, str]) -> None:
    hits = vs.search_articles(query="central bank interest rates", top_k=50, metadata_filter=None)
    check_hits(hits, 50)
    assert len(hits) == 50
    for h in hits:  # what the newsletter handler reads
        md = h["metadata"]
        link = md.get("url") or md.get("link") or md.get("uri") or h["id"]
        assert link
        assert isinstance(md.get("publication_date") or md.get("pub_date"), str)


def test_kissql_facets_top_k_100000_with_empty_filter(backend: Dict[str, str]) -> None:
    hits = vs.search_articles("grain harvest", top_k=100000, metadata_filter={})
    check_hits(hits, 100000)
    assert len(hits) == N_ARTICLES  # every stored article, for the facet counts
    facets = collections.Counter(h["metadata"]["topic"] for h in hits)
    assert sum(facets.values()) == N_ARTICLES
    timeline = collections.Counter(dt.datetime.fromisoformat(h["metadata"]["publication_date"]).date() for h in hits)
    assert sum(timeline.values()) == N_ARTICLES


def test_kissql_flat_multi_key_filter_is_and(backend: Dict[str, str], article_records: List[Dict[str, Any]]) -> None:
    pairs = collections.Counter((str(r["topic"]), str(r.get("category"))) for r in article_records if r.get("category"))
    (topic, category), count = pairs.most_common(1)[0]
    hits = vs.search_articles("trade", top_k=1000, metadata_filter={"topic": topic, "category": category})
    check_hits(hits, 1000)
    assert len(hits) == count
    assert all(h["metadata"]["topic"] == topic and h["metadata"]["category"] == category for h in hits)


def test_routes_patterns_wildcard_lists_newest(backend: Dict[str, str], article_records: List[Dict[str, Any]]) -> None:
    topic = topic_counts(article_records).most_common(1)[0][0]
    hits = vs.search_articles("*", top_k=20, metadata_filter={"topic": topic, "news_source": "Reuters"})
    assert len(hits) == 20
    assert all(h["score"] == 0.0 for h in hits)
    stamps = [h["metadata"]["publication_date_ts"] for h in hits]
    assert stamps == sorted(stamps, reverse=True)
    newest = max(
        int(dt.datetime.fromisoformat(str(r["publication_date"]).replace("Z", "+00:00")).timestamp())
        for r in article_records
        if r["topic"] == topic
    )
    assert stamps[0] // 86400 == newest // 86400
    avg_score = sum(float(h["score"]) for h in hits) / len(hits)  # /statistics
    assert avg_score == 0.0


def test_similar_articles_for_routes_and_news_feed(backend: Dict[str, str], article_records: List[Dict[str, Any]]) -> None:
    uri = str(article_records[0]["uri"])
    hits = vs.similar_articles(uri, top_k=5)
    check_hits(hits, 5)
    assert len(hits) == 5
    assert uri not in [h["id"] for h in hits]
    # news_feed_service: keeps score > 0.2 and lower-cases title and summary
    for h in hits:
        assert isinstance(h["metadata"]["title"].lower(), str)
        assert isinstance(h["metadata"]["summary"].lower(), str)
    # /api/embedding_neighbours
    neighbours = [{"id": r["id"], "distance": r["score"]} for r in vs.similar_articles(uri, 3)]
    assert [n["id"] for n in neighbours] == [h["id"] for h in hits[:3]]
    assert vs.similar_articles("no-such-article", top_k=5) == []


def test_get_by_ids_for_vector_summary(backend: Dict[str, str], article_records: List[Dict[str, Any]]) -> None:
    ids = [str(r["uri"]) for r in article_records[:5]] + ["no-such-article"]
    got = vs.get_by_ids(ids=ids, include=["metadatas", "documents"])
    assert set(got) == {"ids", "metadatas", "documents", "embeddings"}
    assert sorted(got["ids"]) == sorted(ids[:5])
    by_id = {str(r["uri"]): r for r in article_records}
    for i, md, doc in zip(got["ids"], got["metadatas"], got["documents"]):
        assert "uri" not in md
        assert md["title"] == by_id[i]["title"]
        assert doc == by_id[i]["summary"]
    with_vectors = vs.get_by_ids(ids[:2], include=["embeddings"])
    assert len(with_vectors["embeddings"]) == 2 and len(with_vectors["embeddings"][0]) == 384
    assert vs.get_by_ids([]) == {"ids": [], "metadatas": [], "documents": [], "embeddings": []}


def test_get_vectors_by_metadata_shape_and_rows(backend: Dict[str, str], article_records: List[Dict[str, Any]]) -> None:
    topic, count = topic_counts(article_records).most_common(1)[0]
    vectors, metadatas, ids = vs.get_vectors_by_metadata(limit=10, where={"topic": topic})
    assert isinstance(vectors, np.ndarray) and vectors.dtype == np.float32
    assert vectors.shape == (10, 384)
    assert len(metadatas) == 10 and len(ids) == 10
    assert all(md["topic"] == topic for md in metadatas)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    everything, _, all_ids = vs.get_vectors_by_metadata()
    assert everything.shape == (N_ARTICLES, 384) and len(set(all_ids)) == N_ARTICLES
    none, none_md, none_ids = vs.get_vectors_by_metadata(where={"topic": "no-such-topic"})
    assert none.shape == (0, 384) and none_md == [] and none_ids == []
    # the stored vector of an article is the one search ranks by: distance to itself is 0
    hits = vs.search_by_vector(vectors[0], top_k=1)
    assert hits[0]["id"] == ids[0] and hits[0]["score"] < 1e-5


def test_embedding_projection_as_the_concurrency_test_calls_it(backend: Dict[str, str]) -> None:
    vectors, _, _ = vs.get_vectors_by_metadata(limit=10)
    result = vs.embedding_projection(vectors)
    assert set(result) == {"points", "centroids", "sizes"}
    assert len(result["points"]) == 10
    assert len(result["centroids"]) == 3 and len(result["centroids"][0]) == 384
    assert sum(result["sizes"].values()) == 10
    for p in result["points"]:
        # x and y are a UMAP layout now (the old code plotted the raw first two dimensions)
        assert isinstance(p["x"], float) and math.isfinite(p["x"])
        assert isinstance(p["y"], float) and math.isfinite(p["y"])
        assert p["size"] == result["sizes"][p["cluster"]]
    assert [(p["x"], p["y"]) for p in result["points"]] != [(float(v[0]), float(v[1])) for v in vectors]
    assert vs.embedding_projection(vectors) == result  # deterministic: seed 42
    json.dumps(result)  # plain Python numbers, unlike the old numpy ints
    with pytest.raises(ValueError):
        vs.embedding_projection(vectors[:2])
    with pytest.raises(vstore.InvalidArgument):
        vs.embedding_projection(vectors[:2])


def test_health_keys_the_application_tests_read(backend: Dict[str, str]) -> None:
    h = vs.check_chromadb_health()
    assert h["healthy"] is True, h
    assert h["collection_exists"] is True
    assert h["collection_count"] == N_ARTICLES
    assert h["thread_pool_size"] == 4
    assert h["error"] is None
    assert h["backend"] == backend["VECTOR_BACKEND"]
    full = vs.check_vector_health()
    assert full["backend"] == backend["VECTOR_BACKEND"]
    assert full["healthy"] is True
    assert full["embedder"]["available"] is True


def test_upsert_article_research_path(backend: Dict[str, str], article_records: List[Dict[str, Any]]) -> None:
    base = dict(article_records[1])
    article = {
        "uri": f"test:upsert:{backend['VECTOR_BACKEND']}",
        "title": "Zebra migration across the Serengeti",
        "summary": "Herds of zebra crossed the river.",
        "raw": "Herds of zebra and wildebeest crossed the Mara river in the annual migration.",
        "topic": "wildlife",
        "news_source": "Test Wire",
        "publication_date": dt.datetime(2025, 7, 3, 12, 0),  # a datetime, as the old code accepted
        "tags": ["zebra", "migration"],
        "category": base.get("category"),
        "sentiment": None,
    }
    try:
        assert vs.upsert_article(article) is None
        hits = vs.search_articles("zebra herds crossing a river", top_k=1)
        assert hits and hits[0]["id"] == article["uri"]
        md = hits[0]["metadata"]
        assert md["tags"] == "zebra, migration"
        assert md["publication_date_ts"] == int(dt.datetime(2025, 7, 3, 12, 0, tzinfo=dt.timezone.utc).timestamp())
        assert "sentiment" not in md or md["sentiment"] is None
        # no text: nothing stored, nothing raised
        assert vs.upsert_article({"uri": "test:no-text", "title": "  "}) is None
        assert vs.get_by_ids(["test:no-text"])["ids"] == []
    finally:
        assert vs.delete_embeddings([str(article["uri"])]) == 1
    assert vs.count_embeddings() == N_ARTICLES
