"""ButlrAsyncHook: the async twin of ButlrHook for the triggerer (httpx, nothing blocking on the loop).

It shares everything but the transport with the sync hook: settings from ``settings.py``, the login
request and its interpretation plus the process-wide token cache from ``auth.py``, the retry policy
and error classification from ``retry.py``.
"""

from __future__ import annotations

import os
import ssl
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_butlr.auth import (
    TOKEN_CACHE,
    AccessToken,
    amask_token,
    bearer_header,
    error_text,
    headers_for,
    login_request,
    token_from_login_response,
)
from airflow_provider_butlr.exceptions import ButlrAuthError, ButlrConfigurationError
from airflow_provider_butlr.hooks.butlr import GRAPHQL_PATH
from airflow_provider_butlr.hooks.butlr import _is_unauthenticated as is_unauthenticated
from airflow_provider_butlr.retry import (
    NO_CONTENT_STATUSES,
    RETRYABLE_STATUSES,
    RetryPolicy,
    TransientDataError,
    TransientHTTPError,
    give_up_error,
    parse_retry_after,
    status_error,
)
from airflow_provider_butlr.settings import ButlrSettings, ClientOptions, parse_extra, settings_from_fields
from airflow_provider_butlr.token_store import store_for


class ButlrAsyncHook(BaseHook):
    """Async Butlr client; use it as ``async with ButlrAsyncHook(conn_id) as hook:``.

    The connection is read once with Airflow's async helpers; the httpx client lives exactly as long
    as the ``async with`` block (or until :meth:`aclose`).

    :param butlr_conn_id: the ``butlr`` connection.
    :param timeout: per-request timeout in seconds (overrides the connection's).
    :param max_retries: retries for 429/5xx/network errors (overrides the connection's).
    :param retry_wait_initial: first backoff wait in seconds.
    :param retry_wait_max: longest backoff wait in seconds.
    :param retry_after_cap: longest wait honoured from a ``Retry-After`` header, in seconds.
    """

    conn_name_attr = "butlr_conn_id"
    default_conn_name = "butlr_default"
    hook_name = "Butlr (async)"

    def __init__(
        self,
        butlr_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_wait_initial: float = 0.5,
        retry_wait_max: float = 30.0,
        retry_after_cap: float = 60.0,
    ) -> None:
        super().__init__()
        self.butlr_conn_id = butlr_conn_id
        self.options = ClientOptions(
            timeout, max_retries, retry_wait_initial, retry_wait_max, retry_after_cap
        )
        self._settings: ButlrSettings | None = None
        self._client: httpx.AsyncClient | None = None

    # --- connection, settings, client ----------------------------------------------------------

    async def aget_settings(self) -> ButlrSettings:
        """The connection, resolved once without blocking the event loop."""
        if self._settings is None:
            conn = await get_async_connection(self.butlr_conn_id)
            extra = await get_async_extra_dejson(conn)
            self._settings = settings_from_fields(
                conn_id=self.butlr_conn_id,
                host=conn.host,
                login=conn.login,
                password=conn.password,
                extra=parse_extra(extra, self.butlr_conn_id),
                port=conn.port,
            )
        return self._settings

    def _retry_policy(self, settings: ButlrSettings) -> RetryPolicy:
        return self.options.retry_policy_for(settings)

    async def __aenter__(self) -> ButlrAsyncHook:
        settings = await self.aget_settings()
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.options.timeout_for(settings),
                verify=_ssl_verify(settings.verify),
                follow_redirects=False,  # a redirect must never carry the bearer token elsewhere
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

    def url_for(self, settings: ButlrSettings, path: str) -> str:
        """Relative paths only go to the configured API host; absolute URLs must stay on it."""
        if "://" in path:
            parts = urlsplit(path)
            if (parts.scheme, parts.netloc.lower()) != settings.origin:
                raise ButlrConfigurationError(
                    f"endpoint {path!r} is not on the Butlr API host {settings.base_url}; "
                    "the bearer token is only sent to the configured host"
                )
            return path
        return urljoin(settings.base_url + "/", path.lstrip("/"))

    # --- tokens --------------------------------------------------------------------------------

    async def aget_token(self) -> str:
        """A valid token from the process-wide cache (shared with the sync hook), else a login."""
        settings = await self.aget_settings()
        return await TOKEN_CACHE.aget(
            settings.cache_key, lambda: self._alogin(settings), store=store_for(settings)
        )

    async def _alogin(self, settings: ButlrSettings) -> AccessToken:
        url, body = login_request(settings)
        client = self._require_client()

        async def attempt() -> AccessToken:
            response = await client.post(url, json=body, headers=headers_for(body))
            return token_from_login_response(
                settings,
                status=response.status_code,
                body=response.text,
                retry_after_header=response.headers.get("Retry-After"),
                now=time.time(),
            )

        token: AccessToken = await self._with_retries(attempt, "POST", urlsplit(url).path, settings)
        await amask_token(token.value)
        self.log.info("Logged in to Butlr at %s (%s grant).", settings.base_url, settings.auth_type)
        return token

    # --- requests ------------------------------------------------------------------------------

    async def arequest_json(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Send an authenticated request and return its JSON body.

        Same behaviour as ``ButlrHook.request_json``: 429/5xx/network errors retried per the policy
        (honouring ``Retry-After``), one replay after a 401 with a fresh login, a ``ButlrError`` for
        an error status or an exhausted budget.
        """
        settings = await self.aget_settings()
        client = self._require_client()
        method = method.upper()
        url = self.url_for(settings, path)
        endpoint = urlsplit(url).path
        headers = headers_for(json)

        async def send() -> tuple[httpx.Response, str]:
            token = await self.aget_token()
            response = await client.request(
                method, url, json=json, params=params, headers={**headers, **bearer_header(token)}
            )
            return response, token

        async def attempt() -> Any:
            response, token = await send()
            if _token_refused(response, endpoint):
                await TOKEN_CACHE.ainvalidate(settings.cache_key, token, store=store_for(settings))
                self.log.info(
                    "Butlr %s %s refused the token; logging in again and replaying once.", method, endpoint
                )
                response, token = await send()
                if _token_refused(response, endpoint):
                    await TOKEN_CACHE.ainvalidate(settings.cache_key, token, store=store_for(settings))
                    raise ButlrAuthError(
                        f"Butlr {method} {endpoint} refused the token (HTTP {response.status_code}) even after "
                        f"a fresh login ({error_text(response.text, (settings.secret,))})",
                        status=response.status_code,
                        method=method,
                        endpoint=endpoint,
                        attempts=2,
                    )
            if response.status_code in RETRYABLE_STATUSES:
                raise TransientHTTPError(
                    response.status_code,
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                    detail=error_text(response.text, (settings.secret,)),
                )
            if response.status_code >= 400:
                if response.status_code == 403:  # a token Butlr refuses must not stay cached (no replay)
                    await TOKEN_CACHE.ainvalidate(settings.cache_key, token, store=store_for(settings))
                raise status_error(
                    response.status_code,
                    error_text(response.text, (settings.secret,)),
                    method=method,
                    endpoint=endpoint,
                )
            if response.status_code in NO_CONTENT_STATUSES:
                return None  # 204 has no body to parse
            try:
                return response.json()
            except ValueError as err:
                raise TransientDataError(f"malformed JSON in a {response.status_code} answer") from err

        return await self._with_retries(attempt, method, endpoint, settings)

    async def _with_retries(self, attempt: Any, method: str, endpoint: str, settings: ButlrSettings) -> Any:
        policy = self._retry_policy(settings)
        retrying = policy.async_retrying(f"{method} {endpoint}")
        try:
            return await retrying(attempt)
        except Exception as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            error = give_up_error(
                exc, method=method, endpoint=endpoint, attempts=attempts, max_retries=policy.max_retries
            )
            if error is exc:
                raise
            raise error from exc


def _token_refused(response: httpx.Response, endpoint: str) -> bool:
    """HTTP 401, or GraphQL's HTTP 200 with an ``UNAUTHENTICATED`` error: both mean "log in again"."""
    if response.status_code == 401:
        return True
    if response.status_code != 200 or not endpoint.rstrip("/").endswith(GRAPHQL_PATH):
        return False
    try:
        payload = response.json()
    except ValueError:
        return False
    errors = payload.get("errors") if isinstance(payload, dict) else None
    return isinstance(errors, list) and is_unauthenticated(errors)


def _ssl_verify(verify: bool | str) -> bool | ssl.SSLContext:
    """httpx wants a bool or an SSLContext (a CA-bundle path string is deprecated there)."""
    if isinstance(verify, str):
        if os.path.isdir(verify):  # a c_rehash directory, as requests accepts it
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    return verify
