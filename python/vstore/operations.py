# SPDX-License-Identifier: Apache-2.0
"""The deployment operations of docs/migration-guide.md, from Python: the same library calls as
``vstore reindex``, ``validate``, ``tune``, ``cleanup-chroma`` and ``restore-chroma``.

Each reads the configuration as the CLI does (the environment over ``.env``, or ``env_file``;
``overrides`` wins over both) and returns the dictionary the command prints with ``--json``.
Bad arguments raise ``vstore.errors.InvalidArgument``; a refused cleanup raises
``vstore.errors.Conflict`` naming each reason. A validation below ``min_overlap`` is not an
error: its report says ``passed: False``. The calls block (without holding the GIL); run them in
a thread from async code.
"""
from __future__ import annotations

from ._native import cleanup_chroma, reindex, restore_chroma, tune, validate

__all__ = ["reindex", "validate", "tune", "cleanup_chroma", "restore_chroma"]
