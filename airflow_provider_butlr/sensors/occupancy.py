"""ButlrOccupancySensor: wait until the current occupancy of rooms, zones or floors passes a threshold."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.providers.common.compat.sdk import Context

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.polling.answers import COMPARATORS, QUANTIFIERS
from airflow_provider_butlr.polling.conditions import Occupancy
from airflow_provider_butlr.polling.occupancy import minute_median_requests
from airflow_provider_butlr.polling.plans import PollPlan
from airflow_provider_butlr.reporting.catalogue import (
    OCCUPANCY_MEASUREMENTS,
    OCCUPANCY_SOURCES,
    occupancy_measurements,
)
from airflow_provider_butlr.reporting.planning import BatchLimits
from airflow_provider_butlr.reporting.validation import validate_ids
from airflow_provider_butlr.sensors.base import ButlrPollingSensor, asset_arguments


class ButlrOccupancySensor(ButlrPollingSensor):
    """Wait until the current occupancy of rooms, zones or floors passes a threshold.

    Current occupancy = the median of an asset's latest ``lookback_minutes`` 1-minute windows
    (Butlr's recommendation), found within the last ``search_minutes`` (Butlr's data lags a few
    minutes); with ``source="auto"`` presence and traffic-based (calibrated)
    occupancy are both read and the higher one counts, as Butlr's own tools do.

    :param rooms: room ids (templated). Give exactly one of rooms, zones, floors.
    :param zones: zone ids (templated; presence only).
    :param floors: floor ids (templated).
    :param op: comparison, one of ``<``, ``<=``, ``==``, ``!=``, ``>=``, ``>`` (e.g. ``<=`` 0 = empty).
    :param threshold: a number, or ``{asset_id: number}`` (e.g. each room's capacity) (templated).
    :param match: ``all`` assets must pass, or ``any`` one.
    :param source: ``auto``, ``presence`` or ``traffic``.
    :param lookback_minutes: how many recent minutes make "current" (default 5).
    :param search_minutes: how far back to look for them (default 20); older data counts as none.
    """

    template_fields: Sequence[str] = ("butlr_conn_id", "floors", "rooms", "zones", "threshold")

    def __init__(
        self,
        *,
        rooms: Sequence[str] | str | None = None,
        zones: Sequence[str] | str | None = None,
        floors: Sequence[str] | str | None = None,
        op: str = ">=",
        threshold: float | Mapping[str, float] | str = 1,
        match: str = "all",
        source: str = "auto",
        lookback_minutes: int = 5,
        search_minutes: int = 20,
        max_ids_per_request: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        assets = asset_arguments(floors, rooms, zones)
        if len(assets) != 1:
            raise ButlrConfigurationError(
                f"{self.task_id}: give exactly one of rooms, zones, floors (got {', '.join(assets) or 'none'})"
            )
        if source not in OCCUPANCY_SOURCES:
            raise ButlrConfigurationError(f"source {source!r} is not one of {', '.join(OCCUPANCY_SOURCES)}")
        if "zones" in assets and source == "traffic":
            raise ButlrConfigurationError(
                "source 'traffic' is not available for zones (zones report presence only)"
            )
        if not isinstance(lookback_minutes, int) or not 1 <= lookback_minutes <= 60:
            raise ButlrConfigurationError(
                f"lookback_minutes {lookback_minutes!r} must be a whole number from 1 to 60"
            )
        if op not in COMPARATORS:
            raise ButlrConfigurationError(f"op {op!r} is not one of {', '.join(COMPARATORS)}")
        if match not in QUANTIFIERS:
            raise ButlrConfigurationError(f"match {match!r} is not one of {', '.join(QUANTIFIERS)}")
        self.floors, self.rooms, self.zones = floors, rooms, zones
        self.op, self.threshold, self.match = op, threshold, match
        self.source = source
        if not isinstance(search_minutes, int) or not lookback_minutes <= search_minutes <= 120:
            raise ButlrConfigurationError(
                f"search_minutes {search_minutes!r} must be a whole number from lookback_minutes to 120"
            )
        self.lookback_minutes = lookback_minutes
        self.search_minutes = search_minutes
        self.limits = BatchLimits.from_args(max_ids_per_request)

    def _threshold(self) -> float | dict[str, float]:
        value = self.threshold
        try:
            if isinstance(value, Mapping):
                return {str(k): float(v) for k, v in value.items()}
            return float(value)
        except (TypeError, ValueError):
            raise ButlrConfigurationError(
                f"threshold {value!r} must be a number or a mapping of asset id to number"
            ) from None

    def build_plan(self, context: Context) -> PollPlan:
        kind, raw_ids = next(iter(asset_arguments(self.floors, self.rooms, self.zones).items()))
        ids = validate_ids(kind, raw_ids)
        row_key, _, traffic = OCCUPANCY_MEASUREMENTS[kind]
        measurements = occupancy_measurements(kind, self.source)
        now = time.time()
        stop = datetime.fromtimestamp(now - now % 60, tz=UTC)  # re-set at every poll
        lookback = self.search_minutes * 60.0
        requests = minute_median_requests(kind, ids, measurements, traffic, lookback, self.limits, stop)
        condition = Occupancy(
            row_key, ids, self.op, self._threshold(), self.match, latest=self.lookback_minutes
        )
        return PollPlan(requests, [condition])
