"""JWT issue and validation for the emulator, judged on the emulator clock, with revocation."""

from __future__ import annotations

import secrets
import threading
import uuid
from dataclasses import dataclass

import jwt

SCOPES = (
    "read:spaces write:spaces delete:spaces read:rooms write:rooms delete:rooms "
    "read:sensors write:sensors delete:sensors read:hives write:hives delete:hives"
)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    subject: str
    issued_at: int
    expires_at: int
    scope: str


class TokenAuthority:
    """Mints HS256 JWTs with a per-emulator key and remembers them for validation and revocation."""

    def __init__(self, issuer: str = "https://butlr-emulator.invalid/") -> None:
        self._key = secrets.token_hex(32)
        self._issuer = issuer
        self._lock = threading.Lock()
        self._by_token: dict[str, IssuedToken] = {}
        self._order: list[str] = []
        self._revoked: set[str] = set()

    def issue(
        self, subject: str, audience: str, now: float, lifetime: int, scope: str = SCOPES
    ) -> IssuedToken:
        """A new unique token valid for ``lifetime`` seconds from ``now`` (emulator time)."""
        issued_at = int(now)
        jti = uuid.uuid4().hex
        claims = {
            "iss": self._issuer,
            "sub": subject,
            "aud": audience,
            "iat": issued_at,
            "exp": issued_at + int(lifetime),
            "jti": jti,
            "scope": scope,
            "gty": "client-credentials",
        }
        token = jwt.encode(claims, self._key, algorithm="HS256")
        record = IssuedToken(token, jti, subject, issued_at, issued_at + int(lifetime), scope)
        with self._lock:
            self._by_token[token] = record
            self._order.append(token)
        return record

    def id_token(self, email: str, audience: str, now: float) -> str:
        """An OpenID id_token with a minimal user profile (password grant only); never validated."""
        claims = {
            "iss": self._issuer,
            "sub": f"auth0|{email}",
            "aud": audience,
            "iat": int(now),
            "exp": int(now) + 36000,
            "email": email,
            "name": email.split("@")[0],
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def check(self, token: str, now: float) -> str | None:
        """None when ``token`` is valid at ``now``; otherwise the reason it is not."""
        with self._lock:
            record = self._by_token.get(token)
            revoked = record is not None and record.jti in self._revoked
        if record is None:
            return "Invalid token"
        if revoked:
            return "Token has been revoked"
        if now >= record.expires_at:
            return "Token expired"
        return None

    def revoke(self, token: str) -> None:
        with self._lock:
            record = self._by_token.get(token)
            if record is not None:
                self._revoked.add(record.jti)

    def revoke_all(self) -> None:
        """Revoke every token issued so far; later logins get valid tokens again."""
        with self._lock:
            self._revoked.update(r.jti for r in self._by_token.values())

    @property
    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._order)

    def describe(self) -> list[dict[str, object]]:
        """Every issued token with its subject, times and state, oldest first (admin API, secret scans)."""
        with self._lock:
            records = [self._by_token[token] for token in self._order]
            revoked = set(self._revoked)
        return [
            {
                "token": r.token,
                "subject": r.subject,
                "issued_at": r.issued_at,
                "expires_at": r.expires_at,
                "revoked": r.jti in revoked,
            }
            for r in records
        ]
