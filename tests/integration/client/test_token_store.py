"""Issue 16: the token store shared across processes. Real processes (forked before the emulator starts,
so no thread is forked), real HTTP against the emulator, logins counted by ``emu.counters``."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_butlr.client.tokens.cache import TOKEN_CACHE
from airflow_provider_butlr.client.tokens.host_store import HostStore
from airflow_provider_butlr.client.tokens.model import AccessToken
from airflow_provider_butlr.client.tokens.stores import VariableStore, store_for
from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.hooks.butlr import ButlrHook
from airflow_provider_butlr.hooks.butlr_async import ButlrAsyncHook
from airflow_provider_butlr.testing import ButlrEmulator
from tests.conftest import TEST_CLIENT_SECRET, connection_json

SITES = "query { sites { data { id } } }"
PROCESSES = 50


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def _child(inbox: Any, go: Any, revoked: Any, results: Any, use_async: bool) -> None:
    """One "task process": takes its environment, waits for the common start, uses a hook."""
    try:
        os.environ.update(inbox.get(timeout=120))
        first = _use_hook(use_async) if go.wait(120) else None
        second = _use_hook(use_async) if revoked.wait(120) else None
        results.put(("ok", first, second))
    except BaseException as err:  # the parent reports it
        results.put(("error", f"{type(err).__name__}: {err}", None))


def _use_hook(use_async: bool) -> str:
    if not use_async:
        hook = ButlrHook()
        hook.graphql(SITES)
        return _digest(hook.get_token())

    import asyncio

    async def run() -> str:
        async with ButlrAsyncHook() as hook:
            await hook.arequest_json("POST", "/api/v3/graphql", json={"query": SITES})
            return _digest(await hook.aget_token())

    return asyncio.run(run())


class Fleet:
    """``PROCESSES`` processes, half of them on the async hook, started together.

    They fork from a fork server that imported this module once: cheap to start, and no thread (or lock
    held by one) of the pytest process is inherited. Their environment comes through ``inbox``.
    """

    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        self.inbox, self.results = ctx.Queue(), ctx.Queue()
        self.go, self.revoked = ctx.Event(), ctx.Event()
        self.processes = [
            ctx.Process(target=_child, args=(self.inbox, self.go, self.revoked, self.results, i % 2 == 1))
            for i in range(count)
        ]
        for process in self.processes:
            process.start()

    def outcomes(self) -> list[tuple[str, str | None, str | None]]:
        outcomes = [self.results.get(timeout=240) for _ in self.processes]
        for process in self.processes:
            process.join(30)
        return outcomes

    def stop(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()
                process.join(5)


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    TOKEN_CACHE.clear()
    fleet = Fleet(PROCESSES)
    yield fleet
    fleet.stop()


def test_fifty_processes_starting_at_once_log_in_once_then_a_revoked_token_costs_one_login(
    fleet: Fleet, tmp_path: Path
) -> None:
    with ButlrEmulator(port=0, client_secret=TEST_CLIENT_SECRET) as emu:
        environment = {
            "AIRFLOW_CONN_BUTLR_DEFAULT": connection_json(emu),
            "BUTLR_TOKEN_CACHE_DIR": os.environ["BUTLR_TOKEN_CACHE_DIR"],
            "AIRFLOW__CORE__FERNET_KEY": os.environ["AIRFLOW__CORE__FERNET_KEY"],
        }
        for _ in fleet.processes:
            fleet.inbox.put(environment)
        fleet.go.set()  # every process starts its hook at the same instant
        # all of them in flight before the revocation: wait for the 50 data calls
        _wait_for(lambda: emu.counters.requests("/api/v3/graphql") >= PROCESSES)
        assert emu.counters.logins == 1
        first_token = emu.issued_tokens[0]
        emu.revoke_token(first_token)  # every process holds it; each will see a 401
        fleet.revoked.set()
        outcomes = fleet.outcomes()
        assert [o for o in outcomes if o[0] != "ok"] == []
        assert {o[1] for o in outcomes} == {_digest(first_token)}
        assert emu.counters.logins == 2  # one new login across all 50 processes that saw the 401
        assert {o[2] for o in outcomes} == {_digest(emu.issued_tokens[1])}
        refused = [r for r in emu.counters.log if r.status == 401]
        assert 1 <= len(refused) <= PROCESSES


def _wait_for(condition: Any, seconds: float = 240.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- what is on disk ------------------------------------------------------------------------------------


def test_the_store_holds_no_plaintext_token_in_a_private_directory(butlr_conn: Any) -> None:
    hook = ButlrHook()
    hook.graphql(SITES)
    store = store_for(hook.settings)
    assert isinstance(store, HostStore)
    directory = store.directory
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = sorted(p for p in directory.iterdir())
    assert [p.suffix for p in files] == [".lock", ".token"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        data = path.read_bytes()
        for token in butlr_conn.issued_tokens:
            assert token.encode() not in data and token[:12].encode() not in data
            for part in token.split("."):  # no JWT header, claims or signature either
                assert part[:12].encode() not in data
        for secret in (TEST_CLIENT_SECRET, butlr_conn.client_id):
            assert secret.encode() not in data
    assert not any(butlr_conn.client_id in p.name for p in files)


def test_a_new_process_reuses_the_stored_token_sync_and_async(butlr_conn: Any) -> None:
    import asyncio

    ButlrHook().graphql(SITES)
    TOKEN_CACHE.clear(stores=False)  # as a new task process: nothing in memory, the store on disk

    async def run() -> None:
        async with ButlrAsyncHook() as hook:
            await hook.arequest_json("POST", "/api/v3/graphql", json={"query": SITES})

    asyncio.run(run())
    TOKEN_CACHE.clear(stores=False)
    ButlrHook().graphql(SITES)
    assert butlr_conn.counters.logins == 1


def test_token_cache_process_keeps_tokens_in_memory_only(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = tmp_path / "tokens"
    conn = connection_json(emulator, token_cache="process", token_cache_dir=str(directory))
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", conn)
    ButlrHook().graphql(SITES)
    TOKEN_CACHE.clear(stores=False)
    ButlrHook().graphql(SITES)
    assert emulator.counters.logins == 2
    assert not directory.exists()


def test_token_cache_dir_chooses_the_directory(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = tmp_path / "a" / "b"
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(emulator, token_cache_dir=str(directory))
    )
    ButlrHook().graphql(SITES)
    assert [p.suffix for p in directory.iterdir() if p.suffix == ".token"] == [".token"]
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_a_directory_that_is_not_private_is_made_private_and_a_symlink_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = ("https://x", "client_credentials", "id", "aud", "fp")
    token = AccessToken("tok-abc", obtained_at=1.0, expires_at=1e12)
    wide = tmp_path / "wide"
    wide.mkdir(mode=0o777)
    os.chmod(wide, 0o777)
    HostStore(wide).save(key, token)
    assert stat.S_IMODE(wide.stat().st_mode) == 0o700
    assert HostStore(wide).load(key) == token

    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(target)
    with caplog.at_level(logging.WARNING, logger="airflow_provider_butlr.client.tokens"):
        HostStore(link).save(key, token)
    assert list(target.iterdir()) == []
    assert "is not usable" in caplog.text


# --- compare before delete ------------------------------------------------------------------------------


def test_a_refused_token_is_deleted_from_the_store_only_while_it_is_still_the_stored_one(
    tmp_path: Path,
) -> None:
    key = ("https://x", "client_credentials", "id", "aud", "fp")
    store = HostStore(tmp_path / "s")
    old, new = (AccessToken(v, obtained_at=1.0, expires_at=1e12) for v in ("tok-old", "tok-new"))
    store.save(key, new)
    store.discard(key, old.value)  # a late 401 for the old token: the new one stays
    assert store.load(key) == new
    store.discard(key, new.value)
    assert store.load(key) is None


def test_a_record_is_bound_to_its_key_and_to_the_fernet_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.fernet import Fernet, MultiFernet

    from airflow_provider_butlr.client.tokens.fernet import key_digest, unseal

    key, other = ("k", "1"), ("k", "2")
    store = HostStore(tmp_path / "s")
    store.save(key, AccessToken("tok", obtained_at=1.0, expires_at=1e12))
    record = next((tmp_path / "s").glob("*.token"))
    record.rename(record.with_name(hashlib.sha256(b"x").hexdigest()[:40] + ".token"))
    assert store.load(other) is None  # a file copied under another key's name is not that key's token
    store.save(key, AccessToken("tok", obtained_at=1.0, expires_at=1e12))
    blob = next((tmp_path / "s").glob(f"{key_digest(key)}.token")).read_bytes()
    assert unseal(MultiFernet([Fernet(Fernet.generate_key())]), key, blob) is None  # another Fernet key
    assert store.load(key) is not None  # (the deployment's own key reads it)


# --- no Fernet key ---------------------------------------------------------------------------------------


def test_without_a_fernet_key_tokens_stay_in_the_process_and_that_is_said_once(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_provider_butlr.client.tokens import fernet

    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "")
    monkeypatch.setattr(fernet, "_said_no_key", __import__("threading").Event())
    directory = tmp_path / "tokens"
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(emulator, token_cache_dir=str(directory))
    )
    with caplog.at_level(logging.INFO, logger="airflow_provider_butlr.client.tokens"):
        ButlrHook().graphql(SITES)
        TOKEN_CACHE.clear(stores=False)
        ButlrHook().graphql(SITES)
    said = [r for r in caplog.records if "No Airflow fernet_key is configured" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO
    assert emulator.counters.logins == 2  # per process: nothing was shared
    assert not any(p.suffix == ".token" for p in directory.rglob("*"))


# --- settings -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"token_cache": "memcached"},
            "token_cache 'memcached' is not one of process, host, variable, redis",
        ),
        ({"token_cache": "redis"}, "token_cache 'redis' needs extra.redis_conn_id"),
        ({"token_cache_dir": "relative/dir"}, "token_cache_dir 'relative/dir' must be an absolute path"),
    ],
)
def test_bad_token_cache_extras_are_configuration_errors(extra: dict[str, str], message: str) -> None:
    from airflow_provider_butlr.client.settings import settings_from_fields

    with pytest.raises(ButlrConfigurationError, match=message) as err:
        settings_from_fields(conn_id="c", host=None, login="id", password="pw", extra=extra)
    assert "connection c, extra." in str(err.value)


def test_token_cache_extras_choose_the_store(tmp_path: Path) -> None:
    from airflow_provider_butlr.client.settings import settings_from_fields

    def store(**extra: Any) -> Any:
        return store_for(settings_from_fields(conn_id="c", host=None, login="i", password="p", extra=extra))

    assert store(token_cache="process") is None
    assert isinstance(store(), HostStore)
    assert isinstance(store(token_cache="VARIABLE"), VariableStore)
    assert store(token_cache_dir=str(tmp_path)).directory == tmp_path
    assert json.loads(json.dumps({"token_cache": "host"}))  # the extra is plain JSON


def test_twenty_threads_that_see_a_revoked_token_replay_on_one_new_login(butlr_conn: Any) -> None:
    """A thread must never take a refused token back from the store (or from a racing thread)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from airflow_provider_butlr.exceptions import ButlrError

    hook = ButlrHook()
    hook.graphql(SITES)
    start = threading.Barrier(20)
    failures: list[str] = []

    def call(_: int) -> None:
        start.wait()
        try:
            hook.graphql(SITES)
        except ButlrError as err:
            failures.append(str(err))

    for _ in range(3):
        butlr_conn.revoke_all_tokens()
        logins = butlr_conn.counters.logins
        with ThreadPoolExecutor(20) as pool:
            list(pool.map(call, range(20)))
        assert failures == []
        assert butlr_conn.counters.logins == logins + 1


async def test_the_trigger_uses_the_token_a_task_process_stored(butlr_conn: Any) -> None:
    """The triggerer is another process: it finds the task's token in the host store, no login."""
    from airflow_provider_butlr.triggers.butlr import ButlrTrigger

    ButlrHook().graphql(SITES)
    TOKEN_CACHE.clear(stores=False)  # the triggerer's memory is empty; the store on disk is not
    plan = {
        "requests": [{"endpoint": "/api/v3/graphql", "json": {"query": SITES}}],
        "conditions": [{"type": "value_at", "path": "data.sites.data.0.id", "op": "!=", "value": None}],
    }
    import time

    trigger = ButlrTrigger(plan=plan, deadline=time.time() + 10, poll_interval=0.1)
    events = [event.payload async for event in trigger.run()]
    assert [e["status"] for e in events] == ["success"]
    assert butlr_conn.counters.logins == 1


def test_a_token_taken_from_the_store_is_masked_in_this_process(butlr_conn: Any) -> None:
    """The process that logged in masked the token; one that reuses it from the store must too."""
    try:
        from airflow.sdk.log import redact
    except ImportError:  # Airflow < 3.2
        from airflow.sdk.execution_time.secrets_masker import redact  # type: ignore[no-redef]
    from airflow_provider_butlr.client.tokens import cache as token_cache

    ButlrHook().graphql(SITES)
    token = butlr_conn.issued_tokens[0]
    TOKEN_CACHE.clear(stores=False)
    adopted: list[str] = []
    real_mask = token_cache.mask_token

    def recording_mask(value: str) -> None:
        adopted.append(value)
        real_mask(value)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(token_cache, "mask_token", recording_mask)
        ButlrHook().graphql(SITES)
    assert adopted == [token]
    assert token not in str(redact(f"Bearer {token}"))
    assert butlr_conn.counters.logins == 1


async def test_waiting_for_another_process_login_does_not_block_the_event_loop(butlr_conn: Any) -> None:
    """While another process holds the key's lock, the async hook waits with asyncio.sleep: the loop
    keeps running other coroutines, and the token that process stores is used without a login."""
    import asyncio
    import fcntl
    import time

    async with ButlrAsyncHook() as hook:
        settings = await hook.aget_settings()
        store = store_for(settings)
        assert isinstance(store, HostStore)
        from airflow_provider_butlr.client.tokens.fernet import key_digest

        store.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = store.directory / f"{key_digest(settings.cache_key)}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # "another process" is logging in
        ticks = 0

        async def other_work() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(other_work())
        waiting = asyncio.create_task(hook.aget_token())
        while ticks < 5:  # the loop runs while aget_token waits for the lock
            await asyncio.sleep(0.01)
        assert not waiting.done()
        stored = AccessToken(
            "tok-from-another-process", obtained_at=time.time(), expires_at=time.time() + 3600
        )
        store.save(settings.cache_key, stored)
        os.close(fd)  # the other process is done
        assert await waiting == "tok-from-another-process"
        ticker.cancel()
    assert butlr_conn.counters.logins == 0
