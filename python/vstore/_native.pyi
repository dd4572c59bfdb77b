# SPDX-License-Identifier: Apache-2.0
"""Type stubs of vstore's C++ module (vstore_py.cpp). Methods raise vstore.errors classes."""
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

__version__: str

class Store:
    """One opened store (VECTOR_BACKEND, or `backend`) with its embedder. Thread-safe; every
    call releases the GIL while the C++ core works."""

    def __init__(
        self,
        backend: Optional[str] = None,
        env_file: Optional[str] = None,
        overrides: Optional[Mapping[str, str]] = None,
    ) -> None: ...
    def upsert_article(self, article: Mapping[str, Any]) -> bool: ...
    def upsert_articles(self, articles: List[Dict[str, Any]]) -> int: ...
    def search(
        self, query: str, top_k: int = 10, metadata_filter: Optional[Mapping[str, Any]] = None
    ) -> List[Dict[str, Any]]: ...
    def search_vector(
        self,
        vector: Sequence[float] | npt.NDArray[np.floating],
        top_k: int = 10,
        metadata_filter: Optional[Mapping[str, Any]] = None,
    ) -> List[Dict[str, Any]]: ...
    def _time_search_vector(self, vector: Sequence[float] | npt.NDArray[np.floating], top_k: int, n: int) -> float: ...
    def similar(self, uri: str, top_k: int = 5, where: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]: ...
    def get_vectors(
        self, limit: Optional[int] = None, where: Optional[Mapping[str, Any]] = None
    ) -> Tuple[npt.NDArray[np.float32], List[Dict[str, Any]], List[str]]: ...
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...
    def remove(self, ids: Sequence[str]) -> int: ...
    def health(self) -> Dict[str, Any]: ...
    def count(self) -> Dict[str, int]: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def backend(self) -> str: ...
    @property
    def dimension(self) -> int: ...
    @property
    def embedding_model(self) -> str: ...
    @property
    def embedder_error(self) -> Optional[str]: ...

def embedding_projection(vectors: Sequence[Sequence[float]] | npt.NDArray[np.floating]) -> Dict[str, Any]: ...
def read_environment(env_file: Optional[str] = None) -> Dict[str, str]: ...

# Operations: what `vstore reindex|validate|tune|cleanup-chroma|restore-chroma --json` print.
def reindex(
    *,
    force: bool = False,
    limit: Optional[int] = None,
    topic: Optional[str] = None,
    since: Optional[str] = None,
    batch_size: int = 64,
    rebuild_index: bool = False,
    env_file: Optional[str] = None,
    overrides: Optional[Mapping[str, str]] = None,
) -> Dict[str, Any]: ...
def validate(
    *,
    queries: Optional[Sequence[str]] = None,
    sample: int = 50,
    seed: int = 42,
    top_k: int = 10,
    min_overlap: float = 0.95,
    chroma: bool = True,
    env_file: Optional[str] = None,
    overrides: Optional[Mapping[str, str]] = None,
) -> Dict[str, Any]: ...
def tune(
    *,
    target_recall: float = 0.95,
    where: Optional[Mapping[str, Any]] = None,
    sample: int = 50,
    seed: int = 42,
    top_k: int = 10,
    write_env: Optional[str] = None,
    env_file: Optional[str] = None,
    overrides: Optional[Mapping[str, str]] = None,
) -> Dict[str, Any]: ...
def cleanup_chroma(
    *,
    confirm: bool = False,
    target: str = "auto",
    backup: bool = True,
    env_file: Optional[str] = None,
    overrides: Optional[Mapping[str, str]] = None,
) -> Dict[str, Any]: ...
def restore_chroma(
    backup: str, *, env_file: Optional[str] = None, overrides: Optional[Mapping[str, str]] = None
) -> Dict[str, Any]: ...
