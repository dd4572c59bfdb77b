# SPDX-License-Identifier: Apache-2.0
"""vstore.operations: the deployment steps (reindex, validate, tune, cleanup-chroma,
restore-chroma) called from Python on real servers, with the answers the CLI gives."""
from __future__ import annotations

import json
import pathlib
from typing import Dict

import pytest

import vstore.operations as ops
from vstore.errors import Conflict, InvalidArgument

from conftest import N_ARTICLES, run_cli


def test_reindex_finds_nothing_to_do_after_ingest_and_names_a_bad_option(embedded: Dict[str, str]) -> None:
    # The first run embeds what earlier tests left without a vector, if anything; the second
    # finds every text unchanged since its vector was made.
    first = ops.reindex(overrides=embedded)
    assert first["failed"] == 0
    assert first["total"] >= N_ARTICLES
    done = ops.reindex(overrides=embedded)
    assert done["processed"] == 0
    assert done["skipped"] == done["total"] == first["total"]
    cli = json.loads(run_cli(["reindex", "--json"], embedded).stdout)
    assert (cli["total"], cli["processed"], cli["skipped"]) == (done["total"], 0, done["skipped"])
    with pytest.raises(InvalidArgument, match=r"batch.size must be from 1 to 10000, not 0"):
        ops.reindex(batch_size=0, overrides=embedded)


def test_validate_without_chroma_passes_on_recall_and_writes_its_report(embedded: Dict[str, str]) -> None:
    report = ops.validate(sample=5, chroma=False, overrides=embedded)
    assert report["queries"] == 5
    assert report["chroma_compared"] is False
    assert report["passed_on"] == "recall_at_k"
    assert report["passed"] is True, report["failures"]
    assert json.loads(pathlib.Path(report["report_path"]).read_text()) == report
    with pytest.raises(InvalidArgument, match=r"top.k"):
        ops.validate(top_k=0, overrides=embedded)


def test_tune_recommends_and_writes_the_env_file(embedded: Dict[str, str], tmp_path: pathlib.Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# kept\nOTHER=1\n")
    out = ops.tune(sample=5, target_recall=0.9, write_env=str(env_file), overrides=embedded)
    assert out["parameter"] == "ef_search"
    assert isinstance(out["recommended"], int)
    assert env_file.read_text() == f"# kept\nOTHER=1\nPGVECTOR_HNSW_EF_SEARCH={out['recommended']}\n"
    with pytest.raises(InvalidArgument):
        ops.tune(where={"topic": {"$foo": 1}}, overrides=embedded)


def test_cleanup_refuses_then_removes_after_validation_and_restore_brings_it_back(
    embedded: Dict[str, str], chroma: Dict[str, str]
) -> None:
    # The embedded database and the Chroma server hold the same articles, embedded by the same
    # engine: the state of step 8 of the migration guide.
    env = dict(embedded)
    env.update({"CHROMA_URL": chroma["CHROMA_URL"], "CHROMA_COLLECTION": chroma["CHROMA_COLLECTION"],
                "CHROMA_DB_DIR": "/nonexistent-chroma-dir"})
    with pytest.raises(InvalidArgument, match="target"):
        ops.cleanup_chroma(target="nowhere", overrides=env)
    on_dual = dict(env, VECTOR_BACKEND="dual")
    with pytest.raises(Conflict, match="VECTOR_BACKEND"):
        ops.cleanup_chroma(confirm=True, overrides=on_dual)
    report = ops.validate(sample=10, overrides=env)
    assert report["chroma_compared"] is True
    assert report["passed"] is True, report["failures"]
    plan = ops.cleanup_chroma(overrides=env)
    assert plan["dry_run"] is True and plan["allowed"] is True, plan
    assert plan["records"] == N_ARTICLES
    done = ops.cleanup_chroma(confirm=True, overrides=env)
    try:
        assert done["removed"] is True
        assert pathlib.Path(done["backup"]).is_file()
        gone = run_cli(["search", "oil", "--json"], chroma, check=False)
        assert gone.returncode != 0, "the collection was removed"
    finally:
        restored = ops.restore_chroma(done["backup"], overrides=env)
    assert restored["records"] == N_ARTICLES
    assert restored["verified"] is True
    back = json.loads(run_cli(["search", "oil prices", "--top-k", "3", "--json"], chroma).stdout)
    assert len(back) == 3
