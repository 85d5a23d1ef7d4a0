"""An access token and when it stops being usable: lifetimes, refresh margins, JWT claims (pure)."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_butlr.common.jsondecode import decode_json

DEFAULT_TOKEN_LIFETIME = 300.0  # when neither expires_in nor a JWT exp is known: be conservative
MAX_TOKEN_LIFETIME = 30 * 86400.0  # Auth0's longest API-token lifetime; anything above is clamped
MAX_REFRESH_MARGIN = 300.0  # Butlr's own MCP refreshes 5 minutes before expiry
# JWT iat/exp are whole seconds and the answer travels: a token may die up to ~1 s before we expect.
TOKEN_CLOCK_SLACK = 1.0
MIN_TOKEN_USE = 1.0  # a token whose schedule leaves less than this arrived (nearly) expired: "stale"
STALE_TOKEN_COOLDOWN = 5.0  # a stale token is used this long, and no second login happens meanwhile
MAX_TOKEN_LENGTH = 16 * 1024  # an HTTP header line, not a payload

CacheKey = tuple[str, ...]


def refresh_margin(lifetime: float) -> float:
    """Refresh ahead of expiry: 5 minutes for long tokens, 10 % of the lifetime for shorter ones, and
    at least twice the clock slack (but at most half the lifetime) for tokens of a few seconds."""
    return min(MAX_REFRESH_MARGIN, max(lifetime * 0.1, min(2 * TOKEN_CLOCK_SLACK, lifetime / 2)))


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and when it stops being usable; the value is kept out of repr."""

    value: str = field(repr=False)
    obtained_at: float
    expires_at: float

    @property
    def lifetime(self) -> float:
        return max(self.expires_at - self.obtained_at, 0.0)

    @property
    def arrived_stale(self) -> bool:
        """Already expired (or nearly) when it arrived: the normal refresh schedule leaves no use."""
        return self.lifetime - refresh_margin(self.lifetime) < MIN_TOKEN_USE

    @property
    def refresh_at(self) -> float:
        """When to log in again. A stale token is still used for the cool-down: never a login per call."""
        if self.arrived_stale:
            return self.obtained_at + STALE_TOKEN_COOLDOWN
        return self.expires_at - refresh_margin(self.lifetime)

    def is_fresh(self, now: float) -> bool:
        return now < self.refresh_at


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT, decoded without verification (we only schedule a refresh)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = decode_json(base64.urlsafe_b64decode(payload))
    except (ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


def _number(value: Any) -> float | int | None:
    """A JSON number that means something: not a bool, not NaN (big ints and infinities stay)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _clamped(seconds: float | int) -> float:
    """Seconds within [0, MAX_TOKEN_LIFETIME]; compares before converting, so 10**400 cannot overflow."""
    if seconds <= 0:
        return 0.0
    return MAX_TOKEN_LIFETIME if seconds >= MAX_TOKEN_LIFETIME else float(seconds)


def token_lifetime(answer: Mapping[str, Any], token: str, now: float) -> float | None:
    """Seconds the token is valid for: ``expires_in``, else the JWT's ``exp - iat`` (immune to a
    skewed local clock), else ``exp - now``; clamped; None when the answer does not say."""
    expires_in = _number(answer.get("expires_in"))
    if expires_in is not None:
        return _clamped(expires_in)
    claims = jwt_claims(token) or {}
    exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
    if exp is None:
        return None
    if iat is not None and not math.isinf(iat):
        if exp >= iat + MAX_TOKEN_LIFETIME:  # compared as numbers: no float overflow
            return MAX_TOKEN_LIFETIME
        return _clamped(exp - iat)
    if exp >= now + MAX_TOKEN_LIFETIME:
        return MAX_TOKEN_LIFETIME
    return _clamped(exp - now)


def is_valid_bearer_token(token: str) -> bool:
    """Visible ASCII only, and header-sized: a CR/LF, space, NUL or non-ASCII byte would break (or
    inject into) the Authorization header."""
    return 0 < len(token) <= MAX_TOKEN_LENGTH and all("!" <= ch <= "~" for ch in token)
