"""The two login grants: the request of each, and what a login answer means (a token or an error)."""

from __future__ import annotations

from airflow_provider_butlr.client.classify import answer_detail, body_summary
from airflow_provider_butlr.client.messages import Answer
from airflow_provider_butlr.client.retry import (
    RETRYABLE_STATUSES,
    TransientDataError,
    TransientHTTPError,
    parse_retry_after,
)
from airflow_provider_butlr.client.settings import ButlrSettings, where
from airflow_provider_butlr.client.tokens.model import (
    DEFAULT_TOKEN_LIFETIME,
    MAX_TOKEN_LENGTH,
    AccessToken,
    is_valid_bearer_token,
    token_lifetime,
)
from airflow_provider_butlr.common.jsondecode import JSONTooDeep, decode_json
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


REFUSALS = frozenset({400, 401, 403})  # a wrong credential: never retried


def token_from_login_response(settings: ButlrSettings, answer: Answer, now: float) -> AccessToken:
    """Interpret a login answer: a token, a retryable failure, or a final ButlrAuthError.

    Retried like any call: 429 and 5xx (with ``Retry-After``), and a 2xx whose body is not JSON
    (cut, HTML from a proxy). Final: 400/401/403 (the credentials), any other 4xx or 3xx (the host),
    and JSON without a usable ``access_token``. Every message says what the answer was.
    """
    endpoint = login_request(settings)[0][len(settings.base_url) :]
    status = answer.status

    def refused(what: str, kind: str = "") -> ButlrAuthError:
        return ButlrAuthError(
            f"Butlr login{kind}: POST {endpoint} {what}", status=status, method="POST", endpoint=endpoint
        )

    if status in RETRYABLE_STATUSES:
        raise TransientHTTPError(
            status,
            retry_after=parse_retry_after(answer.headers.get("Retry-After")),
            detail=answer_detail(answer, settings),
        )
    if status in REFUSALS:
        detail = answer_detail(answer, settings)
        raise refused(
            f"answered HTTP {status}"
            + (f" ({detail})" if detail else "")
            + f"; {credentials_hint(settings)}",
            " refused",
        )
    if status >= 300:
        detail = answer_detail(answer, settings) or body_summary(answer, settings)
        raise refused(
            f"answered HTTP {status} ({detail}): that is no Butlr login; check the API base URL "
            f"({where(settings.conn_id, 'field host')})"
        )
    try:
        payload = decode_json(answer.body)
    except ValueError as err:  # cut, not JSON, or too deep: a failed attempt, retried
        reason = str(err) if isinstance(err, JSONTooDeep) else "malformed JSON"
        raise TransientDataError(
            f"{reason} in a {status} login answer ({body_summary(answer, settings)})"
        ) from None
    if not isinstance(payload, dict):
        raise refused(
            f"answered HTTP {status} with a JSON {type(payload).__name__}, not an object with an "
            f"access_token ({body_summary(answer, settings)})"
        )
    token = payload.get("access_token")
    if not isinstance(token, str) or not token:
        raise refused(f"answered HTTP {status} without an access_token ({body_summary(answer, settings)})")
    if not is_valid_bearer_token(token):  # never echo it: the value is the credential
        raise refused(
            f"answered HTTP {status} with an access_token that is not a valid bearer token "
            f"(empty, over {MAX_TOKEN_LENGTH} characters, or holding whitespace, control or non-ASCII "
            "characters)"
        )
    lifetime = token_lifetime(payload, token, now)
    return AccessToken(
        value=token,
        obtained_at=now,
        expires_at=now + (DEFAULT_TOKEN_LIFETIME if lifetime is None else lifetime),
    )


def credentials_hint(settings: ButlrSettings) -> str:
    """Which fields hold the credentials a refused login names (the connection's id unless testing)."""
    if settings.auth_type == "password":
        fields = "fields password and login"
        what = "password and username"
    else:
        fields = "fields password, login and extra.audience"
        what = "client secret, client id and audience"
    return f"check the {what} ({where(settings.conn_id, fields)})"
