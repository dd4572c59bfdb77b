# SPDX-License-Identifier: Apache-2.0
"""The exceptions vstore raises (with ``VSTORE_STRICT=1``, and always for bad arguments to
``embedding_projection``). Each is a :class:`VstoreError` and also the built-in exception a
caller would already catch for that kind of failure, e.g. ``InvalidArgument`` is a ``ValueError``.
"""
from __future__ import annotations

__all__ = [
    "VstoreError",
    "InvalidArgument",
    "NotFound",
    "Conflict",
    "Unavailable",
    "Timeout",
    "Corruption",
    "InternalError",
    "error_class",
]


class VstoreError(Exception):
    """Base of every vstore error. ``code`` names the kind, as the C++ library's ErrorCode."""

    code: str = "internal"


class InvalidArgument(VstoreError, ValueError):
    """The caller's input is wrong: a bad filter, top_k, vector, article or setting."""

    code = "invalid_argument"


class NotFound(VstoreError, LookupError):
    """A named thing does not exist: an article without a vector, a collection, a table."""

    code = "not_found"


class Conflict(VstoreError):
    """The operation clashes with existing state, e.g. the schema is not migrated."""

    code = "conflict"


class Unavailable(VstoreError, ConnectionError):
    """A server (PostgreSQL, Chroma, the embedding API) could not be reached; may succeed later."""

    code = "unavailable"


class Timeout(VstoreError, TimeoutError):
    """A deadline passed: pool wait, statement timeout or HTTP timeout."""

    code = "timeout"


class Corruption(VstoreError):
    """Stored or received data is malformed."""

    code = "corruption"


class InternalError(VstoreError):
    """A bug or an unexpected answer from a server."""

    code = "internal"


_BY_CODE: dict[str, type[VstoreError]] = {
    cls.code: cls for cls in (InvalidArgument, NotFound, Conflict, Unavailable, Timeout, Corruption, InternalError)
}


def error_class(code: str) -> type[VstoreError]:
    """The exception class of an ErrorCode name (used by the native module's one translator)."""
    return _BY_CODE.get(code, InternalError)
