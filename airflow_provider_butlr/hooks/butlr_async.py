"""ButlrAsyncHook: the async driver of the same exchange, for the triggerer (httpx, nothing blocking).

It supplies tokens and moves bytes with httpx; every rule about answers lives in
:mod:`airflow_provider_butlr.exchange`, shared with the sync hook.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import httpx
from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
from airflow.providers.common.compat.sdk import AirflowNotFoundException

from airflow_provider_butlr import exchange
from airflow_provider_butlr.aio import within
from airflow_provider_butlr.auth import TOKEN_CACHE, AccessToken, amask_token
from airflow_provider_butlr.exchange import NEED_TOKEN, Answer, DropToken, Outgoing, Step
from airflow_provider_butlr.hooks.base import ButlrBaseHook
from airflow_provider_butlr.hooks.connection_lookup import connection_not_found
from airflow_provider_butlr.retry import DeadlineExceeded
from airflow_provider_butlr.settings import ButlrSettings, settings_from_connection
from airflow_provider_butlr.token_store import TokenStore, store_for

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

    # --- connection, settings, client ----------------------------------------------------------

    async def aget_settings(self) -> ButlrSettings:
        """The connection, resolved once without blocking the event loop."""
        if self._settings is None:
            try:
                conn = await get_async_connection(self.butlr_conn_id)
            except AirflowNotFoundException as err:
                raise connection_not_found(self.butlr_conn_id, err) from err
            extra = await get_async_extra_dejson(conn)
            self._settings = settings_from_connection(conn, self.butlr_conn_id, extra)
        return self._settings

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
            self._store = store_for(settings)
        return self._store  # type: ignore[return-value]

    async def aget_token(self) -> str:
        """A valid token from the process-wide cache (shared with the sync hook), else a login."""
        settings = await self.aget_settings()
        return await TOKEN_CACHE.aget(
            settings.cache_key, lambda: self._alogin(settings), store=self._token_store(settings)
        )

    async def _alogin(self, settings: ButlrSettings) -> AccessToken:
        timeout = self.options.timeout_for(settings)
        token: AccessToken = await exchange.awith_retries(
            lambda: exchange.adrive(exchange.login_flow(settings, time.time, timeout), self._aperform),
            self.options.retry_policy_for(settings),
            "POST",
            exchange.login_endpoint(settings),
            settings.base_url,
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
        assert isinstance(step, Outgoing)
        settings = await self.aget_settings()
        seconds = step.timeout or self.options.timeout_for(settings)
        rate = exchange.limiter(settings)
        async with rate.asending() if rate is not None else nullcontext():
            try:  # a total deadline: connect, headers and body
                answer = await within(self._atransmit(step, seconds), seconds)
            except TimeoutError:
                raise DeadlineExceeded(seconds) from None
        return exchange.pace_after(answer, rate)

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
            reader = exchange.BodyReader(response.status_code, out.url, limit, loop.time() + seconds, seconds)
            async for chunk in response.aiter_bytes(exchange.READ_CHUNK):
                if not reader.feed(chunk, loop.time()):
                    break
        finally:
            await response.aclose()
        return Answer(response.status_code, response.headers, reader.body(), str(response.url), raw=response)

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
        call = exchange.make_call(settings, method, path, json=json, params=params)
        outcome = await exchange.awith_retries(
            lambda: exchange.adrive(exchange.authorised_flow(call, settings), self._aperform),
            self.options.retry_policy_for(settings),
            call.method,
            call.endpoint,
            settings.base_url,
        )
        return outcome.payload

    async def agraphql(
        self, query: str, variables: dict[str, Any] | None = None, operation_name: str | None = None
    ) -> Any:
        """Run a GraphQL query; return ``data``. Any ``errors`` entry raises ButlrGraphQLError."""
        payload = await self.arequest_json(
            "POST", exchange.GRAPHQL_PATH, json=exchange.graphql_body(query, variables, operation_name)
        )
        return exchange.graphql_data(payload, await self.aget_settings())


def _ssl_verify(verify: bool | str) -> bool | ssl.SSLContext:
    """httpx wants a bool or an SSLContext (a CA-bundle path string is deprecated there)."""
    if isinstance(verify, str):
        if os.path.isdir(verify):  # a c_rehash directory, as requests accepts it
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    return verify
