"""Connection -> settings: defaults, coercion of URI strings, and errors that name the field."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_butlr.client.settings import normalize_base_url, settings_from_fields
from airflow_provider_butlr.exceptions import ButlrConfigurationError


def make(**overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "conn_id": "butlr_default",
        "host": "https://api.butlr.io",
        "login": "client-id",
        "password": "client-secret-xyz",
        "extra": {},
    }
    fields.update(overrides)
    return settings_from_fields(**fields)


def test_defaults() -> None:
    settings = make(host=None)
    assert settings.base_url == "https://api.butlr.io"
    assert settings.audience == "https://butlrauth/"
    assert settings.auth_type == "client_credentials"
    assert (settings.timeout, settings.max_retries, settings.verify) == (30.0, 5, True)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("api.butlr.io", "https://api.butlr.io"),
        ("https://api.butlr.io/", "https://api.butlr.io"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("https://proxy.example.com/butlr/", "https://proxy.example.com/butlr"),
    ],
)
def test_host_forms(host: str, expected: str) -> None:
    assert normalize_base_url(host, conn_id="c") == expected


def test_uri_port_is_kept() -> None:
    assert normalize_base_url("127.0.0.1", conn_id="c", port=8765) == "https://127.0.0.1:8765"


@pytest.mark.parametrize(
    "host", ["ftp://api.butlr.io", "not a host", "https://", "https://api.butlr.io:abc", "http://x?y=1"]
)
def test_garbage_host_is_refused(host: str) -> None:
    with pytest.raises(ButlrConfigurationError, match="field host"):
        make(host=host)


def test_plain_http_to_a_remote_host_warns() -> None:
    with pytest.warns(UserWarning, match="unencrypted"):
        make(host="http://api.butlr.io")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make(host="http://localhost:8080")


def test_uri_extras_arrive_as_strings() -> None:
    settings = make(extra={"timeout": "12", "max_retries": "0", "verify": "false"})
    assert (settings.timeout, settings.max_retries, settings.verify) == (12.0, 0, False)


def test_json_extras_may_carry_whole_numbers_as_floats() -> None:
    settings = make(extra={"timeout": 30.0, "max_retries": 3.0})
    assert (settings.timeout, settings.max_retries) == (30.0, 3)
    with pytest.raises(ButlrConfigurationError, match=r"max_retries 2.5 is not a whole number"):
        make(extra={"max_retries": 2.5})


def test_legacy_prefixed_extras_are_read() -> None:
    settings = make(extra={"extra__butlr__audience": "https://other/", "extra__butlr__timeout": 9})
    assert settings.audience == "https://other/" and settings.timeout == 9.0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"login": ""}, "field login"),
        ({"password": None}, "field password"),
        ({"extra": {"auth_type": "oauth"}}, "extra.auth_type"),
        ({"extra": {"timeout": "soon"}}, "extra.timeout"),
        ({"extra": {"timeout": 0}}, "extra.timeout"),
        ({"extra": {"max_retries": -1}}, "extra.max_retries"),
        ({"extra": {"verify": "maybe"}}, "extra.verify"),
    ],
)
def test_errors_name_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ButlrConfigurationError, match=field.replace(".", r"\.")) as info:
        make(**overrides)
    assert "client-secret-xyz" not in str(info.value)


def test_auth_type_error_lists_allowed_values() -> None:
    with pytest.raises(ButlrConfigurationError, match="client_credentials, password"):
        make(extra={"auth_type": "oauth"})


def test_cache_key_holds_a_fingerprint_not_the_secret() -> None:
    a, b = make(), make(password="another-secret")
    assert a.cache_key != b.cache_key
    assert "client-secret-xyz" not in json.dumps(a.cache_key)
    assert "client-secret-xyz" not in repr(a)


def test_ca_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "custom.pem"
    bundle.write_text("")
    assert make(extra={"ca_bundle": str(bundle)}).verify == str(bundle)
    assert make(extra={"ca_bundle": str(tmp_path)}).verify == str(tmp_path)  # a c_rehash directory


def test_a_missing_ca_bundle_is_refused_naming_the_field(tmp_path: Path) -> None:
    # requests would fail later with a bare OSError, httpx with "[Errno 2] No such file or directory"
    missing = str(tmp_path / "typo.pem")
    with pytest.raises(
        ButlrConfigurationError, match=r"typo\.pem.*connection butlr_default, extra\.ca_bundle"
    ):
        make(extra={"ca_bundle": missing})


@pytest.mark.parametrize(
    "host", ["https://someone:hunter2-secret@api.butlr.io", "someone:hunter2-secret@api.butlr.io:443/"]
)
def test_credentials_in_the_host_are_refused_without_echoing_them(host: str) -> None:
    # the base URL is logged ("Logged in to Butlr at ...") and quoted in errors: no userinfo in it
    with pytest.raises(ButlrConfigurationError, match="field host") as info:
        make(host=host)
    assert "hunter2-secret" not in str(info.value)
