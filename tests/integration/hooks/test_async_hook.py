"""ButlrAsyncHook against the emulator: shared token cache, 401 replay, retries, no sync lookups."""

from __future__ import annotations

import itertools
import json
import logging
import threading
from typing import Any

import pytest

from airflow_provider_butlr.exceptions import ButlrAPIError, ButlrAuthError, ButlrConfigurationError
from airflow_provider_butlr.hooks.butlr import ButlrHook
from airflow_provider_butlr.hooks.butlr_async import ButlrAsyncHook
from tests.conftest import TEST_CLIENT_SECRET, connection_json

GRAPHQL = "/api/v3/graphql"
SITES = {"query": "{ sites { data { id } } }"}


def fast_async_hook(conn_id: str = "butlr_default", **kwargs: Any) -> ButlrAsyncHook:
    kwargs.setdefault("retry_wait_initial", 0.01)
    kwargs.setdefault("retry_wait_max", 0.05)
    return ButlrAsyncHook(conn_id, **kwargs)


async def sites(hook: ButlrAsyncHook) -> list[Any]:
    payload = await hook.arequest_json("POST", GRAPHQL, json=SITES)
    return list(payload["data"]["sites"]["data"])


def async_lookup_available() -> bool:
    """Airflow 3.3.2+ masks a connection's secrets asynchronously (``Connection.aextra_dejson``).

    Before, ``common.compat``'s ``get_async_connection`` runs the synchronous lookup in a worker thread
    (Airflow's ``aget_connection`` could deadlock there); the test below then checks the thread.
    """
    from airflow.providers.common.compat.sdk import Connection

    return hasattr(Connection, "aextra_dejson")


@pytest.mark.skipif(
    not async_lookup_available(), reason="no asynchronous connection lookup before Airflow 3.3.2"
)
async def test_reads_the_connection_without_the_sync_lookup(
    butlr_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.common.compat.sdk import BaseHook, Connection

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a blocking connection lookup ran on the event loop")

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(forbidden))
    monkeypatch.setattr(Connection, "get", classmethod(forbidden))
    monkeypatch.setattr(Connection, "extra_dejson", property(forbidden))
    async with fast_async_hook() as hook:
        assert await sites(hook)
        assert (await hook.aget_settings()).base_url == butlr_conn.url


@pytest.mark.skipif(async_lookup_available(), reason="Airflow 3.3.2+ looks the connection up asynchronously")
async def test_runs_the_sync_lookup_off_the_event_loop(
    butlr_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.common.compat.sdk import BaseHook, Connection

    loop_thread = threading.get_ident()
    lookup_threads: list[int] = []
    get_connection = BaseHook.get_connection.__func__  # type: ignore[attr-defined]
    extra_dejson = Connection.extra_dejson

    def recording_get_connection(cls: Any, *args: Any, **kwargs: Any) -> Any:
        lookup_threads.append(threading.get_ident())
        return get_connection(cls, *args, **kwargs)

    def recording_extra_dejson(conn: Any) -> Any:
        lookup_threads.append(threading.get_ident())
        return extra_dejson.__get__(conn)

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(recording_get_connection))
    monkeypatch.setattr(Connection, "extra_dejson", property(recording_extra_dejson))
    async with fast_async_hook() as hook:
        assert await sites(hook)
        assert (await hook.aget_settings()).base_url == butlr_conn.url
    assert lookup_threads, "the connection was looked up"
    assert loop_thread not in lookup_threads, "a blocking connection lookup ran on the event loop"


async def test_shares_the_token_cache_with_the_sync_hook(butlr_conn: Any) -> None:
    ButlrHook().get_token()
    async with fast_async_hook() as hook:
        for _ in range(5):
            await sites(hook)
    ButlrHook().graphql(SITES["query"])
    assert butlr_conn.counters.logins == 1


async def test_401_drops_the_token_logs_in_once_and_replays(butlr_conn: Any) -> None:
    async with fast_async_hook() as hook:
        await sites(hook)
        butlr_conn.revoke_all_tokens()
        assert await sites(hook)
    assert butlr_conn.counters.logins == 2
    assert butlr_conn.counters.requests(GRAPHQL) == 3


async def test_graphql_unauthenticated_is_handled_like_a_401(butlr_conn: Any) -> None:
    butlr_conn.config.graphql_auth_error_mode = "graphql"
    async with fast_async_hook() as hook:
        await sites(hook)
        butlr_conn.revoke_all_tokens()
        assert await sites(hook)
    assert butlr_conn.counters.logins == 2


async def test_a_second_401_raises_an_auth_error(butlr_conn: Any) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="unauthorized")
    async with fast_async_hook() as hook:
        with pytest.raises(ButlrAuthError, match="even after a fresh login") as err:
            await sites(hook)
    assert butlr_conn.counters.requests(GRAPHQL) == 2
    # the same attributes as the sync hook's error for the same fault
    assert (err.value.status, err.value.method, err.value.endpoint, err.value.attempts) == (
        401,
        "POST",
        GRAPHQL,
        2,
    )


async def test_429_waits_for_retry_after_then_succeeds(butlr_conn: Any) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="status", status=429, retry_after="0.4", times=1)
    async with fast_async_hook() as hook:
        assert await sites(hook)
    stamps = [r.timestamp for r in butlr_conn.counters.log if r.path == GRAPHQL]
    assert len(stamps) == 2
    assert stamps[1] - stamps[0] >= 0.35


async def test_5xx_and_dropped_connections_are_retried(butlr_conn: Any) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="status", status=502, at_calls=[1])
    butlr_conn.faults.add(path=GRAPHQL, kind="drop", at_calls=[2])
    async with fast_async_hook() as hook:
        assert await sites(hook)
    assert butlr_conn.counters.requests(GRAPHQL) == 3


async def test_an_exhausted_budget_names_the_attempts(butlr_conn: Any) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="status", status=503)
    async with fast_async_hook(max_retries=2) as hook:
        with pytest.raises(
            ButlrAPIError, match=r"failed after 3 attempt\(s\) \(2 retries allowed\): HTTP 503"
        ):
            await sites(hook)
    assert butlr_conn.counters.requests(GRAPHQL) == 3


async def test_a_client_error_is_not_retried(butlr_conn: Any) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="status", status=400)
    async with fast_async_hook() as hook:
        with pytest.raises(ButlrAPIError, match="HTTP 400") as err:
            await sites(hook)
    assert err.value.status == 400
    assert butlr_conn.counters.requests(GRAPHQL) == 1


async def test_a_204_answer_is_none_not_malformed_json(butlr_conn: Any) -> None:
    # DELETE /api/v1/client/{id} answers 204 without a body (played by the fault schedule).
    butlr_conn.faults.add(path="/api/v1/client", kind="status", status=204, body=b"")
    async with fast_async_hook() as hook:
        assert await hook.arequest_json("DELETE", "/api/v1/client/client_x") is None
    assert butlr_conn.counters.requests("/api/v1/client/client_x") == 1


async def test_bad_credentials_fail_once_without_the_secret(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-secret-Yk2Lp9Qr7Tz4"
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(emulator, password=wrong))
    caplog.set_level(logging.DEBUG)
    async with fast_async_hook() as hook:
        with pytest.raises(ButlrAuthError, match="Butlr login refused") as err:
            await sites(hook)
    assert emulator.counters.logins == 1
    assert wrong not in str(err.value) and wrong not in caplog.text
    assert TEST_CLIENT_SECRET not in str(err.value)


async def test_tokens_are_kept_out_of_logs(butlr_conn: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with fast_async_hook() as hook:
        await sites(hook)
        butlr_conn.revoke_all_tokens()
        await sites(hook)
    assert butlr_conn.issued_tokens
    for token in butlr_conn.issued_tokens:
        assert token not in caplog.text
    assert TEST_CLIENT_SECRET not in caplog.text


async def test_refuses_another_host_and_an_unopened_client(butlr_conn: Any) -> None:
    async with fast_async_hook() as hook:
        with pytest.raises(ButlrConfigurationError, match="not on the Butlr API host"):
            await hook.arequest_json("POST", "https://elsewhere.example/api/v3/graphql", json=SITES)
    with pytest.raises(RuntimeError, match="async with"):
        await sites(fast_async_hook())
    assert butlr_conn.counters.total == 0


async def test_concurrent_first_calls_share_one_login(butlr_conn: Any) -> None:
    import asyncio

    async with fast_async_hook() as one, fast_async_hook() as two:
        results = await asyncio.gather(*(sites(h) for h in itertools.islice(itertools.cycle([one, two]), 10)))
    assert all(results)
    assert butlr_conn.counters.logins == 1
    json.dumps(results)


async def test_a_tls_failure_is_not_retried_and_reads_like_the_sync_one(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # https:// to the plain-HTTP emulator: the TLS handshake fails on every attempt, like an untrusted
    # certificate; another attempt cannot heal it, and the sync hook does not retry it either.
    https_url = emulator.url.replace("http://", "https://")
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(emulator, host=https_url, max_retries=3))
    caplog.set_level(logging.WARNING)
    with pytest.raises(ButlrAPIError) as sync_err:
        ButlrHook(retry_wait_initial=0.01).get_token()
    async with fast_async_hook() as hook:
        with pytest.raises(ButlrAPIError) as async_err:
            await sites(hook)
    assert "retrying" not in caplog.text
    assert str(async_err.value) == str(sync_err.value)
    assert "TLS handshake failed" in str(async_err.value) and "WRONG_VERSION_NUMBER" in str(async_err.value)
    assert (async_err.value.endpoint, async_err.value.attempts) == ("/api/v2/clients/login", 1)
    assert TEST_CLIENT_SECRET not in str(async_err.value)


async def test_a_403_drops_the_cached_token_like_the_sync_hook(butlr_conn: Any) -> None:
    async with fast_async_hook() as hook:
        await sites(hook)
        butlr_conn.faults.add(path=GRAPHQL, kind="status", status=403, times=1)
        with pytest.raises(ButlrAuthError, match="HTTP 403"):
            await sites(hook)
        assert butlr_conn.counters.requests(GRAPHQL) == 2  # no replay after a 403
        assert await sites(hook)
    assert butlr_conn.counters.logins == 2


async def test_a_ca_bundle_directory_works_as_in_the_sync_hook(
    butlr_conn: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # requests accepts a c_rehash directory as ``verify``; the async client must accept it too
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(butlr_conn, ca_bundle=str(tmp_path)))
    assert ButlrHook().graphql(SITES["query"])
    async with fast_async_hook() as hook:
        assert await sites(hook)


@pytest.fixture
def garbled_api(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A Butlr whose data answers claim gzip but are not (a broken proxy): logins work."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Api(BaseHTTPRequestHandler):
        data_calls = 0

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.endswith("/login"):
                body = json.dumps(
                    {"access_token": "garbled-api-token-0123456789", "expires_in": 3600}
                ).encode()
                encoding = None
            else:
                type(self).data_calls += 1
                body, encoding = b"this is not gzip at all", "gzip"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    conn = {"conn_type": "butlr", "host": f"http://127.0.0.1:{server.server_address[1]}", "login": "id"}
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", json.dumps({**conn, "password": "garbled-secret-1"}))
    yield Api
    server.shutdown()
    server.server_close()


async def test_an_undecodable_body_is_retried_then_a_butlr_error_like_the_sync_hook(garbled_api: Any) -> None:
    with pytest.raises(ButlrAPIError) as sync_err:
        ButlrHook(max_retries=1, retry_wait_initial=0.01).graphql(SITES["query"])
    assert garbled_api.data_calls == 2
    async with fast_async_hook(max_retries=1) as hook:
        with pytest.raises(ButlrAPIError) as async_err:
            await sites(hook)
    assert garbled_api.data_calls == 4
    for err in (sync_err.value, async_err.value):
        assert "failed after 2 attempt(s)" in str(err) and err.attempts == 2


def test_async_login_locks_go_away_with_their_event_loop() -> None:
    """An asyncio.Lock belongs to one loop: a later loop (which may reuse the id) gets its own."""
    import asyncio
    import gc

    from airflow_provider_butlr.client.tokens.cache import TokenCache
    from airflow_provider_butlr.client.tokens.model import AccessToken

    cache = TokenCache()
    logins = itertools.count(1)

    async def login() -> AccessToken:
        await asyncio.sleep(0)
        return AccessToken(f"token-{next(logins)}", obtained_at=0.0, expires_at=100.0)

    async def two_at_once() -> list[str]:  # contended: both wait on the loop's lock
        return list(await asyncio.gather(*(cache.aget(("k",), login, clock=lambda: 95.0) for _ in range(2))))

    for _ in range(3):
        assert len(set(asyncio.run(two_at_once()))) == 2  # due at 95: each call logs in, in turn
        gc.collect()
        assert len(cache._async_locks) == 1  # only the last loop's lock: closed loops' are dropped
