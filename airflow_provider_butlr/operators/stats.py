"""ButlrStatsOperator: aggregates of the Stats API per item, grouped by site timezone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.hooks.base import ButlrBaseHook
from airflow_provider_butlr.operators.common import CONTAINER_KINDS, ensure_json, new_hook
from airflow_provider_butlr.reporting.arguments import Check, ids_of, positive_int, run_checks
from airflow_provider_butlr.reporting.times import format_time
from airflow_provider_butlr.reporting.validation import (
    validate_days,
    validate_ids,
    validate_stats_items,
    validate_stats_measurements,
    validate_time_ranges,
)
from airflow_provider_butlr.reporting.windows import TIME_CHECKS, resolve_window

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_provider_butlr.hooks.butlr import ButlrHook


class ButlrStatsOperator(BaseOperator):
    """Aggregates from ``POST /api/v4/reporting/stats``: ``{item_id: {measurement: number}}`` to XCom.

    Items are floor/room/zone ids (``items``) and/or the ``resolve_to`` assets (floors by default) of
    ``sites``/``buildings``. Butlr requires the items of one request to share a timezone: they are
    grouped by site timezone, and with ``local_day`` each group gets its own local days.
    """

    template_fields: Sequence[str] = (
        "butlr_conn_id",
        "measurements",
        "items",
        "sites",
        "buildings",
        "start",
        "stop",
        "local_day",
        "timezone",
        "exclude_days_of_week",
        "time_ranges",
    )
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        measurements: str | Sequence[str],
        items: Sequence[str] | str | None = None,
        sites: Sequence[str] | str | None = None,
        buildings: Sequence[str] | str | None = None,
        resolve_to: str = "floors",
        start: datetime | str | None = None,
        stop: datetime | str | None = None,
        local_day: bool | str | date | None = None,
        days: int = 1,
        timezone: str | None = None,
        exclude_days_of_week: Sequence[str] | str | None = None,
        time_ranges: Sequence[Any] | None = None,
        max_items_per_request: int = 30,
        butlr_conn_id: str = ButlrBaseHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.measurements = measurements
        self.items = items
        self.sites, self.buildings = sites, buildings
        self.resolve_to = resolve_to
        self.start, self.stop, self.local_day, self.days, self.timezone = (
            start,
            stop,
            local_day,
            days,
            timezone,
        )
        self.exclude_days_of_week = exclude_days_of_week
        self.time_ranges = time_ranges
        self.max_items_per_request = max_items_per_request
        self.butlr_conn_id = butlr_conn_id
        run_checks(self, self.checks, final=False)

    @staticmethod
    def _check_resolve_to(value: Any) -> str:
        if value not in ("floors", "rooms", "zones"):
            raise ButlrConfigurationError(f"resolve_to {value!r} is not allowed; use floors, rooms or zones")
        return str(value)

    @staticmethod
    def _require_items(items: Any, sites: Any, buildings: Any) -> None:
        if not items and not validate_ids("sites", sites) and not validate_ids("buildings", buildings):
            raise ButlrConfigurationError("select items (floor, room or zone ids) and/or sites or buildings")

    checks: Sequence[Check] = (
        Check("measurements", ("measurements",), validate_stats_measurements),
        Check("resolve_to", ("resolve_to",), _check_resolve_to),
        Check("items", ("items",), lambda items: validate_stats_items(items) if items else []),
        Check("sites", ("sites",), ids_of("sites")),
        Check("buildings", ("buildings",), ids_of("buildings")),
        Check("selection", ("items", "sites", "buildings"), _require_items, final_only=True),
        Check("exclude_days_of_week", ("exclude_days_of_week",), validate_days),
        Check("time_ranges", ("time_ranges",), validate_time_ranges),
        Check("max_items_per_request", ("max_items_per_request",), positive_int("max_items_per_request")),
        *TIME_CHECKS,
    )

    def _items_by_timezone(self, hook: ButlrHook) -> dict[str, list[str]]:
        explicit = validate_stats_items(self.items) if self.items else []
        containers = {k: validate_ids(k, getattr(self, k)) for k in CONTAINER_KINDS}
        if self.timezone is not None and not any(containers.values()):
            return {self.timezone: explicit}
        topology = hook.get_topology()
        resolved = topology.resolve(containers).get(self.resolve_to, []) if any(containers.values()) else []
        chosen = list(dict.fromkeys(explicit + resolved))
        if self.timezone is not None:
            return {self.timezone: chosen}
        groups: dict[str, list[str]] = {}
        for item in chosen:
            groups.setdefault(topology.timezone_of(item), []).append(item)
        return dict(sorted(groups.items()))

    def execute(self, context: Context) -> dict[str, dict[str, Any]]:
        run_checks(self, self.checks, final=True)
        result: dict[str, dict[str, Any]] = {}
        with new_hook(self.butlr_conn_id) as hook:
            for tz, items in self._items_by_timezone(hook).items():
                start, stop = resolve_window(
                    context, tz, start=self.start, stop=self.stop, local_day=self.local_day, days=self.days
                )
                self.log.info(
                    "Stats for %d items in %s, [%s, %s).",
                    len(items),
                    tz,
                    format_time(start),
                    format_time(stop),
                )
                result.update(
                    hook.query_stats(
                        self.measurements,
                        items,
                        start=start,
                        stop=stop,
                        exclude_days_of_week=self.exclude_days_of_week,
                        time_ranges=self.time_ranges,
                        max_items_per_request=self.max_items_per_request,
                    )
                )
        return ensure_json(result, "the stats")

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """Inputs ``butlr://<host>`` ``stats/<measurement>``; the result goes to XCom (no output)."""
        from airflow_provider_butlr.lineage import build_lineage, namespace_for

        names = [f"stats/{m}" for m in validate_stats_measurements(self.measurements)]
        return build_lineage(namespace_for(self.butlr_conn_id), names)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        return self.get_openlineage_facets_on_start()
