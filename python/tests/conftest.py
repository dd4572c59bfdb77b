# SPDX-License-Identifier: Apache-2.0
"""Fixtures: real servers started here, on free loopback ports or private sockets, and stopped.

- ``embedded``: vstore's embedded PostgreSQL (``vstore db start``), reached through
  VSTORE_DATA_DIR alone, as an application on the same machine would.
- ``url``: a second embedded cluster started with ``--tcp``, reached only through DATABASE_URL.
- ``chroma``: the npm chromadb server set-up installed, through CHROMA_URL.

Each is loaded once per session with the same Reuters articles by ``vstore ingest`` (the C++
local all-MiniLM-L6-v2 engine embeds them). Scripts/python_test.sh sets VSTORE_BIN,
VSTORE_TEST_CHROMA_CLI and VSTORE_TEST_SHARED_DATA; a missing one fails the run, never skips.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from typing import Dict, Iterator, List

import pytest

import vstore.vector_store as vs

N_ARTICLES = 400


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the suite through scripts/python_test.sh", pytrace=False)
    return value


def vstore_bin() -> str:
    path = _required("VSTORE_BIN")
    if not os.path.exists(path):
        pytest.fail(f"{path} does not exist: build the project first", pytrace=False)
    return path


def run_cli(args: List[str], env: Dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "VECTOR_BACKEND", "CHROMA_URL")}
    full.update(env)
    done = subprocess.run([vstore_bin(), *args], env=full, capture_output=True, text=True, timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(f"vstore {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server_root() -> Iterator[pathlib.Path]:
    """A directory the embedded clusters live under. Not pytest's tmp_path: that is private to
    root (0700), and PostgreSQL, started as the user postgres when the tests run as root, must
    reach its data directory."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="vstore-pytest-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def articles_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The first N_ARTICLES Reuters records that have a topic and a body."""
    source = pathlib.Path(_required("VSTORE_TEST_SHARED_DATA")) / "reuters21578" / "articles.jsonl"
    out = tmp_path_factory.mktemp("data") / "articles.jsonl"
    kept = 0
    with source.open(encoding="utf-8") as src, out.open("w", encoding="utf-8") as dst:
        for line in src:
            record = json.loads(line)
            if record.get("topic") and record.get("raw"):
                dst.write(json.dumps(record) + "\n")
                kept += 1
                if kept == N_ARTICLES:
                    break
    return out


@pytest.fixture(scope="session")
def article_records(articles_file: pathlib.Path) -> List[Dict[str, object]]:
    with articles_file.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _load(env: Dict[str, str], articles_file: pathlib.Path) -> None:
    run_cli(["ingest", str(articles_file)], env)


@pytest.fixture(scope="session")
def embedded(server_root: pathlib.Path, articles_file: pathlib.Path) -> Iterator[Dict[str, str]]:
    data = server_root / "embedded"
    env = {"VSTORE_DATA_DIR": str(data), "VECTOR_BACKEND": "pgvector"}
    run_cli(["db", "start"], env)
    try:
        run_cli(["schema", "up"], env)
        _load(env, articles_file)
        yield env
    finally:
        run_cli(["db", "stop"], env, check=False)


@pytest.fixture(scope="session")
def url(
    tmp_path_factory: pytest.TempPathFactory, server_root: pathlib.Path, articles_file: pathlib.Path
) -> Iterator[Dict[str, str]]:
    data = server_root / "tcp"
    server_env = {"VSTORE_DATA_DIR": str(data)}
    status = json.loads(run_cli(["db", "start", "--tcp", "--json"], server_env).stdout)
    try:
        password = pathlib.Path(status["password_file"]).read_text(encoding="utf-8").strip()
        database_url = f"postgresql://vstore:{password}@127.0.0.1:{status['port']}/vstore"
        # VSTORE_DATA_DIR points elsewhere: only DATABASE_URL leads to this server.
        env = {
            "DATABASE_URL": database_url,
            "VSTORE_DATA_DIR": str(tmp_path_factory.mktemp("elsewhere")),
            "VECTOR_BACKEND": "pgvector",
        }
        run_cli(["schema", "up"], env)
        _load(env, articles_file)
        yield env
    finally:
        run_cli(["db", "stop"], server_env, check=False)


@pytest.fixture(scope="session")
def chroma(tmp_path_factory: pytest.TempPathFactory, articles_file: pathlib.Path) -> Iterator[Dict[str, str]]:
    cli = _required("VSTORE_TEST_CHROMA_CLI")
    if not os.path.exists(cli):
        pytest.fail(f"{cli} does not exist: run scripts/setup.sh", pytrace=False)
    root = tmp_path_factory.mktemp("chroma")
    port = free_port()
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        ["node", cli, "run", "--path", str(root / "data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
    )
    url_ = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url_ + "/api/v2/heartbeat", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"chroma server did not start: {(root / 'server.log').read_text()}", pytrace=False)
                time.sleep(0.2)
        env = {
            "VECTOR_BACKEND": "chromadb",
            "CHROMA_URL": url_,
            "CHROMA_COLLECTION": "articles",
            "VSTORE_DATA_DIR": str(root / "vstore"),
        }
        _load(env, articles_file)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _use(monkeypatch: pytest.MonkeyPatch, env: Dict[str, str]) -> None:
    """Points the module's default store at `env` (the next call opens it)."""
    vs.shutdown_vector_store()
    for name in ("DATABASE_URL", "VECTOR_BACKEND", "CHROMA_URL", "VSTORE_STRICT", "VSTORE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(params=["embedded", "url", "chroma"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dict[str, str]]:
    """Each test that takes it runs once per backend, against the module's default store."""
    env: Dict[str, str] = request.getfixturevalue(request.param)
    _use(monkeypatch, env)
    yield env
    vs.shutdown_vector_store()


@pytest.fixture
def use_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A function that points the default store at an environment of the test's choosing."""

    def use(env: Dict[str, str]) -> None:
        _use(monkeypatch, env)

    yield use
    vs.shutdown_vector_store()
