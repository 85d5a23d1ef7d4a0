"""A connection Airflow cannot give the hook: the error says where it looked and why, sync and async."""

from __future__ import annotations

import json

import pytest
from airflow.providers.common.compat.sdk import AirflowNotFoundException

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrConnectionNotFoundError
from airflow_provider_butlr.hooks.butlr import ButlrHook
from airflow_provider_butlr.hooks.butlr_async import ButlrAsyncHook

SECRET = "unreadable-secret-Jk4Wq9"
# Airflow's environment backend raises on a key that Connection does not take, as 3.0/3.1 do on
# every connection with a password once cryptography >= 51 is installed (issue 26).
UNREADABLE = json.dumps({"conn_type": "butlr", "password": SECRET, "no_such_field": 1})


def test_an_unreadable_environment_variable_is_named_with_airflows_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_BROKEN", UNREADABLE)
    with pytest.raises(ButlrConnectionNotFoundError) as caught:
        _ = ButlrHook("butlr_broken").settings
    message = str(caught.value)
    assert "AIRFLOW_CONN_BUTLR_BROKEN is set, but Airflow could not read it: TypeError" in message
    assert "isn't defined" not in message and SECRET not in message
    assert isinstance(caught.value, AirflowNotFoundException)  # what callers caught before
    assert isinstance(caught.value, ButlrConfigurationError)


def test_a_missing_connection_says_where_airflow_looked() -> None:
    with pytest.raises(
        ButlrConnectionNotFoundError, match=r"'butlr_nowhere' is not defined.*AIRFLOW_CONN_BUTLR_NOWHERE"
    ):
        _ = ButlrHook("butlr_nowhere").settings


async def test_the_async_hook_says_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_BROKEN", UNREADABLE)
    with pytest.raises(ButlrConnectionNotFoundError, match="could not read it: TypeError") as caught:
        await ButlrAsyncHook("butlr_broken").aget_settings()
    assert SECRET not in str(caught.value)
    with pytest.raises(ButlrConnectionNotFoundError, match="'butlr_nowhere' is not defined"):
        await ButlrAsyncHook("butlr_nowhere").aget_settings()
