"""ButlrAsyncHook: the async driver of the same exchange, for the triggerer (httpx, nothing blocking).

It supplies tokens and moves bytes with httpx; every rule about answers lives in the exchange
(:mod:`airflow_provider_butlr.client.flow`), shared with the sync hook.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import time
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import httpx
from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
from airflow.providers.common.compat.sdk import AirflowNotFoundException

from airflow_provider_butlr.client.body import BodyReader
from airflow_provider_butlr.client.calls import make_call
from airflow_provider_butlr.client.flow import adrive, authorised_flow, login_endpoint, login_flow
from airflow_provider_butlr.client.graphql import GRAPHQL_PATH, graphql_body, graphql_data
from airflow_provider_butlr.client.limits.redis_backend import RedisConfig
from airflow_provider_butlr.client.messages import NEED_TOKEN, Answer, DropToken, Outgoing, Step
from airflow_provider_butlr.client.ratelimit import apace_after, limiter
from airflow_provider_butlr.client.retry import DeadlineExceeded, awith_retries
from airflow_provider_butlr.client.settings import ButlrSettings, settings_from_connection
from airflow_provider_butlr.client.tokens.cache import TOKEN_CACHE, amask_token
from airflow_provider_butlr.client.tokens.model import AccessToken
from airflow_provider_butlr.client.tokens.stores import TokenStore, store_for
from airflow_provider_butlr.common.aio import within
from airflow_provider_butlr.hooks.base import ButlrBaseHook
from airflow_provider_butlr.hooks.connection_lookup import connection_not_found
from airflow_provider_butlr.polling.answers import Verdict
from airflow_provider_butlr.polling.plans import PollPlan, PollRequest, poll_flow
from airflow_provider_butlr.reporting.topology import TOPOLOGY_QUERY, Topology

_UNRESOLVED = object()  # the token store is looked up once, on the first token


class ButlrAsyncHook(ButlrBaseHook):
    """Async Butlr client; use it as ``async with ButlrAsyncHook(conn_id) as hook:``.

    The connection is read once with Airflow's async helpers; the httpx client lives exactly as long
    as the ``async with`` block (or until :meth:`aclose`). Parameters as the sync hook's.
    """

    hook_name = "Butlr (async)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._settings: ButlrSettings | None = None
        self._client: httpx.AsyncClient | None = None
        self._store: TokenStore | object | None = _UNRESOLVED
        self._redis: RedisConfig | None = None

    # --- connection, settings, client ----------------------------------------------------------

    async def aget_settings(self) -> ButlrSettings:
        """The connection, resolved once without blocking the event loop."""
        if self._settings is None:
            try:
                conn = await get_async_connection(self.butlr_conn_id)
            except AirflowNotFoundException as err:
                raise connection_not_found(self.butlr_conn_id, err) from err
            extra = await get_async_extra_dejson(conn)
            settings = settings_from_connection(conn, self.butlr_conn_id, extra)
            self._redis = await self._aredis_config(settings)
            self._settings = settings
        return self._settings

    async def _aredis_config(self, settings: ButlrSettings) -> RedisConfig | None:
        """The Redis of the extra ``redis_conn_id``, read without blocking the event loop."""
        if settings.redis_conn_id is None:
            return None
        try:
            conn = await get_async_connection(settings.redis_conn_id)
        except AirflowNotFoundException as err:
            raise connection_not_found(settings.redis_conn_id, err) from err
        return RedisConfig.from_connection(conn, settings.redis_conn_id)

    async def __aenter__(self) -> ButlrAsyncHook:
        settings = await self.aget_settings()
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.options.timeout_for(settings),
                verify=_ssl_verify(settings.verify),
                follow_redirects=False,  # the exchange follows same-origin redirects itself
            )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the httpx client (idempotent; safe from ``cleanup``/``on_kill``)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @property
    def is_open(self) -> bool:
        return self._client is not None

    def _require_client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("ButlrAsyncHook is not open: use 'async with ButlrAsyncHook(...) as hook'")
        return self._client

    # --- tokens --------------------------------------------------------------------------------

    def _token_store(self, settings: ButlrSettings) -> TokenStore | None:
        """Where tokens are shared beyond this process, looked up once per hook."""
        if self._store is _UNRESOLVED:
            self._store = store_for(settings, self._redis)
        return self._store  # type: ignore[return-value]

    async def aget_token(self) -> str:
        """A valid token from the process-wide cache (shared with the sync hook), else a login."""
        settings = await self.aget_settings()
        return await TOKEN_CACHE.aget(
            settings.cache_key, lambda: self._alogin(settings), store=self._token_store(settings)
        )

    async def _alogin(self, settings: ButlrSettings) -> AccessToken:
        timeout = self.options.timeout_for(settings)
        token: AccessToken = await awith_retries(
            lambda: adrive(login_flow(settings, time.time, timeout), self._aperform),
            self.options.login_policy(settings, self.options.retry_policy_for(settings)),
            "POST",
            login_endpoint(settings),
            settings.base_url,
            settings.conn_id,
        )
        await amask_token(token.value)
        self.log.info("Logged in to Butlr at %s (%s grant).", settings.base_url, settings.auth_type)
        return token

    # --- transport -------------------------------------------------------------------------------

    async def _aperform(self, step: Step) -> Any:
        """Answer one step of an exchange flow."""
        if step is NEED_TOKEN:
            return await self.aget_token()
        if isinstance(step, DropToken):
            settings = await self.aget_settings()
            await TOKEN_CACHE.ainvalidate(settings.cache_key, step.token, store=self._token_store(settings))
            return None
        if not isinstance(step, Outgoing):
            raise TypeError(f"unknown exchange step {step!r}")
        settings = await self.aget_settings()
        seconds = step.timeout or self.options.timeout_for(settings)
        rate = limiter(settings, self._redis)
        async with rate.asending() if rate is not None else nullcontext():
            try:  # a total deadline: connect, headers and body
                answer = await within(self._atransmit(step, seconds), seconds)
            except TimeoutError:
                raise DeadlineExceeded(seconds) from None
        return await apace_after(answer, rate, self.options.retry_after_cap)

    async def _atransmit(self, out: Outgoing, seconds: float) -> Answer:
        """Send one request; the whole answer within the size cap (the caller bounds the time)."""
        loop = asyncio.get_running_loop()
        client = self._require_client()
        limit = (await self.aget_settings()).max_response_bytes
        request = client.build_request(
            out.method, out.url, json=out.json, params=out.params, headers=dict(out.headers), timeout=seconds
        )
        response = await client.send(request, stream=True)
        try:
            reader = BodyReader(
                response.status_code,
                out.url,
                limit,
                loop.time() + seconds,
                seconds,
                response.headers.get("Content-Encoding"),
            )
            async for chunk in response.aiter_raw():  # as httpcore read them (64 KiB): decoded under the cap
                if not reader.feed(chunk, loop.time()):
                    break
            body = reader.finish()
        finally:
            await response.aclose()
        return Answer(response.status_code, response.headers, body, str(response.url), raw=response)

    # --- requests ------------------------------------------------------------------------------

    async def arequest_json(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send an authenticated request and return its JSON body: ``ButlrHook.request_json``'s rules."""
        settings = await self.aget_settings()
        self._require_client()
        call = make_call(settings, method, path, json=json, params=params)
        outcome = await awith_retries(
            lambda: adrive(authorised_flow(call, settings), self._aperform),
            self.options.retry_policy_for(settings),
            call.method,
            call.endpoint,
            settings.base_url,
            settings.conn_id,
        )
        return outcome.payload

    async def agraphql(
        self, query: str, variables: dict[str, Any] | None = None, operation_name: str | None = None
    ) -> Any:
        """Run a GraphQL query; return ``data``. Any ``errors`` entry raises ButlrGraphQLError."""
        payload = await self.arequest_json(
            "POST", GRAPHQL_PATH, json=graphql_body(query, variables, operation_name)
        )
        return graphql_data(payload, await self.aget_settings())

    async def apoll(self, plan: PollPlan, now: float) -> tuple[Verdict, list[Any]]:
        """One poll of a plan (the triggerer's twin of ``ButlrHook.poll``)."""
        return await adrive(poll_flow(plan, now, time.time), self.apoll_request)

    async def apoll_request(self, request: PollRequest) -> Any:
        """One request of a poll: its JSON answer, a GraphQL answer with ``errors`` refused."""
        payload = await self.arequest_json(
            request.method, request.endpoint, json=request.json, params=request.params
        )
        if request.endpoint.rstrip("/").endswith(GRAPHQL_PATH):
            graphql_data(payload, await self.aget_settings())
        return payload

    async def aget_topology(self) -> Topology:
        """Sites -> buildings -> floors -> rooms/zones (the sync hook's ``get_topology``)."""
        return Topology.from_graphql(await self.agraphql(TOPOLOGY_QUERY))


@functools.lru_cache(maxsize=16)
def _ssl_verify(verify: bool | str) -> ssl.SSLContext:
    """The TLS context of a ``verify`` setting, built once per process and shared by every client:
    building one (loading the CA bundle) costs milliseconds and about a MiB for each new client.
    httpx wants a bool or an SSLContext (a CA-bundle path string is deprecated there)."""
    if isinstance(verify, str):
        if os.path.isdir(verify):  # a c_rehash directory, as requests accepts it
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    return httpx.create_ssl_context(verify=verify)
