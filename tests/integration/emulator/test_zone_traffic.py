"""``traffic_zone_occupancy``: the measurement Butlr's client sends for zones (reporting-client.ts:409).

Shaped like ``traffic_room_occupancy`` / ``traffic_floor_occupancy``: accepted with ``calibrated``, rows named
``aggregator_headcount`` / ``aggregator_occupancy`` with ``preprocessed: true``, values the running
in - out of the traffic sensors listing the zone. Zones support presence only in Butlr's docs, so the
seeded organisation has no such sensor: there the answer is HTTP 200 without rows, never a 400.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow_provider_butlr.testing import ButlrEmulator
from airflow_provider_butlr.testing.org.model import Organization
from airflow_provider_butlr.testing.timeseries.reporting import run_reporting
from airflow_provider_butlr.testing.timeseries.series import minute_values, series_assets
from tests.integration.emulator.conftest import REPORTING, Client
from tests.integration.emulator.reporting_support import NOW, NY_DAY_START, SEED, body, config, iso
from tests.integration.emulator.series_orgs import _sensor, build_series_org


def zone_traffic_org() -> Organization:
    """The hand-built org plus one traffic sensor over ``zone_free`` (a zone outside any room)."""
    org = build_series_org()
    floor = org.floors_by_id["space_ny1"]
    floor.sensors = [*(floor.sensors or []), _sensor("sensor_tz", floor.id, "traffic", None, ["zone_free"])]
    org.reindex()
    return org


def test_zone_traffic_occupancy_rows_follow_the_traffic_occupancy_shape_and_the_ground_truth() -> None:
    org = zone_traffic_org()
    assert series_assets(org, "traffic_zone_occupancy", SEED) == ["zone_free"]
    start, stop = NY_DAY_START + timedelta(hours=9), NY_DAY_START + timedelta(hours=17)
    query: dict[str, Any] = body(
        ["traffic_zone_occupancy"],
        start,
        stop,
        {"every": "1h", "function": "max"},
        zones=["zone_free", "zone_a"],
    )
    query["filter"]["calibrated"] = "true"
    query["filter"]["value"] = {"gte": 0}
    rows = run_reporting(org, query, NOW, config())["data"]
    truth = [v for _, v in minute_values(org, "traffic_zone_occupancy", "zone_free", start, stop, SEED)]
    assert [row["value"] for row in rows] == [max(truth[h * 60 : (h + 1) * 60]) for h in range(8)]
    assert max(truth) > 0  # a day of traffic, not an all-zero series
    row = rows[0]
    assert (row["measurement"], row["field"], row["preprocessed"]) == (
        "aggregator_headcount",
        "aggregator_occupancy",
        True,
    )
    assert (row["zone_id"], row["zone_name"], row["space_id"], row["room_id"]) == (
        "zone_free",
        "Zone Free",
        "space_ny1",
        "",
    )
    assert row["building_id"] == "" and row["time"] == iso(start)  # aggregator rows leave the building empty


def test_the_seeded_org_answers_zone_traffic_without_rows_not_an_error(
    client: Client, emu: ButlrEmulator
) -> None:
    zones = list(emu.org.zones_by_id)[:5]
    stop = emu.clock.now() - timedelta(hours=1)
    query = body(
        ["traffic_zone_occupancy"],
        stop - timedelta(hours=2),
        stop,
        {"every": "1h", "function": "max"},
        zones=zones,
    )
    query["filter"]["calibrated"] = "true"
    response = client.post(REPORTING, query, token=client.token)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []
    query["filter"]["measurements"] = ["zone_occupancy"]
    response = client.post(REPORTING, query, token=client.token)
    assert (
        response.status_code == 400 and "calibrated" in response.json()["message"]
    )  # presence stays refused
