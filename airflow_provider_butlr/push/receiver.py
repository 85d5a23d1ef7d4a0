"""The receiver's connection, read once and checked, and the authentication of one request (pure).

One Airflow connection (default ``butlr_webhook_default``, any connection type, e.g. ``generic``)
describes the receiver for both sides: the subscription operator tells Butlr where to POST and how
to authenticate, and the receiver checks what arrives against the same values.

=============  ========================================================================================
Field          Meaning
=============  ========================================================================================
host           the receiver's public URL, what Butlr POSTs to (``https://airflow.example.com/butlr/webhooks``)
password       the shared secret: the API key's value, or the basic-auth password (required)
login          the basic-auth user name (with ``auth`` ``basic``)
extra.auth     ``api_key`` (default) or ``basic``
extra.header   the API key's header name (default ``X-Butlr-Webhook-Key``)
extra.org_id   the Butlr organisation whose events are accepted (required: others get 403)
extra.asset_host  the host of the asset URIs ``butlr://<asset_host>/rooms/<id>/...`` (default ``api.butlr.io``)
extra.max_body_bytes  the largest body accepted (default 65536)
=============  ========================================================================================

Credentials are compared in constant time: both sides are hashed (SHA-256) first, so not even the
secret's length shows in the comparison's timing, then compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.push.events import ID_PATTERN

DEFAULT_CONN_ID = "butlr_webhook_default"
DEFAULT_HEADER = "X-Butlr-Webhook-Key"
DEFAULT_ASSET_HOST = "api.butlr.io"
DEFAULT_MAX_BODY = 64 * 1024
MAX_BODY_LIMIT = 1024 * 1024
MIN_SECRET_LENGTH = 16
AUTH_KINDS = ("api_key", "basic")
HEADER_PATTERN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")  # an HTTP token (RFC 9110)
EXTRA_KEYS = ("auth", "header", "org_id", "asset_host", "max_body_bytes")


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class ReceiverAuth:
    """How Butlr authenticates to the receiver; the secret is never shown (``repr`` leaves it out)."""

    kind: str  # "api_key" or "basic"
    header: str  # the API key's header (api_key)
    username: str  # basic
    secret: str = field(repr=False)

    def describe(self) -> str:
        """Safe to log: the method and the header or user name, never the secret."""
        return (
            f"api key in header {self.header}"
            if self.kind == "api_key"
            else f"basic auth as {self.username!r}"
        )

    def same_secret(self, other: str | None) -> bool:
        return other is not None and hmac.compare_digest(_digest(self.secret), _digest(other))

    def endpoint_auth(self) -> dict[str, Any]:
        """``apiKey`` / ``basicAuth`` of Butlr's ``EndpointConfigInput`` (holds the secret: send only)."""
        if self.kind == "api_key":
            return {"apiKey": {"key": self.header, "value": self.secret}}
        return {"basicAuth": {"username": self.username, "password": self.secret}}


def authenticate(auth: ReceiverAuth, headers: Mapping[str, str]) -> bool:
    """Whether ``headers`` (names in any case) carry the configured credentials."""
    wanted = auth.header.lower() if auth.kind == "api_key" else "authorization"
    given = next((value for name, value in headers.items() if name.lower() == wanted), None)
    if auth.kind == "api_key":
        return hmac.compare_digest(_digest(given or ""), _digest(auth.secret)) and given is not None
    scheme, _, encoded = (given or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    user_ok = hmac.compare_digest(_digest(user), _digest(auth.username))
    password_ok = hmac.compare_digest(_digest(password), _digest(auth.secret))
    return bool(sep) and user_ok & password_ok


@dataclass(frozen=True)
class ReceiverSettings:
    """The receiver's connection, validated (every error names the connection and the field)."""

    conn_id: str
    url: str | None
    auth: ReceiverAuth
    org_id: str
    asset_host: str = DEFAULT_ASSET_HOST
    max_body_bytes: int = DEFAULT_MAX_BODY

    @classmethod
    def from_fields(
        cls,
        conn_id: str,
        *,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: Mapping[str, Any] | None,
    ) -> ReceiverSettings:
        extra = dict(extra or {})

        def bad(name: str, problem: str) -> ButlrConfigurationError:
            return ButlrConfigurationError(f"{name} {problem} (connection {conn_id!r}, the webhook receiver)")

        unknown = sorted(set(extra) - set(EXTRA_KEYS))
        if unknown:
            raise bad("extra", f"has unknown key(s) {unknown}; known: {', '.join(EXTRA_KEYS)}")
        kind = extra.get("auth") or "api_key"
        if kind not in AUTH_KINDS:
            raise bad("extra.auth", f"{kind!r} is not one of {', '.join(AUTH_KINDS)}")
        if not password or len(password) < MIN_SECRET_LENGTH:
            raise bad("password", f"(the shared secret) must be set, at least {MIN_SECRET_LENGTH} characters")
        if kind == "basic" and not login:
            raise bad("login", "(the basic-auth user name) must be set with extra.auth 'basic'")
        header = extra.get("header") or DEFAULT_HEADER
        if (
            not isinstance(header, str)
            or not HEADER_PATTERN.match(header)
            or header.lower() == "authorization"
        ):
            raise bad("extra.header", f"{header!r} is not a usable HTTP header name")
        org_id = extra.get("org_id")
        if not isinstance(org_id, str) or not ID_PATTERN.match(org_id):
            raise bad(
                "extra.org_id",
                "must be your Butlr organisation id (org_...): other organisations' events are refused",
            )
        asset_host = extra.get("asset_host") or DEFAULT_ASSET_HOST
        if not isinstance(asset_host, str) or not re.match(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$", asset_host):
            raise bad("extra.asset_host", f"{asset_host!r} is not a host name")
        max_body = extra.get("max_body_bytes", DEFAULT_MAX_BODY)
        if isinstance(max_body, str) and max_body.isdigit():
            max_body = int(max_body)
        if (
            isinstance(max_body, bool)
            or not isinstance(max_body, int)
            or not 1024 <= max_body <= MAX_BODY_LIMIT
        ):
            raise bad("extra.max_body_bytes", f"must be a whole number from 1024 to {MAX_BODY_LIMIT}")
        url = (host or "").strip() or None
        if url is not None:
            parts = urlsplit(url)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.username
                or parts.password
            ):
                raise bad("host", "must be the receiver's absolute http(s) URL, without credentials")
        auth = ReceiverAuth(kind, header, login or "", password)
        return cls(conn_id, url, auth, org_id, asset_host.lower(), max_body)
