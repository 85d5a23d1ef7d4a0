"""One webhook POST from the emulator: loopback guard, authentication headers, timeout, the outcome.

Nothing leaves the machine unless ``allow_remote`` (the CLI's ``--webhook-allow-remote``): a URL whose host
is not ``localhost`` or a loopback IP literal is *blocked* before any name lookup or connection. Proxies
are never used (``http.client`` directly, so ``HTTP_PROXY`` cannot route a delivery elsewhere). Header
values (API keys, basic-auth passwords) appear in no outcome, log line or error message.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

USER_AGENT = "ButlrEmulator-Webhooks/1"
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: an HTTP status, or an error (``blocked`` when the guard refused the URL)."""

    status_code: int | None
    error: str | None
    duration_ms: float
    blocked: bool = False

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        """Network errors, timeouts, 408, 429 and 5xx; other answers are final (docs/emulator.md)."""
        if self.blocked:
            return False
        if self.status_code is None:
            return True
        return self.status_code in (408, 429) or self.status_code >= 500


def shown_url(url: str) -> str:
    """``url`` without credentials or query string: what records and logs may show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}{parts.path or '/'}"


def _loopback_literal(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_problem(parts: SplitResult) -> str | None:
    """Why ``parts`` is not a loopback target (None when it is). ``localhost`` must resolve to loopback only."""
    host = parts.hostname or ""
    if _loopback_literal(host):
        return None
    if host.lower() != "localhost":
        return f"host {host!r} is not a loopback address"
    try:
        infos = socket.getaddrinfo(host, parts.port or 80, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"localhost does not resolve: {exc.strerror or exc}"
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or not all(_loopback_literal(a.split("%")[0]) for a in addresses):
        return "localhost resolves to a non-loopback address"
    return None


def auth_headers(endpoint: dict[str, Any]) -> dict[str, str]:
    """The API-key header and/or basic auth of an endpoint config (its values are secrets)."""
    headers: dict[str, str] = {}
    api_key = endpoint.get("api_key") or {}
    if api_key.get("key"):
        headers[str(api_key["key"])] = str(api_key.get("value") or "")
    basic = endpoint.get("basic_auth") or {}
    if basic.get("username") is not None:
        pair = f"{basic['username']}:{basic.get('password') or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return headers


def post_json(
    url: str, payload: Any, headers: dict[str, str], timeout: float, *, allow_remote: bool = False
) -> Outcome:
    """POST ``payload`` as JSON to ``url`` once; never raises for network trouble (the outcome says it)."""
    started = time.perf_counter()

    def took() -> float:
        return round((time.perf_counter() - started) * 1000, 2)

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Outcome(None, f"not an absolute http(s) URL: {shown_url(url)}", took(), blocked=True)
    if not allow_remote:
        problem = loopback_problem(parts)
        if problem is not None:
            return Outcome(
                None,
                f"not sent: {problem}; the emulator delivers to loopback only unless started with "
                "--webhook-allow-remote (EmulatorConfig.webhook_allow_remote)",
                took(),
                blocked=True,
            )
    body = json.dumps(payload).encode()
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request(
            "POST",
            target,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "Connection": "close",
                **headers,
            },
        )
        response = connection.getresponse()
        response.read(MAX_ANSWER_BYTES)
        return Outcome(response.status, None, took())
    except TimeoutError:
        return Outcome(None, f"timed out after {timeout:g} s", took())
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(None, f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}", took())
    finally:
        connection.close()
