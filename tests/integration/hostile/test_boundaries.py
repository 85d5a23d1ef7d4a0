"""Issue 22, item 7: absurd numbers are refused by name at the boundary, and a refused redirect says
what differs.

Every numeric connection extra and hook option has bounds (``EXTRA_BOUNDS``, ``OPTION_BOUNDS``), listed
in the README's connection table; a value outside them (1e10 s of timeout, a million retries, NaN,
infinity) is a ButlrConfigurationError naming the field before any request, for the sync hook, the
async hook, a sensor's hook options and the trigger alike. A redirect to the same host under another
scheme or port is refused as such, not as "another host".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_butlr.exceptions import ButlrAPIError, ButlrConfigurationError
from airflow_provider_butlr.sensors.butlr import ButlrSensor
from airflow_provider_butlr.triggers.butlr import ButlrTrigger
from tests.support.hostile import (
    DATA,
    DRIVERS,
    Driver,
    HostileApi,
    Request,
    hostile_api,
    outcome,
    sync_call,
    use_connection,
)

README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileApi]:
    yield from hostile_api(monkeypatch)


ABSURD_EXTRAS = [
    ("timeout", 1e10),
    ("timeout", 1e12),
    ("timeout", 0),
    ("timeout", "inf"),
    ("timeout", float("nan")),
    ("max_retries", 1_000_000),
    ("max_retries", -1),
    ("max_response_bytes", 10),
    ("max_response_bytes", 10**13),
    ("max_requests_per_minute", 10**6),
    ("max_requests_per_minute", -5),
]


@DRIVERS
@pytest.mark.parametrize(("name", "value"), ABSURD_EXTRAS, ids=[f"{n}={v}" for n, v in ABSURD_EXTRAS])
def test_an_absurd_connection_extra_is_refused_by_name_before_any_request(
    api: HostileApi, call: Driver, name: str, value: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(monkeypatch, api, **{name: value})
    _, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert isinstance(err, ButlrConfigurationError), err
    assert f"extra.{name}" in str(err) and "connection butlr_default" in str(err), err
    assert api.seen == []


ABSURD_OPTIONS = [
    ("timeout", 1e10),
    ("timeout", float("inf")),
    ("timeout", float("nan")),
    ("max_retries", 1_000_000),
    ("retry_after_cap", 1e12),
    ("retry_after_cap", float("inf")),
    ("retry_wait_max", 1e9),
    ("retry_wait_initial", float("nan")),
    ("retry_wait_initial", -1.0),
]


@DRIVERS
@pytest.mark.parametrize(("name", "value"), ABSURD_OPTIONS, ids=[f"{n}={v}" for n, v in ABSURD_OPTIONS])
def test_an_absurd_hook_option_is_refused_by_name(
    api: HostileApi, call: Driver, name: str, value: Any
) -> None:
    _, err, _ = outcome(call, "POST", DATA, {"q": 1}, **{name: value})
    assert isinstance(err, ButlrConfigurationError) and name in str(err), err
    assert api.seen == []


@pytest.mark.parametrize(("name", "value"), ABSURD_OPTIONS, ids=[f"{n}={v}" for n, v in ABSURD_OPTIONS])
def test_a_sensor_and_the_trigger_refuse_absurd_hook_options_by_name(name: str, value: Any) -> None:
    with pytest.raises(ButlrConfigurationError, match=name):
        ButlrSensor(task_id="s", endpoint=DATA, hook_params={name: value})
    with pytest.raises(ButlrConfigurationError, match=name):
        ButlrTrigger(plan={"requests": [{"endpoint": DATA}]}, deadline=0.0, hook_params={name: value})


def test_the_largest_values_allowed_are_accepted(api: HostileApi, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_butlr import EXTRA_BOUNDS
    from airflow_provider_butlr.hooks.options import OPTION_BOUNDS

    use_connection(monkeypatch, api, **{name: largest for name, (_, largest) in EXTRA_BOUNDS.items()})
    options = {name: largest for name, (_, largest) in OPTION_BOUNDS.items()}
    result, err, _ = outcome(sync_call, "POST", DATA, {"q": 1}, **options)
    assert err is None and result == {"data": []}, err


def test_the_readme_connection_table_states_every_bound() -> None:
    from airflow_provider_butlr import EXTRA_BOUNDS
    from airflow_provider_butlr.hooks.options import OPTION_BOUNDS

    readme = README.read_text(encoding="utf-8")
    for name, (least, largest) in EXTRA_BOUNDS.items():
        row = next(line for line in readme.splitlines() if line.startswith("|") and f"`extra.{name}`" in line)
        assert re.search(rf"\b{least}\b.*\b{largest}\b", row.replace(",", "")), (name, row)
    for name, (_, largest) in OPTION_BOUNDS.items():
        assert re.search(rf"`{name}`[^.]*\b{largest:g}\b", readme), name


# --- a redirect to the same host under another scheme or port -------------------------------------


def redirecting(location: str) -> Any:
    def script(request: Request) -> None:
        request.reply(307, b"", headers={"Location": location})

    return script


@DRIVERS
@pytest.mark.parametrize("what", ["scheme", "port"])
def test_a_refused_redirect_says_what_differs(api: HostileApi, call: Driver, what: str) -> None:
    port = api.server.server_address[1]
    target = f"https://127.0.0.1:{port}/x" if what == "scheme" else f"http://127.0.0.1:{port + 1}/x"
    api.script = redirecting(target)
    _, err, _ = outcome(call, "POST", DATA, {"q": 1})
    assert isinstance(err, ButlrAPIError), err
    assert f"another {what}" in str(err) and "another host" not in str(err), err
    assert len(api.seen) == 2  # the login and the call: the redirect was not followed


pytestmark = pytest.mark.airflow_independent
