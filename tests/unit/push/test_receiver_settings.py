"""The receiver's connection, checked field by field, and the constant-time authentication."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.push.receiver import ReceiverSettings, authenticate

pytestmark = pytest.mark.airflow_independent  # pure: run once, not per Airflow minor

ORG = "org_2d1HDjft5Q1DV1CeXDao0nhL9xK"
KEY = "rcv-secret-Hq4Zp7Ld2Wx9Kb6Tn1"


def settings(**fields: Any) -> ReceiverSettings:
    extra = {"org_id": ORG, **fields.pop("extra", {})}
    values: dict[str, Any] = {
        "host": "https://airflow.example.com/butlr/webhooks",
        "login": None,
        "password": KEY,
    }
    values.update(fields)
    return ReceiverSettings.from_fields("butlr_webhook_default", extra=extra, **values)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_defaults_api_key_in_the_default_header() -> None:
    s = settings()
    assert (s.auth.kind, s.auth.header, s.org_id, s.asset_host, s.max_body_bytes) == (
        "api_key",
        "X-Butlr-Webhook-Key",
        ORG,
        "api.butlr.io",
        65536,
    )
    assert KEY not in repr(s) and KEY not in s.auth.describe()


def test_api_key_authentication() -> None:
    auth = settings(extra={"header": "X-Butlr-Key"}).auth
    assert authenticate(auth, {"X-Butlr-Key": KEY})
    assert authenticate(auth, {"x-butlr-key": KEY})  # header names in any case
    assert not authenticate(auth, {"X-Butlr-Key": KEY + "x"})
    assert not authenticate(auth, {"X-Butlr-Key": KEY[:-1]})
    assert not authenticate(auth, {"X-Butlr-Key": ""})
    assert not authenticate(auth, {"X-Other": KEY})
    assert not authenticate(auth, {"Authorization": basic("x", KEY)})
    assert not authenticate(auth, {})


def test_basic_authentication() -> None:
    auth = settings(login="butlr", extra={"auth": "basic"}).auth
    assert authenticate(auth, {"Authorization": basic("butlr", KEY)})
    assert authenticate(auth, {"authorization": "basic " + basic("butlr", KEY).split()[1]})
    for header in (
        basic("butlr", "nope-nope-nope-nope"),
        basic("other", KEY),
        basic("butlr", KEY + ":"),
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        f"Bearer {KEY}",
        KEY,
    ):
        assert not authenticate(auth, {"Authorization": header}), header
    assert not authenticate(auth, {"X-Butlr-Webhook-Key": KEY})


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"password": None}, "password"),
        ({"password": "short"}, "password"),
        ({"extra": {"auth": "basic"}}, "login"),
        ({"extra": {"auth": "oauth"}}, "extra.auth"),
        ({"extra": {"header": "Bad Header"}}, "extra.header"),
        ({"extra": {"header": "Authorization"}}, "extra.header"),
        ({"extra": {"org_id": None}}, "extra.org_id"),
        ({"extra": {"org_id": "org with spaces"}}, "extra.org_id"),
        ({"extra": {"asset_host": "https://x/y"}}, "extra.asset_host"),
        ({"extra": {"max_body_bytes": 10}}, "extra.max_body_bytes"),
        ({"extra": {"max_body_bytes": 10**8}}, "extra.max_body_bytes"),
        ({"extra": {"tls": True}}, "unknown key"),
        ({"host": "airflow.example.com/butlr"}, "host"),
        ({"host": "https://user:pw@airflow.example.com/butlr"}, "host"),
    ],
)
def test_errors_name_the_connection_and_the_field_and_never_the_secret(
    fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(ButlrConfigurationError) as err:
        settings(**fields)
    assert field in str(err.value) and "butlr_webhook_default" in str(err.value)
    assert KEY not in str(err.value)


def test_max_body_from_a_uri_connection_string_and_no_url_is_allowed_for_the_receiver() -> None:
    assert settings(extra={"max_body_bytes": "4096"}, host=None).max_body_bytes == 4096
    assert settings(host="").url is None


def test_endpoint_auth_is_butlrs_input_shape() -> None:
    assert settings().auth.endpoint_auth() == {"apiKey": {"key": "X-Butlr-Webhook-Key", "value": KEY}}
    assert settings(login="u", extra={"auth": "basic"}).auth.endpoint_auth() == {
        "basicAuth": {"username": "u", "password": KEY}
    }
