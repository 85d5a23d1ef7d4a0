"""The receiver plugin's registration and its cheap parts (no database, no server)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from airflow_provider_butlr.push.streams import Condition
from airflow_provider_butlr.webhooks.receiver import RefusalLog
from airflow_provider_butlr.webhooks.store import parse_asset
from tests.support.paths import REPO

HOST = "api.butlr.io"
CONDITION = {"butlr_condition": {"op": "<=", "threshold": 0, "for_minutes": 15}}


def test_registered_as_an_entry_point_and_in_the_provider_info() -> None:
    from airflow_provider_butlr import get_provider_info
    from airflow_provider_butlr.webhooks.plugin import ButlrWebhooksPlugin, LazyReceiverApp

    [entry] = {e.value for e in entry_points(group="airflow.plugins") if e.name == "butlr_webhooks"}
    assert entry == "airflow_provider_butlr.webhooks.plugin:ButlrWebhooksPlugin"
    [info] = get_provider_info()["plugins"]
    assert info["plugin-class"].rsplit(".", 1)[1] == ButlrWebhooksPlugin.__name__
    assert info["name"] == ButlrWebhooksPlugin.name
    [app] = ButlrWebhooksPlugin.fastapi_apps
    assert app["url_prefix"] == "/butlr" and isinstance(app["app"], LazyReceiverApp)


def test_loading_the_plugin_imports_neither_fastapi_nor_the_receiver() -> None:
    """Every Airflow process loads plugins; only the api-server serves the app. (Airflow 3.0's own
    plugins manager imports FastAPI: the plugin must add nothing to what its base class costs.)"""
    probe = "import sys, json; {}; print(json.dumps(sorted(set(sys.modules))))"
    base = "from airflow.providers.common.compat.sdk import AirflowPlugin"
    modules = {}
    for name, code in (("base", base), ("plugin", "import airflow_provider_butlr.webhooks.plugin")):
        out = subprocess.run(
            [sys.executable, "-c", probe.format(code)], capture_output=True, text=True, cwd=REPO, check=True
        )
        modules[name] = set(json.loads(out.stdout.strip().splitlines()[-1]))
    added = modules["plugin"] - modules["base"]
    assert "airflow_provider_butlr.webhooks.receiver" not in added
    assert not {m for m in added if m.split(".")[0] in ("fastapi", "starlette", "uvicorn", "sqlalchemy")}


@pytest.mark.parametrize(
    ("uri", "extra", "expected"),
    [
        ("butlr://api.butlr.io/rooms/room_1/occupancy", None, ("rooms", "room_1", "occupancy", None)),
        ("butlr://api.butlr.io/zones/zone_1/traffic", {}, ("zones", "zone_1", "traffic", None)),
        (
            "butlr://api.butlr.io/rooms/room_1/empty",
            CONDITION,
            ("rooms", "room_1", "empty", Condition("<=", 0, 15)),
        ),
        ("butlr://api.butlr.io/rooms/room_1/empty", None, None),  # the polling twin's asset: not fed
        ("butlr://other.host/rooms/room_1/occupancy", None, None),
        ("butlr://api.butlr.io/sensors/s_1/occupancy", None, None),
        ("butlr://api.butlr.io/rooms/room_1", None, None),
        ("file:///data/rooms/room_1/occupancy", None, None),
    ],
)
def test_which_declared_assets_the_receiver_feeds(uri: str, extra: object, expected: tuple | None) -> None:
    declared = parse_asset(7, "a", uri, extra, HOST)
    got = None if declared is None else (declared.kind, declared.asset_id, declared.state, declared.condition)
    assert got == expected


def test_a_bad_condition_on_an_asset_is_a_warning_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert (
            parse_asset(7, "a", "butlr://api.butlr.io/rooms/r/empty", {"butlr_condition": {"op": "~"}}, HOST)
            is None
        )
    assert "op '~'" in caplog.text and "asset 'a'" in caplog.text


def test_refusals_are_logged_once_per_interval_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    log = RefusalLog(interval=3600)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            log.refused(401, "missing or wrong credentials")
        log.refused(413, "too big")
    assert [r.getMessage() for r in caplog.records] == [
        "Butlr webhook receiver refused 1 request(s) with 401: missing or wrong credentials",
        "Butlr webhook receiver refused 1 request(s) with 413: too big",
    ]
    log.interval = 0
    with caplog.at_level(logging.WARNING):
        log.refused(401, "missing or wrong credentials")
    assert caplog.records[-1].getMessage().startswith("Butlr webhook receiver refused 5 request(s) with 401")
