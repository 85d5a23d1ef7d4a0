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

import json as jsonlib
import logging
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypedDict, TypeVar, Unpack
from urllib.parse import urljoin, urlsplit

import tenacity

from airflow_provider_butlr.auth import AccessToken, error_text, login_request, token_from_login_response
from airflow_provider_butlr.exceptions import (
    ButlrAPIError,
    ButlrAuthError,
    ButlrConfigurationError,
    ButlrDataError,
    ButlrGraphQLError,
)
from airflow_provider_butlr.ratelimit import RateLimiter, limiter_for
from airflow_provider_butlr.retry import (
    NO_CONTENT_STATUSES,
    RETRYABLE_STATUSES,
    DeadlineExceeded,
    RetryPolicy,
    TransientDataError,
    TransientHTTPError,
    give_up_error,
    parse_retry_after,
    status_error,
)
from airflow_provider_butlr.scrub import cut_tail, scrub, scrub_json
from airflow_provider_butlr.settings import ButlrSettings, origin_of

log = logging.getLogger(__name__)

GRAPHQL_PATH = "/api/v3/graphql"
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

T = TypeVar("T")
S = TypeVar("S")


# --- what flows and drivers exchange ------------------------------------------------------------


class NeedToken:
    """The flow asks the driver for a valid access token."""

    def __repr__(self) -> str:
        return "NEED_TOKEN"


NEED_TOKEN = NeedToken()


@dataclass(frozen=True)
class DropToken:
    """The flow tells the driver that Butlr refused this token: forget it (only if still cached)."""

    token: str = field(repr=False)


@dataclass(frozen=True)
class Outgoing:
    """One HTTP request for the driver to send (redirects are never followed by the transport)."""

    method: str
    url: str
    json: Any = None
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float | None = None


@dataclass(frozen=True)
class Answer:
    """What the driver got back: status, headers, the whole body, the URL, the transport's response."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    raw: Any = field(default=None, repr=False, compare=False)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


Step = NeedToken | DropToken | Outgoing
Flow = Generator[Step, Any, T]


@dataclass(frozen=True)
class Call:
    """A request to the Butlr API as the caller describes it (before tokens and redirects)."""

    method: str
    url: str
    endpoint: str
    json: Any = None
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    parse_json: bool = True
    decode: Callable[[bytes], Any] | None = None  # how a 2xx body becomes the payload (None: JSON)

    @property
    def is_graphql(self) -> bool:
        return self.endpoint.rstrip("/").endswith(GRAPHQL_PATH)

    def error(
        self, what: str, status: int, kind: type[ButlrAPIError] = ButlrAPIError, **extra: Any
    ) -> ButlrAPIError:
        """A typed error about this call: ``Butlr POST /api/v3/reporting <what>``."""
        return kind(
            f"Butlr {self.method} {self.endpoint} {what}",
            status=status,
            method=self.method,
            endpoint=self.endpoint,
            **extra,
        )

    def outgoing(self, token: str | None, url: str | None = None, method: str | None = None) -> Outgoing:
        headers = dict(self.headers)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        same_method = method is None or method == self.method
        return Outgoing(
            method=method or self.method,
            url=url or self.url,
            json=self.json if same_method else None,
            params=self.params if url is None else None,
            headers=headers,
            timeout=self.timeout,
        )


@dataclass(frozen=True)
class Outcome:
    """A successful exchange: the final answer and its decoded JSON (None for 204 or when not parsed)."""

    answer: Answer
    payload: Any = None


# --- reading bodies within limits ------------------------------------------------------------------

ERROR_BODY_LIMIT = 64 * 1024  # what is kept of an error answer (its text goes into messages)
READ_CHUNK = 256 * 1024


class BodyReader:
    """Collects a streamed body up to a size cap and a deadline (the drivers feed it chunks)."""

    def __init__(self, status: int, url: str, limit: int, deadline: float, seconds: float) -> None:
        self.error = status >= 300
        self.limit = min(limit, ERROR_BODY_LIMIT) if self.error else limit
        self.url = url
        self.deadline = deadline
        self.seconds = seconds
        self._parts: list[bytes] = []
        self._size = 0
        self.truncated = False

    def feed(self, chunk: bytes, now: float) -> bool:
        """Add a chunk; False once an error body has enough (stop reading). Raises past the limits."""
        if now > self.deadline:
            raise DeadlineExceeded(self.seconds)
        room = self.limit - self._size
        if len(chunk) > room:
            if self.error:
                self._parts.append(chunk[:room])
                self._size = self.limit
                self.truncated = True
                return False
            raise ButlrDataError(
                f"Butlr answer from {urlsplit(self.url).path} is larger than max_response_bytes="
                f"{self.limit} (connection extra); narrow the request or raise the limit"
            )
        self._parts.append(chunk)
        self._size += len(chunk)
        return True

    def body(self) -> bytes:
        """What was read; a cut error body loses its tail, where a secret could straddle the cut."""
        body = b"".join(self._parts)
        return cut_tail(body) if self.truncated else body


# --- pacing ---------------------------------------------------------------------------------------------


def limiter(settings: ButlrSettings) -> RateLimiter | None:
    """The process-wide limiter of this connection's credentials (None: extra max_requests_per_minute unset)."""
    if not settings.max_requests_per_minute:
        return None
    return limiter_for(settings.limiter_key, settings.max_requests_per_minute)


def pace_after(answer: Answer, rate: RateLimiter | None) -> Answer:
    """A 429 with ``Retry-After`` pauses every caller sharing the limiter, not only this one."""
    if rate is not None and answer.status == 429:
        seconds = parse_retry_after(answer.headers.get("Retry-After"))
        if seconds:
            rate.hold(seconds)
    return answer


# --- URLs ------------------------------------------------------------------------------------------


def default_headers(payload: Any) -> dict[str, str]:
    """Headers of every Butlr request (never anything from the connection's extras)."""
    from airflow_provider_butlr import __version__

    headers = {"Accept": "application/json", "User-Agent": f"airflow-provider-butlr/{__version__}"}
    if payload is not None:
        headers["Content-Type"] = "application/json"
    return headers


def url_for(settings: ButlrSettings, path: str) -> str:
    """A relative path joined to the base URL; an absolute URL must be on the API origin."""
    parts = urlsplit(path)
    if parts.scheme and parts.netloc:
        if origin_of(path) != settings.origin:
            raise ButlrConfigurationError(
                f"endpoint {scrub(path)!r} is not on the Butlr API host {settings.base_url}; "
                "the bearer token is only sent to the configured host"
            )
        return path
    return urljoin(settings.base_url + "/", path.lstrip("/"))


class CallOptions(TypedDict, total=False):
    """What a caller may add to a request: the body, query parameters, headers, its own timeout."""

    json: Any
    params: Mapping[str, Any] | None
    headers: Mapping[str, str] | None
    timeout: float | None


def make_call(
    settings: ButlrSettings,
    method: str,
    path: str,
    *,
    parse_json: bool = True,
    decode: Callable[[bytes], Any] | None = None,
    **options: Unpack[CallOptions],
) -> Call:
    """Validate and describe one API call (refuses foreign hosts before anything is sent)."""
    url = url_for(settings, path)
    body = options.get("json")
    return Call(
        method=method.upper(),
        url=url,
        endpoint=urlsplit(url).path,
        json=body,
        params=options.get("params"),
        headers={**default_headers(body), **(options.get("headers") or {})},
        timeout=options.get("timeout"),
        parse_json=parse_json,
        decode=decode,
    )


# --- decoding and classification -------------------------------------------------------------------


def _json_decoder() -> Callable[[bytes | str], Any]:
    """msgspec's decoder when installed (about 2x faster on large answers; Airflow 3.3 ships it), else json's."""
    try:
        import msgspec
    except ImportError:
        return jsonlib.loads
    decode = msgspec.json.decode

    def fast(body: bytes | str) -> Any:
        try:
            return decode(body)
        except msgspec.DecodeError as err:
            raise ValueError(str(err)) from err

    return fast


_decode = _json_decoder()


MAX_JSON_DEPTH = 128  # Butlr answers nest a dozen levels; deeper ones would exhaust the recursion
# limit in whatever walks them next (scrubbing, XCom serialisation, conditions)


# Walking a decoded answer costs as much as decoding it: only answers up to this size are walked (a
# deeply nested hostile answer is small); reporting rows are flattened with their own guard.
DEPTH_CHECK_MAX_BYTES = 1024 * 1024


class JSONTooDeep(ValueError):
    """JSON nested deeper than :data:`MAX_JSON_DEPTH` levels."""


def _nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than ``limit`` levels (iterative: any depth is safe to ask)."""
    if not isinstance(value, (dict, list)):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def decode_json(body: bytes | str) -> Any:
    """JSON from a body; ValueError for anything that is not JSON, JSONTooDeep past the depth limit."""
    try:
        value = _decode(body)
    except RecursionError as err:
        raise JSONTooDeep(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from err
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > DEPTH_CHECK_MAX_BYTES:  # large data answers: their readers guard recursion themselves
        return value
    brackets = raw.count(b"[") + raw.count(b"{")
    if brackets > MAX_JSON_DEPTH and _nesting_exceeds(value, MAX_JSON_DEPTH):
        raise JSONTooDeep(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def readable_text(answer: Answer) -> str:
    """The body as text for error messages; a placeholder when it is JSON too deep to walk safely."""
    try:
        decode_json(answer.body)
    except JSONTooDeep as err:
        return f"(an answer with {err})"
    except ValueError:
        pass
    return answer.text


def _try_json(body: bytes) -> Any:
    try:
        return decode_json(body) if body else None
    except ValueError:
        return None


def is_unauthenticated(errors: Any) -> bool:
    """GraphQL ``errors`` that say the token was refused."""
    return isinstance(errors, list) and any(
        isinstance(err, dict)
        and isinstance(err.get("extensions"), dict)
        and err["extensions"].get("code") == "UNAUTHENTICATED"
        for err in errors
    )


def _token_refused(call: Call, answer: Answer) -> bool:
    """HTTP 401, or GraphQL's HTTP 200 with an ``UNAUTHENTICATED`` error: both mean "log in again"."""
    if answer.status == 401:
        return True
    if answer.status != 200 or not call.is_graphql:
        return False
    payload = _try_json(answer.body)
    return isinstance(payload, dict) and is_unauthenticated(payload.get("errors"))


def answer_detail(answer: Answer, settings: ButlrSettings) -> str:
    """Butlr's error text from an answer: scrubbed, short, one line."""
    return error_text(readable_text(answer), (settings.secret,))


def classify(call: Call, answer: Answer, settings: ButlrSettings) -> Outcome:
    """The outcome of a final answer, or the exception that describes it (retryable or typed)."""
    status = answer.status
    if status in RETRYABLE_STATUSES:
        raise TransientHTTPError(
            status,
            retry_after=parse_retry_after(answer.headers.get("Retry-After")),
            detail=answer_detail(answer, settings),
        )
    if status >= 400:
        raise status_error(
            status, answer_detail(answer, settings), method=call.method, endpoint=call.endpoint
        )
    if 300 <= status < 400:
        raise call.error(f"answered HTTP {status} without a usable Location", status)
    if status in NO_CONTENT_STATUSES or not call.parse_json:
        return Outcome(answer)
    try:
        return Outcome(answer, (call.decode or decode_json)(answer.body))
    except JSONTooDeep as err:
        raise TransientDataError(f"{err} in a {status} answer") from err
    except ValueError as err:
        raise TransientDataError(f"malformed JSON in a {status} answer") from err


# --- the flows ---------------------------------------------------------------------------------------


def _redirect_target(call: Call, answer: Answer, settings: ButlrSettings) -> tuple[str, str] | None:
    """``(url, method)`` of a same-origin redirect to follow; None when the answer is no redirect."""
    location = answer.headers.get("Location")
    if answer.status not in REDIRECT_STATUSES or not location:
        return None
    target = urljoin(answer.url, location)
    if origin_of(target) != settings.origin:
        host = urlsplit(target).hostname or target
        raise call.error(
            f"was redirected (HTTP {answer.status}) to another host, {scrub(host)}; refusing to follow: "
            f"the token is only sent to {settings.base_url}",
            answer.status,
        )
    keeps_method = answer.status in (307, 308) or call.method in ("GET", "HEAD")
    return target, call.method if keeps_method else "GET"


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
    if _token_refused(call, answer):
        yield DropToken(token)
        log.info(
            "Butlr %s %s refused the token; logging in again and replaying once.", call.method, call.endpoint
        )
        token = yield NEED_TOKEN
        answer = yield from send_following_redirects(call, token, settings)
        if _token_refused(call, answer):
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
    call = Call("POST", url, urlsplit(url).path, json=body, headers=default_headers(body), timeout=timeout)
    answer = yield from send_following_redirects(call, None, settings)
    return token_from_login_response(
        settings,
        status=answer.status,
        body=readable_text(answer),
        retry_after_header=answer.headers.get("Retry-After"),
        now=now(),
    )


# --- GraphQL ------------------------------------------------------------------------------------------


def graphql_body(
    query: str, variables: Mapping[str, Any] | None, operation_name: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"query": query}
    if variables:
        body["variables"] = dict(variables)
    if operation_name:
        body["operationName"] = operation_name
    return body


def summarise_graphql_errors(errors: list[Any], settings: ButlrSettings | None = None, limit: int = 3) -> str:
    """A short, scrubbed summary of GraphQL ``errors`` for messages and events."""
    messages = []
    for err in errors[:limit]:
        if isinstance(err, dict):
            extensions = err.get("extensions")
            code = extensions.get("code") if isinstance(extensions, dict) else None
            path_parts = err.get("path")
            path = ".".join(str(p) for p in path_parts) if isinstance(path_parts, list) else ""
            text = str(err.get("message", "")).strip()
            messages.append(
                " ".join(x for x in (f"[{code}]" if code else "", path + ":" if path else "", text) if x)
            )
        else:
            messages.append(str(err))
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    secret = (settings.secret,) if settings is not None else ()
    return error_text("; ".join(messages), secret) + more


def graphql_data(payload: Any, settings: ButlrSettings) -> Any:
    """``data`` of a GraphQL answer; any ``errors`` entry (even beside partial data) raises."""
    if not isinstance(payload, dict):
        raise ButlrDataError(f"Butlr GraphQL answered a {type(payload).__name__}, not a JSON object")
    errors = payload.get("errors")
    if errors:
        errors = errors if isinstance(errors, list) else [errors]
        raise ButlrGraphQLError(
            "Butlr GraphQL returned errors: " + summarise_graphql_errors(errors, settings),
            errors=scrub_json(errors, (settings.secret,)),
            data=scrub_json(payload.get("data"), (settings.secret,)),
            method="POST",
            endpoint=GRAPHQL_PATH,
        )
    return payload.get("data")


# --- drivers' shared machinery -------------------------------------------------------------------------


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


def _final_error(
    exc: BaseException, retrying: tenacity.BaseRetrying, policy: RetryPolicy, label: tuple[str, str, str]
) -> BaseException:
    attempts = retrying.statistics.get("attempt_number", 1)
    return give_up_error(
        exc,
        method=label[0],
        endpoint=label[1],
        base_url=label[2],
        attempts=attempts,
        max_retries=policy.max_retries,
    )


def _raise_final(
    exc: Exception, retrying: tenacity.BaseRetrying, policy: RetryPolicy, label: tuple[str, str, str]
) -> NoReturn:
    """Re-raise a final failure as the ButlrError that describes it (chained to the cause)."""
    error = _final_error(exc, retrying, policy, label)
    if error is exc:
        raise exc
    raise error from exc


def with_retries(
    attempt: Callable[[], T], policy: RetryPolicy, method: str, endpoint: str, base_url: str
) -> T:
    """Run ``attempt`` under the retry policy; a final failure becomes a ButlrError naming the call."""
    retrying = policy.retrying(f"{method} {endpoint}")
    try:
        return retrying(attempt)
    except Exception as exc:
        _raise_final(exc, retrying, policy, (method, endpoint, base_url))


async def awith_retries(
    attempt: Callable[[], Awaitable[T]], policy: RetryPolicy, method: str, endpoint: str, base_url: str
) -> T:
    """The async twin of :func:`with_retries`."""
    retrying = policy.async_retrying(f"{method} {endpoint}")

    async def run_attempt() -> T:  # a coroutine function: tenacity runs plain callables synchronously
        return await attempt()

    try:
        return await retrying(run_attempt)
    except Exception as exc:
        _raise_final(exc, retrying, policy, (method, endpoint, base_url))
