# SPDX-License-Identifier: Apache-2.0
"""vstore: the article vector store on PostgreSQL + pgvector (or ChromaDB), from Python.

``vstore.vector_store`` is the drop-in for the application's ``app.vector_store``;
``vstore.Store`` opens a store of its own (one per backend, if wanted); ``vstore.errors``
holds the exceptions.
"""
from __future__ import annotations

from ._native import Store, __version__
from .errors import (
    Conflict,
    Corruption,
    InternalError,
    InvalidArgument,
    NotFound,
    Timeout,
    Unavailable,
    VstoreError,
)

__all__ = [
    "Store",
    "VstoreError",
    "InvalidArgument",
    "NotFound",
    "Conflict",
    "Unavailable",
    "Timeout",
    "Corruption",
    "InternalError",
    "__version__",
]
