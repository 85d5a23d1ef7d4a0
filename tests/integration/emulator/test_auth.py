"""Logins, JWTs, bearer validation on the emulator clock, revocation, auth error modes."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from airflow_provider_butlr.testing import ButlrEmulator
from tests.integration.emulator.conftest import CLIENT_LOGIN, GRAPHQL, PASSWORD_LOGIN, REPORTING, Client

SITES = "{ sites { data { id } } }"


def _claims(token: str) -> dict[str, object]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_client_credentials_login_returns_a_jwt_with_exp(emu: ButlrEmulator, client: Client) -> None:
    emu.config.token_lifetime = 1234
    response = client.post(CLIENT_LOGIN, client.login_body())
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "scope", "expires_in", "token_type"}
    assert body["expires_in"] == 1234 and body["token_type"] == "Bearer"
    claims = _claims(body["access_token"])
    assert {"exp", "iat", "sub", "aud", "jti"} <= set(claims)
    assert claims["exp"] == claims["iat"] + 1234  # type: ignore[operator]
    assert claims["aud"] == emu.audience
    assert body["access_token"] in emu.issued_tokens


def test_every_login_issues_a_new_token(client: Client) -> None:
    tokens = {client.login() for _ in range(5)}
    assert len(tokens) == 5
    assert len({_claims(t)["jti"] for t in tokens}) == 5


@pytest.mark.parametrize("missing", ["client_id", "client_secret", "audience", "grant_type"])
def test_client_login_requires_all_four_fields(client: Client, missing: str) -> None:
    body = client.login_body()
    del body[missing]
    response = client.post(CLIENT_LOGIN, body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert missing in response.json()["error_description"]


@pytest.mark.parametrize("field", ["client_id", "client_secret"])
def test_wrong_client_credentials_are_401_access_denied(client: Client, field: str) -> None:
    response = client.post(CLIENT_LOGIN, client.login_body(**{field: "wrong-value"}))
    assert response.status_code == 401
    assert response.json() == {"error": "access_denied", "error_description": "Unauthorized"}


def test_wrong_audience_is_403(client: Client) -> None:
    response = client.post(CLIENT_LOGIN, client.login_body(audience="https://elsewhere/"))
    assert response.status_code == 403
    assert response.json() == {
        "error": "access_denied",
        "error_description": "Service not enabled within domain: https://elsewhere/",
    }


def test_wrong_grant_type_is_400(client: Client) -> None:
    response = client.post(CLIENT_LOGIN, client.login_body(grant_type="password"))
    assert response.status_code == 400
    assert "client_credentials" in response.json()["error_description"]


def test_password_login(emu: ButlrEmulator, client: Client) -> None:
    response = client.post(PASSWORD_LOGIN, {"username": emu.username, "password": emu.password})
    assert response.status_code == 200
    body = response.json()
    assert {"access_token", "refresh_token", "id_token", "scope", "expires_in", "token_type"} == set(body)
    assert client.post(GRAPHQL, {"query": SITES}, token=body["access_token"]).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"username": "analyst@butlr-emulator.example", "password": "nope"},
        {"username": "x", "password": "emulator-password-do-not-use"},
    ],
)
def test_bad_password_login_is_403_invalid_grant(client: Client, body: dict[str, str]) -> None:
    response = client.post(PASSWORD_LOGIN, body)
    assert response.status_code == 403
    assert response.json() == {"error": "invalid_grant", "error_description": "Wrong email or password."}


def test_password_login_missing_field_is_400(client: Client) -> None:
    response = client.post(PASSWORD_LOGIN, {"username": "someone"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_expires_in_absent_mode(emu: ButlrEmulator, client: Client) -> None:
    emu.config.expires_in_mode = "absent"
    body = client.post(CLIENT_LOGIN, client.login_body()).json()
    assert "expires_in" not in body
    claims = _claims(body["access_token"])
    assert claims["exp"] == claims["iat"] + emu.config.token_lifetime  # type: ignore[operator]


@pytest.mark.parametrize("path", [GRAPHQL, REPORTING, "/api/v4/reporting/stats"])
@pytest.mark.parametrize("header", [None, "Bearer", "Basic abc", "Bearer not-a-token"])
def test_data_endpoints_require_a_valid_bearer(client: Client, path: str, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = client.post(path, {"query": SITES}, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized" and response.json()["message"]


def test_token_expiry_is_judged_on_the_emulator_clock(emu: ButlrEmulator, client: Client) -> None:
    emu.config.token_lifetime = 600
    token = client.login()
    # iat/exp are whole seconds of a clock that keeps running: 2 s short of the lifetime, not 1,
    # or a login late in its second expires during the test
    emu.clock.advance(598)
    assert client.post(GRAPHQL, {"query": SITES}, token=token).status_code == 200
    emu.clock.advance(3)
    response = client.post(GRAPHQL, {"query": SITES}, token=token)
    assert response.status_code == 401
    assert "expired" in response.json()["message"].lower()
    assert client.post(GRAPHQL, {"query": SITES}, token=client.login()).status_code == 200


def test_clock_jump_expires_tokens_and_reset_restores_them(emu: ButlrEmulator, client: Client) -> None:
    token = client.login()
    emu.clock.set(emu.clock.now() + timedelta(hours=2))
    assert client.post(GRAPHQL, {"query": SITES}, token=token).status_code == 401
    emu.clock.reset()
    assert client.post(GRAPHQL, {"query": SITES}, token=token).status_code == 200


def test_revoke_one_token(emu: ButlrEmulator, client: Client) -> None:
    first, second = client.login(), client.login()
    emu.revoke_token(first)
    assert client.post(GRAPHQL, {"query": SITES}, token=first).status_code == 401
    assert client.post(GRAPHQL, {"query": SITES}, token=second).status_code == 200


def test_revoke_all_tokens_then_new_logins_work(emu: ButlrEmulator, client: Client) -> None:
    old = [client.login() for _ in range(3)]
    emu.revoke_all_tokens()
    for token in old:
        response = client.post(GRAPHQL, {"query": SITES}, token=token)
        assert response.status_code == 401 and "revoked" in response.json()["message"]
    assert client.post(GRAPHQL, {"query": SITES}, token=client.login()).status_code == 200


def test_tokens_of_another_emulator_are_rejected(client: Client) -> None:
    with ButlrEmulator(port=0) as other:
        foreign = Client(other).login()
    assert client.post(GRAPHQL, {"query": SITES}, token=foreign).status_code == 401


def test_graphql_auth_error_mode_graphql(emu: ButlrEmulator, client: Client) -> None:
    emu.config.graphql_auth_error_mode = "graphql"
    response = client.post(GRAPHQL, {"query": SITES}, token="bogus")
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # REST endpoints keep answering HTTP 401.
    assert client.post(REPORTING, {}, token="bogus").status_code == 401


def test_config_validation_names_the_field_and_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"graphql_auth_error_mode=.*allowed"):
        ButlrEmulator(graphql_auth_error_mode="sometimes")
    with pytest.raises(ValueError, match=r"size=.*allowed"):
        ButlrEmulator(size="huge")
    with pytest.raises(TypeError, match="unknown ButlrEmulator option"):
        ButlrEmulator(tokn_lifetime=5)


def test_custom_credentials(client: Client) -> None:
    with ButlrEmulator(port=0, client_id="cid", client_secret="s3cret", token_lifetime=77) as emu:
        other = Client(emu)
        body = other.post(CLIENT_LOGIN, other.login_body()).json()
        assert body["expires_in"] == 77
        assert other.post(CLIENT_LOGIN, client.login_body()).status_code == 401
