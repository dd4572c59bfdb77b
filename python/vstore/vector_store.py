# SPDX-License-Identifier: Apache-2.0
"""The application's ``app.vector_store`` API, served by vstore's C++ core.

Put one line in ``app/vector_store.py``::

    from vstore.vector_store import *

and the application's calls (``search_articles(query=..., top_k=..., metadata_filter=...)`` and
the rest) work unchanged. Where the old code's two versions (ChromaDB and pgvector) differed,
what this module does is settled in ``docs/python.md``, point by point.

Failures: like the old code, the functions return ``[]`` (or an empty result) on an error and
log its cause at ERROR level on the logger ``vstore``. With ``VSTORE_STRICT=1`` (environment
or ``.env``) they raise the typed exceptions of :mod:`vstore.errors` instead. Two things always
raise, as they did before: ``embedding_projection`` with unusable input, and ``_embed_texts``.

Configuration: the same environment variables and ``.env`` file as the ``vstore`` CLI
(``VECTOR_BACKEND``, ``DATABASE_URL`` or the embedded cluster under ``VSTORE_DATA_DIR``,
``CHROMA_URL``, ``EMBEDDING_PROVIDER``, ...), read when the store is first used. The async
variants run on a pool of ``CHROMADB_THREAD_POOL_SIZE`` threads (default 4); the C++ work
releases the GIL, so they never block the event loop.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as _dt
import decimal
import functools
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

import numpy as np
import numpy.typing as npt

from . import _native
from .errors import InvalidArgument, NotFound, VstoreError

__all__ = [
    "upsert_article",
    "upsert_article_async",
    "upsert_articles",
    "search_articles",
    "search_articles_async",
    "search_by_vector",
    "search_by_vector_async",
    "similar_articles",
    "similar_articles_async",
    "get_vectors_by_metadata",
    "get_vectors_by_metadata_async",
    "get_by_ids",
    "get_by_ids_async",
    "embedding_projection",
    "embedding_projection_async",
    "delete_embeddings",
    "count_embeddings",
    "check_chromadb_health",
    "check_pgvector_health",
    "check_vector_health",
    "shutdown_vector_store",
    "get_store",
    "get_chroma_client",
    "_get_collection",
    "_embed_texts",
]

logger = logging.getLogger("vstore")

Hit = Dict[str, Any]
"""One search result: ``{"id": uri, "score": cosine distance, "metadata": {...}}``."""

VectorsResult = Tuple[npt.NDArray[np.float32], List[Dict[str, Any]], List[str]]

_T = TypeVar("_T")

MAX_TOP_K = 100_000
_DEFAULT_POOL_SIZE = 4

_lock = threading.Lock()
_store: Optional[_native.Store] = None
_executor: Optional[concurrent.futures.ThreadPoolExecutor] = None
_dotenv: Optional[Dict[str, str]] = None


# ---- settings ------------------------------------------------------------------------------------


def _setting(name: str) -> Optional[str]:
    """The variable from the process environment, else from ./.env (read once); None if unset."""
    global _dotenv
    value = os.environ.get(name)
    if value is not None and value != "":
        return value
    if _dotenv is None:
        try:
            _dotenv = dict(_native.read_environment())
        except VstoreError as e:
            logger.error("cannot read .env: %s", e)
            _dotenv = {}
    value = _dotenv.get(name)
    return value if value else None


def _strict() -> bool:
    value = _setting("VSTORE_STRICT")
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in ("1", "true", "on", "yes"):
        return True
    if lowered in ("0", "false", "off", "no"):
        return False
    raise InvalidArgument(f'VSTORE_STRICT="{value}": expected 1, true, on, yes or 0, false, off, no')


def _pool_size() -> int:
    value = _setting("CHROMADB_THREAD_POOL_SIZE")
    if value is None:
        return _DEFAULT_POOL_SIZE
    try:
        size = int(value)
    except ValueError:
        size = 0
    if not 1 <= size <= 256:
        raise InvalidArgument(f'CHROMADB_THREAD_POOL_SIZE="{value}": expected an integer from 1 to 256')
    return size


# ---- the store and the pool ----------------------------------------------------------------------


def get_store() -> _native.Store:
    """The store the module-level functions use, opened from the environment on first use (and
    again after :func:`shutdown_vector_store`). Raises the vstore error that stopped it opening.
    For a second store in the same process (e.g. the other backend), make one directly:
    ``vstore.Store(backend="chromadb")``."""
    global _store
    store = _store
    if store is not None and not store.closed:
        return store
    with _lock:
        if _store is None or _store.closed:
            _strict()  # a bad VSTORE_STRICT is an error at start-up, like the other settings
            opened = _native.Store()
            if opened.embedder_error:
                logger.warning("embedder unavailable, text searches and upserts will fail: %s", opened.embedder_error)
            _store = opened
        return _store


def _get_executor() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    executor = _executor
    if executor is not None:
        return executor
    with _lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=_pool_size(), thread_name_prefix="vstore_worker_"
            )
        return _executor


async def _in_pool(fn: Callable[..., _T], *args: Any) -> _T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_get_executor(), functools.partial(fn, *args))


def _failed(operation: str, error: BaseException, default: _T, level: int = logging.ERROR) -> _T:
    """The one place a failure becomes the old code's empty result (or a raise, when strict)."""
    if _strict():
        raise error
    logger.log(level, "%s failed: %s", operation, error, exc_info=not isinstance(error, VstoreError))
    return default


# ---- argument checks and conversions -------------------------------------------------------------


def _check_top_k(top_k: Any, limit: int = MAX_TOP_K) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
        raise InvalidArgument(f"top_k must be an integer from 1 to {limit}, not {top_k!r}")
    if not 1 <= int(top_k) <= limit:
        raise InvalidArgument(f"top_k must be from 1 to {limit}, not {int(top_k)}")
    return int(top_k)


def _iso(value: Any) -> Any:
    """date and datetime as ISO 8601 text (a naive datetime counts as UTC, as the old code read
    it); Decimal as float; anything else unchanged."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def _prepare_filter(where: Any, name: str) -> Optional[Dict[str, Any]]:
    if where is None:
        return None
    if not isinstance(where, Mapping):
        raise InvalidArgument(f"{name} must be a dict or None, not {type(where).__name__}")

    def convert(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        return _iso(value)

    converted = convert(where)
    return converted if converted else None


def _prepare_article(article: Any) -> Dict[str, Any]:
    if not isinstance(article, Mapping):
        raise InvalidArgument(f"article must be a dict, not {type(article).__name__}")
    return {str(k): _iso(v) for k, v in article.items()}


# ---- the API -------------------------------------------------------------------------------------


def upsert_article(article: Mapping[str, Any]) -> None:
    """Embeds the article's ``raw``, else ``summary``, else ``title`` and stores the vector with
    its metadata. An article without text is skipped (logged at DEBUG); one that cannot be
    embedded (no embedder) is skipped with the cause logged. Never raises unless strict."""
    try:
        stored = get_store().upsert_article(_prepare_article(article))
    except Exception as e:  # noqa: BLE001 - the old contract: log and carry on
        uri = article.get("uri") if isinstance(article, Mapping) else None
        return _failed(f"upsert_article({uri!r})", e, None)
    if not stored:
        logger.debug("upsert_article(%r): no raw, summary or title text; nothing stored", article.get("uri"))


def upsert_articles(articles: Sequence[Mapping[str, Any]]) -> int:
    """The batch form of :func:`upsert_article` (a vstore extension): embeds every article's
    text and writes them all in one transaction; returns how many were stored (articles without
    text are skipped). Ctrl-C between embedding slices stops it before anything is written.
    On error: 0 (nothing stored)."""
    try:
        return int(get_store().upsert_articles([_prepare_article(a) for a in articles]))
    except Exception as e:  # noqa: BLE001
        return _failed(f"upsert_articles({len(articles)} articles)", e, 0)


def search_articles(query: str, top_k: int = 10, metadata_filter: Optional[Mapping[str, Any]] = None) -> List[Hit]:
    """The ``top_k`` articles nearest to ``query``, ascending ``score`` (cosine distance, lower is
    closer): ``[{"id", "score", "metadata"}]``. ``metadata_filter`` takes Chroma's ``where``
    grammar and flat multi-key dicts (an implicit ``$and``); ``{}`` or None means no filter.
    The query ``"*"`` lists the newest matching articles (``score`` 0.0). On error: ``[]``."""
    try:
        if not isinstance(query, str):
            raise InvalidArgument(f"query must be a str, not {type(query).__name__}")
        k = _check_top_k(top_k)
        where = _prepare_filter(metadata_filter, "metadata_filter")
        if query.strip() == "*":
            return _newest(k, where)
        return get_store().search(query, k, where)
    except Exception as e:  # noqa: BLE001
        return _failed(f"search_articles({query!r})", e, [])


def _newest(top_k: int, where: Optional[Dict[str, Any]]) -> List[Hit]:
    _vectors, metadatas, ids = get_store().get_vectors(None, where)

    def key(i: int) -> Tuple[int, int, str]:
        ts = metadatas[i].get("publication_date_ts")
        has = isinstance(ts, int) and not isinstance(ts, bool)
        return (0 if has else 1, -int(ts) if has else 0, ids[i])

    order = sorted(range(len(ids)), key=key)[:top_k]
    return [{"id": ids[i], "score": 0.0, "metadata": metadatas[i]} for i in order]


def search_by_vector(
    vector: Sequence[float] | npt.NDArray[np.floating], top_k: int = 10, metadata_filter: Optional[Mapping[str, Any]] = None
) -> List[Hit]:
    """As :func:`search_articles`, for a query vector the caller already has (a vstore extension)."""
    try:
        k = _check_top_k(top_k)
        return get_store().search_vector(vector, k, _prepare_filter(metadata_filter, "metadata_filter"))
    except Exception as e:  # noqa: BLE001
        return _failed("search_by_vector", e, [])


def similar_articles(uri: str, top_k: int = 5) -> List[Hit]:
    """Articles nearest to the stored vector of ``uri``, without ``uri`` itself; ``[]`` (and a
    WARNING) when it has no vector, ``[]`` on error."""
    try:
        if not isinstance(uri, str):
            raise InvalidArgument(f"uri must be a str, not {type(uri).__name__}")
        return get_store().similar(uri, _check_top_k(top_k, MAX_TOP_K))
    except NotFound as e:
        return _failed(f"similar_articles({uri!r})", e, [], logging.WARNING)
    except Exception as e:  # noqa: BLE001
        return _failed(f"similar_articles({uri!r})", e, [])


def get_vectors_by_metadata(limit: Optional[int] = None, where: Optional[Mapping[str, Any]] = None) -> VectorsResult:
    """``(vectors, metadatas, ids)``: a float32 array of shape (n, dim), one metadata dict and one
    id per row, in store order; ``limit`` None or 0 means all. On error:
    ``(np.empty((0, 0), np.float32), [], [])``."""
    try:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0):
            raise InvalidArgument(f"limit must be None or an integer of 0 or more, not {limit!r}")
        vectors, metadatas, ids = get_store().get_vectors(None if limit is None else int(limit), _prepare_filter(where, "where"))
        return vectors, metadatas, ids
    except Exception as e:  # noqa: BLE001
        return _failed("get_vectors_by_metadata", e, (np.empty((0, 0), dtype=np.float32), [], []))


_EMPTY_IDS_RESULT: Dict[str, List[Any]] = {"ids": [], "metadatas": [], "documents": [], "embeddings": []}


def get_by_ids(ids: Sequence[str], include: Optional[Sequence[str]] = None) -> Dict[str, List[Any]]:
    """Chroma-style look-up of stored articles by id: ``{"ids", "metadatas", "documents",
    "embeddings"}``, all four keys always present. ``include`` (default ``["metadatas"]``) may
    add ``"documents"`` (the summary, or "") and ``"embeddings"`` (lists of floats). Ids without
    a stored vector are absent. Metadata lacks ``uri``, as before. On error: the empty dict."""
    empty = {k: [] for k in _EMPTY_IDS_RESULT}
    try:
        wanted = list(include) if include is not None else ["metadatas"]
        id_list = [str(i) for i in ids]
        if not id_list:
            return empty
        vectors, metadatas, found = get_store().get_vectors(None, {"uri": {"$in": id_list}})
        out: Dict[str, List[Any]] = {"ids": list(found), "metadatas": [], "documents": [], "embeddings": []}
        for row, md in enumerate(metadatas):
            if "metadatas" in wanted:
                out["metadatas"].append({k: v for k, v in md.items() if k != "uri" and v is not None})
            if "documents" in wanted:
                out["documents"].append(md.get("summary") or "")
            if "embeddings" in wanted:
                out["embeddings"].append(vectors[row].tolist())
        return out
    except Exception as e:  # noqa: BLE001
        return _failed("get_by_ids", e, empty)


def embedding_projection(vecs: Sequence[Sequence[float]] | npt.NDArray[np.floating]) -> Dict[str, Any]:
    """Lays the vectors out in 2-D and clusters them into three (k-means, seeded):
    ``{"points": [{"x", "y", "cluster", "size"}], "centroids": [[...]] * 3, "sizes": {cluster:
    count}}``; ``x``/``y`` are a neighbour-preserving UMAP layout (seed 42), no longer the raw
    first two dimensions. Plain Python numbers (JSON-safe). Raises InvalidArgument (a ValueError)
    for fewer than 3 vectors, as scikit-learn did."""
    return _native.embedding_projection(vecs)


def _embed_texts(texts: Sequence[Optional[str]]) -> npt.NDArray[np.float32]:
    """Embeds the non-blank texts with the configured embedder: a float32 array (n, dim).
    Raises when the embedder is unavailable (there are no random vectors)."""
    cleaned = [str(t).strip() for t in texts if t is not None]
    cleaned = [t for t in cleaned if t]
    if not cleaned:
        raise InvalidArgument("_embed_texts: no non-blank text to embed")
    return get_store().embed(cleaned)


def delete_embeddings(ids: Sequence[str]) -> int:
    """Removes the stored vectors of ``ids`` (the article rows stay); returns how many had one.
    On error: 0."""
    try:
        return int(get_store().remove([str(i) for i in ids]))
    except Exception as e:  # noqa: BLE001
        return _failed("delete_embeddings", e, 0)


def count_embeddings() -> int:
    """How many articles hold a vector. On error: 0."""
    try:
        return int(get_store().count()["with_embedding"])
    except Exception as e:  # noqa: BLE001
        return _failed("count_embeddings", e, 0)


def check_chromadb_health() -> Dict[str, Any]:
    """``{"healthy", "collection_exists", "collection_count", "thread_pool_size", "error"}`` as
    the application's tests read them, for whichever backend is configured, plus ``backend``
    and the pgvector module's ``extension_installed``, ``articles_with_embeddings`` and
    ``total_articles``. Never raises."""
    try:
        pool = _pool_size()
    except InvalidArgument as e:
        return _health_failure(0, str(e))
    try:
        h = get_store().health()
    except NotFound as e:
        return _health_failure(pool, str(e))
    except Exception as e:  # noqa: BLE001
        out = _health_failure(pool, str(e))
        out["collection_exists"] = False
        return out
    rows = int(h.get("rows") or 0)
    with_embedding = int(h.get("with_embedding") or 0)
    reasons = h.get("reasons") or []
    return {
        "healthy": bool(h.get("healthy")),
        "collection_exists": True,
        "collection_count": with_embedding,
        "thread_pool_size": pool,
        "error": "; ".join(str(r) for r in reasons) if reasons else None,
        "backend": h.get("backend"),
        "extension_installed": h.get("extension_version") is not None if h.get("backend") == "pgvector" else None,
        "articles_with_embeddings": with_embedding,
        "total_articles": rows,
    }


def _health_failure(pool: int, error: str) -> Dict[str, Any]:
    return {
        "healthy": False,
        "collection_exists": False,
        "collection_count": 0,
        "thread_pool_size": pool,
        "error": error,
        "backend": _setting("VECTOR_BACKEND") or "pgvector",
        "extension_installed": None,
        "articles_with_embeddings": 0,
        "total_articles": 0,
    }


check_pgvector_health = check_chromadb_health


def check_vector_health() -> Dict[str, Any]:
    """The full health report (``vstore health --json``'s fields: backend, server and extension
    versions, rows, coverage, index, reasons, and the embedder's state). Never raises: a store
    that cannot open gives ``{"healthy": False, "backend": ..., "error": ...}``."""
    try:
        return dict(get_store().health())
    except Exception as e:  # noqa: BLE001
        return {"healthy": False, "backend": _setting("VECTOR_BACKEND") or "pgvector", "error": str(e), "reasons": [str(e)]}


def shutdown_vector_store() -> None:
    """Waits for queued async calls, stops the pool and closes the store's connections. Never
    raises. A later call opens the store and the pool again (the old ChromaDB module could not
    be used after shutdown; an application that reloads can)."""
    global _executor, _store, _dotenv
    try:
        with _lock:
            executor, _executor = _executor, None
            store, _store = _store, None
            _dotenv = None  # the next use reads .env again
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=False)
        if store is not None:
            store.close()
    except Exception as e:  # noqa: BLE001
        logger.error("shutdown_vector_store: %s", e)
    finally:
        logger.info("Vector store shutdown complete")


def get_chroma_client() -> Any:
    """Not provided, as in the pgvector facade: vstore owns its backends' clients."""
    raise NotImplementedError("vstore does not expose a chromadb client; use the vstore.vector_store functions")


def _get_collection() -> Any:
    """Not provided, as in the pgvector facade: use get_by_ids / get_vectors_by_metadata."""
    raise NotImplementedError("vstore does not expose a chromadb collection; use get_by_ids or get_vectors_by_metadata")


# ---- async variants: the same calls on the pool; the loop is never blocked -------------------------


async def upsert_article_async(article: Mapping[str, Any]) -> None:
    return await _in_pool(upsert_article, article)


async def search_articles_async(
    query: str, top_k: int = 10, metadata_filter: Optional[Mapping[str, Any]] = None
) -> List[Hit]:
    return await _in_pool(search_articles, query, top_k, metadata_filter)


async def search_by_vector_async(
    vector: Sequence[float] | npt.NDArray[np.floating], top_k: int = 10, metadata_filter: Optional[Mapping[str, Any]] = None
) -> List[Hit]:
    return await _in_pool(search_by_vector, vector, top_k, metadata_filter)


async def similar_articles_async(uri: str, top_k: int = 5) -> List[Hit]:
    return await _in_pool(similar_articles, uri, top_k)


async def get_vectors_by_metadata_async(
    limit: Optional[int] = None, where: Optional[Mapping[str, Any]] = None
) -> VectorsResult:
    return await _in_pool(get_vectors_by_metadata, limit, where)


async def get_by_ids_async(ids: Sequence[str], include: Optional[Sequence[str]] = None) -> Dict[str, List[Any]]:
    return await _in_pool(get_by_ids, ids, include)


async def embedding_projection_async(vecs: Sequence[Sequence[float]] | npt.NDArray[np.floating]) -> Dict[str, Any]:
    return await _in_pool(embedding_projection, vecs)
