"""Shared helpers of the time-series engine tests: the engine called directly, ground truth, fixtures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from airflow_provider_butlr.testing.config import EmulatorConfig
from airflow_provider_butlr.testing.org.model import Organization
from airflow_provider_butlr.testing.timeseries.reporting import run_reporting, run_stats
from airflow_provider_butlr.testing.timeseries.series import minute_values
from tests.integration.emulator.series_orgs import build_series_org
from tests.support.paths import FIXTURES

SEED = 11
UTC = UTC
# Wednesday 2025-11-05, 10:24:45 in New York: the clock of every engine test unless said otherwise.
NOW = datetime(2025, 11, 5, 15, 24, 45, tzinfo=UTC)
# Tuesday 2025-11-04 in New York (UTC-5): a complete local day before NOW.
NY_DAY_START = datetime(2025, 11, 4, 5, tzinfo=UTC)
NY_DAY_STOP = NY_DAY_START + timedelta(days=1)
FIXTURES = FIXTURES / "butlr"
# Row keys the fixtures (October 2025) predate: data-quality fields (from 2025-11-01) and custom ids.
LATER_ROW_KEYS = {"data_incomplete", "null_percentage", "floor_custom_id", "room_custom_id", "zone_custom_id"}
STAT_KEYS = {"sum", "min", "max", "count", "mean", "median", "stddev", "first", "last"}


@lru_cache(maxsize=1)
def org() -> Organization:
    """The hand-built organisation of ``series_orgs`` (shared: engines never mutate it)."""
    return build_series_org()


def config(**changes: Any) -> EmulatorConfig:
    return EmulatorConfig(seed=SEED, **changes)


def report(body: dict[str, Any], now: datetime = NOW, **changes: Any) -> dict[str, Any]:
    """``run_reporting`` on the hand-built org; ``changes`` are EmulatorConfig fields."""
    return run_reporting(org(), body, now, config(**changes))


def stats(body: dict[str, Any], now: datetime = NOW, **changes: Any) -> dict[str, Any]:
    return run_stats(org(), body, now, config(**changes))


def truth(
    measurement: str, asset: str, start: datetime, stop: datetime, field: str | None = None
) -> list[int]:
    """Ground-truth minute values from the generator (no data-quality masking)."""
    return [v for _, v in minute_values(org(), measurement, asset, start, stop, SEED, field=field)]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def body(
    measurements: list[str],
    start: datetime = NY_DAY_START,
    stop: datetime = NY_DAY_STOP,
    window: dict[str, Any] | None = None,
    **filters: Any,
) -> dict[str, Any]:
    """A reporting body: ``filters`` are filter keys (``rooms=["room_a"]`` becomes ``{"eq": [...]}``)."""
    flt: dict[str, Any] = {"measurements": measurements, "start": iso(start), "stop": iso(stop)}
    for key, value in filters.items():
        flt[key] = {"eq": value} if isinstance(value, list) else value
    result: dict[str, Any] = {"filter": flt}
    if window is not None:
        result["window"] = window
    return result
