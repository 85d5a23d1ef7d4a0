"""Issue 22, item 6: the host token store checks its directory at every use, and a planted or foreign
lock file cannot stall a login.

A long-lived process logs in, then its token directory is swapped (for a symlink, or for a directory
of another user holding a lock file) before a 401 makes it log in again: nothing is written through
the swap, and the login does not wait for the lock (120 s by default). A lock file that is no regular
file of this user (a FIFO someone holds a lock on) is never waited on either. Sync and async alike.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_butlr.client.tokens.fernet import key_digest
from airflow_provider_butlr.client.tokens.host_store import LOCK_TIMEOUT
from airflow_provider_butlr.hooks.butlr import ButlrHook
from tests.support.hostile import DATA, DRIVERS, Driver, HostileApi, Request, outcome, use_connection

BOUND = 15.0  # far below LOCK_TIMEOUT: a login that waited for the lock would miss it
assert BOUND < LOCK_TIMEOUT
NOBODY = 65534


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HostileApi]:
    server = HostileApi()
    use_connection(monkeypatch, server, token_cache_dir=str(tmp_path / "tokens"))
    yield server
    server.close()


def refusing_once() -> Any:
    """The next data call answers 401 (the token was revoked): the hook logs in again and replays."""
    state = {"refused": False}

    def script(request: Request) -> None:
        if not state["refused"]:
            state["refused"] = True
            request.reply(401, '{"message": "token revoked"}')
        else:
            request.reply(200, {"data": []})

    return script


def bounded(call: Driver) -> tuple[Any, Any, float]:
    box: list[Any] = []
    worker = threading.Thread(target=lambda: box.append(outcome(call, "POST", DATA, {"q": 1})), daemon=True)
    worker.start()
    worker.join(BOUND)
    if not box:
        pytest.fail(f"the call was still waiting for a lock after {BOUND} s")
    return box[0]


def lock_name(api: HostileApi) -> str:
    return key_digest(ButlrHook().settings.cache_key) + ".lock"


@contextlib.contextmanager
def held(path: Path, owner: int | None = None) -> Iterator[None]:
    """Someone holds an exclusive flock on ``path`` (created 0666, given to ``owner``) meanwhile."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if owner is not None:
            os.chown(path, owner, owner)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@DRIVERS
def test_a_directory_swapped_for_a_symlink_after_first_use_is_never_written_through(
    api: HostileApi, call: Driver, tmp_path: Path
) -> None:
    directory, elsewhere = tmp_path / "tokens", tmp_path / "elsewhere"
    assert outcome(call, "POST", DATA, {"q": 1})[0] == {"data": []}
    assert any(name.endswith(".token") for name in os.listdir(directory))  # first use: stored there
    elsewhere.mkdir(mode=0o700)
    directory.rename(tmp_path / "moved")
    directory.symlink_to(elsewhere)
    api.script = refusing_once()
    result, err, _ = bounded(call)
    assert err is None and result == {"data": []} and api.logins == 2, err
    assert os.listdir(elsewhere) == []  # no .lock, no .token through the symlink


@DRIVERS
def test_a_lock_file_that_is_no_regular_file_is_never_waited_on(
    api: HostileApi, call: Driver, tmp_path: Path
) -> None:
    directory = tmp_path / "tokens"
    directory.mkdir(mode=0o700)
    fifo = directory / lock_name(api)
    os.mkfifo(fifo, 0o600)
    with held(fifo):
        result, err, seconds = bounded(call)
    assert err is None and result == {"data": []} and seconds < BOUND, err


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="handing a directory to another user needs root")


@root_only
@DRIVERS
def test_a_directory_swapped_for_another_users_with_a_held_lock_neither_stalls_nor_is_used(
    api: HostileApi, call: Driver, tmp_path: Path
) -> None:
    directory = tmp_path / "tokens"
    assert outcome(call, "POST", DATA, {"q": 1})[0] == {"data": []}
    directory.rename(tmp_path / "moved")
    directory.mkdir(mode=0o777)
    os.chmod(directory, 0o777)
    os.chown(directory, NOBODY, NOBODY)
    planted = directory / lock_name(api)
    api.script = refusing_once()
    with held(planted, NOBODY):
        result, err, seconds = bounded(call)
    assert err is None and result == {"data": []} and seconds < BOUND, err
    assert sorted(os.listdir(directory)) == [planted.name]  # no token written into their directory


@root_only
@DRIVERS
def test_a_foreign_lock_file_in_our_directory_is_never_waited_on(
    api: HostileApi, call: Driver, tmp_path: Path
) -> None:
    directory = tmp_path / "tokens"
    directory.mkdir(mode=0o700)
    with held(directory / lock_name(api), NOBODY):
        result, err, seconds = bounded(call)
    assert err is None and result == {"data": []} and seconds < BOUND, err


pytestmark = pytest.mark.airflow_independent
