"""Test set-up: a throw-away AIRFLOW_HOME before Airflow is imported, emulator and connection fixtures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="butlr-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "example_dags"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# A Fernet key, so that the suite runs the default token store (token_cache=host) as deployments do;
# tests of the no-key fallback unset it. The store's directory is per test (_fresh_token_cache below);
# this session-wide one only serves module- and session-scoped fixtures.
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", "pFJ0hM4nV7-9sOq1tkUMiU0XyFqGgGMpXyQ2VwWQ6kM=")
os.environ.setdefault("BUTLR_TOKEN_CACHE_DIR", tempfile.mkdtemp(prefix="butlr-token-cache-"))
# One export base for the session: example DAGs derive asset URIs from it at parse time, and an
# asset name must keep one URI across every parse in the session's database.
os.environ.setdefault("BUTLR_EXPORT_BASE_PATH", tempfile.mkdtemp(prefix="butlr-exports-"))

# A distinctive secret: secret-hygiene tests grep everything for it.
TEST_CLIENT_SECRET = "tst-secret-Zq8vX3kP9wLm2Rt7"


@pytest.fixture(autouse=True)
def _fresh_token_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Each test starts without cached tokens: the process cache is cleared, and the host token store
    (``BUTLR_TOKEN_CACHE_DIR``) is a new directory per test, so tests never share tokens through files.
    Processes a test starts inherit the variable, hence the same store."""
    from airflow_provider_butlr.client.tokens.cache import TOKEN_CACHE

    monkeypatch.setenv("BUTLR_TOKEN_CACHE_DIR", str(tmp_path_factory.mktemp("butlr-tokens")))
    TOKEN_CACHE.clear()
    yield
    TOKEN_CACHE.clear()


@pytest.fixture
def emulator() -> Iterator[Any]:
    """A fresh emulator on an ephemeral loopback port."""
    from airflow_provider_butlr.testing import ButlrEmulator

    with ButlrEmulator(port=0, client_secret=TEST_CLIENT_SECRET) as emu:
        yield emu


def connection_json(emu: Any, **extra: Any) -> str:
    """The emulator as an ``AIRFLOW_CONN_*`` JSON value; ``extra`` overrides connection extras."""
    fields: dict[str, Any] = {
        "conn_type": "butlr",
        "host": emu.url,
        "login": emu.client_id,
        "password": emu.client_secret,
        "extra": {
            "audience": emu.audience,
            "auth_type": "client_credentials",
            "timeout": 10,
            "max_retries": 3,
        },
    }
    for key in ("host", "login", "password"):
        if key in extra:
            fields[key] = extra.pop(key)
    fields["extra"].update(extra)
    return json.dumps(fields)


@pytest.fixture
def butlr_conn(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``butlr_default`` points at the emulator (env-var connection, no database needed)."""
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(emulator))
    return emulator


@pytest.fixture
def fast_hook() -> Any:
    """A hook factory with short backoff waits, so retry tests do not sleep for long."""
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    def make(conn_id: str = "butlr_default", **kwargs: Any) -> ButlrHook:
        kwargs.setdefault("retry_wait_initial", 0.01)
        kwargs.setdefault("retry_wait_max", 0.05)
        return ButlrHook(conn_id, **kwargs)

    return make


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """Migrate the SQLite metadata DB once per session (needed by dag.test())."""
    home = os.environ["AIRFLOW_HOME"]
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return home
