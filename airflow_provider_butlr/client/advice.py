"""Failures in words a user can act on: the network cause of a failed attempt (refused, DNS,
unreachable) and which field of which connection to check.

A final error is one line: what failed, why, and what to check, e.g.
``... failed after 3 attempt(s) (2 retries allowed): connection failed: 127.0.0.1:1 refused the
connection (nothing listens there); check the API base URL and port (connection butlr_default,
fields host and port)``. The connection's id is left out when it is empty: Airflow's Test button
gives the connection a made-up id, which would mean nothing to the user.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

from airflow_provider_butlr.client.settings import where

REFUSED, DNS, UNREACHABLE = "refused", "dns", "unreachable"
_UNREACHABLE_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: causes, contexts, urllib3's ``reason``, an exception in ``args``."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen or len(seen) > 32:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        wrapped = [current.__cause__, current.__context__, reason, *current.args[:1]]
        todo.extend(item for item in wrapped if isinstance(item, BaseException))


def network_cause(exc: BaseException) -> str | None:
    """:data:`REFUSED`, :data:`DNS` or :data:`UNREACHABLE` when a connection could not be made."""
    for current in _chain(exc):
        if isinstance(current, socket.gaierror):
            return DNS
        if isinstance(current, ConnectionRefusedError):
            return REFUSED
        if isinstance(current, OSError) and current.errno in _UNREACHABLE_ERRNOS:
            return UNREACHABLE
    return None


def cause_text(cause: str, base_url: str | None) -> str:
    """The network cause in a few words, naming the host (and port) tried when it is known."""
    if not base_url:
        return {DNS: "DNS failure", REFUSED: "connection refused"}.get(cause, "network unreachable")
    parts = urlsplit(base_url)
    host = parts.hostname or "the host"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = None
    address = f"{host}:{port}" if port else host
    if cause == DNS:
        return f"the host name {host} does not resolve (DNS failure)"
    if cause == REFUSED:
        return f"{address} refused the connection (nothing listens there)"
    return f"the network cannot reach {address}"


def check_hint(kind: str, conn_id: str) -> str:
    """``; check ... (connection <id>, fields ...)`` for a kind of final failure ('' when none fits)."""
    fields = {
        "address": ("the API base URL and port", "fields host and port"),
        "tls-certificate": ("the server certificate or extra.ca_bundle", "extra.ca_bundle"),
        "tls-handshake": ("the scheme (https) and port of the API base URL", "fields host and port"),
        "timeout": ("that the API base URL answers, or raise the timeout", "field host, extra.timeout"),
        "rate-limit": (
            "how many tasks share these credentials; set or lower the client-side limit",
            "extra.max_requests_per_minute",
        ),
        "not-json": ("that the API base URL is Butlr's API", "field host"),
    }.get(kind)
    if fields is None:
        return ""
    return f"; check {fields[0]} ({where(conn_id, fields[1])})"
