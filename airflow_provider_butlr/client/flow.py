"""One authorised exchange with the Butlr API, without a transport (httpx's ``auth_flow`` idea).

A flow is a generator. It yields what it needs, and the driver (the sync hook with requests, the
async hook with httpx) answers:

* :data:`NEED_TOKEN` -> the driver sends back a valid access token (cache, store or a login);
* :class:`DropToken` -> the driver forgets that token (only that one), sends back None;
* :class:`Outgoing`  -> the driver sends that HTTP request and sends back an :class:`Answer`.

The flow owns every rule: HTTP 401 and GraphQL ``UNAUTHENTICATED`` alike (drop that token, log in
once more, replay once), same-origin redirects only, what is retryable (with its ``Retry-After``),
the typed :class:`ButlrError` of a final failure, 204 answers, JSON decoding, and the scrubbing of
every text that leaves. Drivers only move bytes; so the two paths cannot drift apart.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

from airflow_provider_butlr.client.calls import default_headers
from airflow_provider_butlr.client.classify import answer_detail, classify, token_refused
from airflow_provider_butlr.client.messages import (
    NEED_TOKEN,
    Answer,
    Call,
    DropToken,
    Flow,
    Outcome,
)
from airflow_provider_butlr.client.scrub import scrub
from airflow_provider_butlr.client.settings import ButlrSettings, origin_of
from airflow_provider_butlr.client.tokens.grants import login_request, token_from_login_response
from airflow_provider_butlr.client.tokens.model import AccessToken
from airflow_provider_butlr.exceptions import ButlrAuthError

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

T = TypeVar("T")
S = TypeVar("S")


def _redirect_target(call: Call, answer: Answer, settings: ButlrSettings) -> tuple[str, str] | None:
    """``(url, method)`` of a same-origin redirect to follow; None when the answer is no redirect."""
    location = answer.headers.get("Location")
    if answer.status not in REDIRECT_STATUSES or not location:
        return None
    target = urljoin(answer.url, location)
    origin = origin_of(target)
    if origin != settings.origin:
        raise call.error(
            f"was redirected (HTTP {answer.status}) to {_elsewhere(origin, settings.origin, target)}; "
            f"refusing to follow: the token is only sent to {settings.base_url}",
            answer.status,
        )
    keeps_method = answer.status in (307, 308) or call.method in ("GET", "HEAD")
    return target, call.method if keeps_method else "GET"


def _elsewhere(origin: tuple[str, str, int], ours: tuple[str, str, int], target: str) -> str:
    """What differs between a redirect's origin and the API's: the host, else the scheme, else the port."""
    scheme, host, port = origin
    if host != ours[1]:
        return f"another host, {scrub(urlsplit(target).hostname or host or target)}"
    if scheme != ours[0]:
        return f"another scheme, {scrub(scheme)[:10]}:// instead of {ours[0]}:// (same host {host})"
    return f"another port, {port} instead of {ours[2]} (same host {host})"


def send_following_redirects(call: Call, token: str | None, settings: ButlrSettings) -> Flow[Answer]:
    """Send ``call`` and follow same-origin redirects (at most :data:`MAX_REDIRECTS`)."""
    answer: Answer = yield call.outgoing(token)
    for _ in range(MAX_REDIRECTS):
        target = _redirect_target(call, answer, settings)
        if target is None:
            return answer
        answer = yield call.outgoing(token, url=target[0], method=target[1])
    raise call.error(f"was redirected more than {MAX_REDIRECTS} times", answer.status)


def authorised_flow(call: Call, settings: ButlrSettings) -> Flow[Outcome]:
    """One attempt of an authorised call: token, send, one replay after a refusal, classification."""
    token: str = yield NEED_TOKEN
    answer = yield from send_following_redirects(call, token, settings)
    if token_refused(call, answer):
        yield DropToken(token)
        log.info(
            "Butlr %s %s refused the token; logging in again and replaying once.", call.method, call.endpoint
        )
        token = yield NEED_TOKEN
        answer = yield from send_following_redirects(call, token, settings)
        if token_refused(call, answer):
            yield DropToken(token)
            raise call.error(
                f"refused the token (HTTP {answer.status}) even after a fresh login "
                f"(2 attempt(s); {answer_detail(answer, settings)})",
                answer.status,
                ButlrAuthError,
                attempts=2,
            )
    if answer.status == 403:  # a token Butlr refuses must not stay cached (no replay)
        yield DropToken(token)
    return classify(call, answer, settings)


def login_endpoint(settings: ButlrSettings) -> str:
    """The path of the configured grant's login call (for messages and retry logs)."""
    return urlsplit(login_request(settings)[0]).path


def login_flow(settings: ButlrSettings, now: Callable[[], float], timeout: float | None) -> Flow[AccessToken]:
    """One attempt of the login call of the configured grant (no token; same redirect rule)."""
    url, body = login_request(settings)
    call = Call(
        "POST", url, urlsplit(url).path, json=body, headers=default_headers(body, settings), timeout=timeout
    )
    answer = yield from send_following_redirects(call, None, settings)
    return token_from_login_response(settings, answer, now())


def drive(flow: Generator[S, Any, T], perform: Callable[[S], Any]) -> T:
    """Run a flow to its end with a synchronous ``perform`` for each step."""
    reply: Any = None
    while True:
        try:
            step = flow.send(reply)
        except StopIteration as done:
            return done.value
        reply = perform(step)


async def adrive(flow: Generator[S, Any, T], perform: Callable[[S], Awaitable[Any]]) -> T:
    """Run a flow to its end with an asynchronous ``perform`` for each step."""
    reply: Any = None
    while True:
        try:
            step = flow.send(reply)
        except StopIteration as done:
            return done.value
        reply = await perform(step)
