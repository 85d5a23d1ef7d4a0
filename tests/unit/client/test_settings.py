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


# --- the Port field (shown in the form since issue 25: Airflow 3.3.2's Test button needs a port) ---


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        (
            "https://api.butlr.io",
            443,
            "https://api.butlr.io",
        ),  # the README's values: the default stays implicit
        ("api.butlr.io", 443, "https://api.butlr.io"),
        (None, 443, "https://api.butlr.io"),  # empty host: the default API, Port 443 agrees
        ("", 8443, "https://api.butlr.io:8443"),
        ("https://api.butlr.io:443", 443, "https://api.butlr.io:443"),  # as written; the ports agree
        ("https://proxy.example.com/butlr/", 8443, "https://proxy.example.com:8443/butlr"),
        ("http://127.0.0.1:8765", 8765, "http://127.0.0.1:8765"),  # the emulator, Port = its port
        ("http://127.0.0.1", 8765, "http://127.0.0.1:8765"),
        ("http://localhost", 80, "http://localhost"),
        ("http://[::1]", 8765, "http://[::1]:8765"),
        ("https://api.butlr.io", 0, "https://api.butlr.io"),  # 0: none (Airflow's own reading, #73298)
        ("https://api.butlr.io", None, "https://api.butlr.io"),
        ("https://api.butlr.io", "8443", "https://api.butlr.io:8443"),  # a URI's port may be a string
    ],
)
def test_port_field(host: str | None, port: Any, expected: str) -> None:
    assert make(host=host, port=port).base_url == expected


def test_port_443_changes_neither_the_token_cache_key_nor_the_asset_uris() -> None:
    from airflow_provider_butlr.assets import lineage_namespace

    with_port, without = make(port=443), make()
    assert with_port.cache_key == without.cache_key
    assert (
        lineage_namespace(with_port.base_url) == lineage_namespace(without.base_url) == "butlr://api.butlr.io"
    )


@pytest.mark.parametrize(
    ("host", "port", "message"),
    [
        (
            "http://127.0.0.1:8765",
            443,
            r"port 443 differs from the port 8765 in host 'http://127\.0\.0\.1:8765'",
        ),
        ("https://api.butlr.io:8443", 443, r"port 443 differs from the port 8443"),
        ("https://api.butlr.io", -1, r"port -1 is not between 1 and 65535"),
        ("https://api.butlr.io", 65536, r"port 65536 is not between 1 and 65535"),
        ("https://api.butlr.io", "https", r"port 'https' is not a whole number"),
    ],
)
def test_a_wrong_port_is_refused_naming_the_field(host: str, port: Any, message: str) -> None:
    with pytest.raises(
        ButlrConfigurationError, match=message + r".*\(connection butlr_default, field port\)"
    ):
        make(host=host, port=port)


def emulator_connection(emu: Any, *, host: str, port: int | None) -> str:
    """The emulator as an ``AIRFLOW_CONN_*`` JSON value with an explicit Port field."""
    return json.dumps(
        {
            "conn_type": "butlr",
            "host": host,
            "port": port,
            "login": emu.client_id,
            "password": emu.client_secret,
            "extra": {"audience": emu.audience, "timeout": 10, "max_retries": 1},
        }
    )


@pytest.mark.parametrize("host_names_the_port", [True, False])
def test_a_connection_with_a_port_reaches_the_emulator(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, host_names_the_port: bool
) -> None:
    """What the form stores when a user follows the README: API base URL plus Port (real HTTP)."""
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    host = emulator.url if host_names_the_port else "http://127.0.0.1"
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUTLR_DEFAULT", emulator_connection(emulator, host=host, port=emulator.port)
    )
    ok, message = ButlrHook().test_connection()
    assert ok, message
    assert message.startswith(f"Connected to Butlr at {emulator.url} ")


def test_a_port_contradicting_the_host_fails_the_test_naming_the_field(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_BUTLR_DEFAULT", emulator_connection(emulator, host=emulator.url, port=443)
    )
    ok, message = ButlrHook().test_connection()
    assert not ok
    assert f"port 443 differs from the port {emulator.port}" in message and "field port" in message
    assert emulator.client_secret not in message
