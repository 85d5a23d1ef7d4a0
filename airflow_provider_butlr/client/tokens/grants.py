"""The two login grants: the request of each, and what a login answer means (a token or an error)."""

from __future__ import annotations

import json

from airflow_provider_butlr.client.retry import RETRYABLE_STATUSES, TransientHTTPError, parse_retry_after
from airflow_provider_butlr.client.scrub import error_text
from airflow_provider_butlr.client.settings import ButlrSettings
from airflow_provider_butlr.client.tokens.model import (
    DEFAULT_TOKEN_LIFETIME,
    MAX_TOKEN_LENGTH,
    AccessToken,
    is_valid_bearer_token,
    token_lifetime,
)
from airflow_provider_butlr.exceptions import ButlrAuthError

CLIENT_LOGIN_PATH = "/api/v2/clients/login"
PASSWORD_LOGIN_PATH = "/api/v2/login"


class LoginBody(dict[str, str]):
    """The login call's JSON body. Its repr hides the secret: tracebacks that print every frame's
    local variables (Airflow 3.0's console logging renders them with rich) show ``***`` instead."""

    SECRET_KEYS = frozenset({"client_secret", "password"})

    def __repr__(self) -> str:
        return repr({key: "***" if key in self.SECRET_KEYS else value for key, value in self.items()})


def login_request(settings: ButlrSettings) -> tuple[str, LoginBody]:
    """URL and JSON body of the login call for the configured grant."""
    if settings.auth_type == "password":
        return settings.base_url + PASSWORD_LOGIN_PATH, LoginBody(
            username=settings.login,
            password=settings.secret,
        )
    return settings.base_url + CLIENT_LOGIN_PATH, LoginBody(
        client_id=settings.login,
        client_secret=settings.secret,
        audience=settings.audience,
        grant_type="client_credentials",
    )


def token_from_login_response(
    settings: ButlrSettings,
    *,
    status: int,
    body: str,
    retry_after_header: str | None,
    now: float,
) -> AccessToken:
    """Interpret a login answer: a token, a retryable failure, or a final ButlrAuthError."""
    endpoint = login_request(settings)[0][len(settings.base_url) :]
    detail = error_text(body, (settings.secret,))
    if status in RETRYABLE_STATUSES:
        raise TransientHTTPError(status, retry_after=parse_retry_after(retry_after_header), detail=detail)
    if status >= 400:
        raise ButlrAuthError(
            f"Butlr login refused: POST {endpoint} answered HTTP {status}"
            + (f" ({detail})" if detail else "")
            + f"; check the {_credential_names(settings)} of connection {settings.conn_id}",
            status=status,
            method="POST",
            endpoint=endpoint,
        )
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        payload = {}
    token = payload.get("access_token")
    if not isinstance(token, str) or not token:
        raise ButlrAuthError(
            f"Butlr login answered HTTP {status} without an access_token (POST {endpoint})",
            status=status,
            method="POST",
            endpoint=endpoint,
        )
    if not is_valid_bearer_token(token):  # never echo it: the value is the credential
        raise ButlrAuthError(
            f"Butlr login answered HTTP {status} with an access_token that is not a valid bearer token "
            f"(empty, over {MAX_TOKEN_LENGTH} characters, or holding whitespace, control or non-ASCII "
            f"characters) (POST {endpoint})",
            status=status,
            method="POST",
            endpoint=endpoint,
        )
    lifetime = token_lifetime(payload, token, now)
    return AccessToken(
        value=token,
        obtained_at=now,
        expires_at=now + (DEFAULT_TOKEN_LIFETIME if lifetime is None else lifetime),
    )


def _credential_names(settings: ButlrSettings) -> str:
    if settings.auth_type == "password":
        return "username and password"
    return "client id, client secret and audience"
