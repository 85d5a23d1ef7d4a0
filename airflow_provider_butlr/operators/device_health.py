"""ButlrDeviceHealthOperator: offline sensors and hives, battery status, and the thresholds that fail it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrDeviceHealthError
from airflow_provider_butlr.hooks.base import ButlrBaseHook
from airflow_provider_butlr.operators.common import new_hook
from airflow_provider_butlr.reporting.arguments import Check, ids_of, positive_int, run_checks
from airflow_provider_butlr.reporting.health import device_health_report
from airflow_provider_butlr.reporting.validation import validate_ids

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_provider_butlr.hooks.butlr import ButlrHook


def threshold(name: str, value: Any) -> float | int | None:
    """A device-health threshold as a number (numeric strings from rendered templates are accepted)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    rules = {
        "max_offline_share": (
            "a share between 0 and 1 (e.g. 0.2 for 20 %)",
            float,
            lambda v: 0 <= v <= 1,
        ),
        "max_critical_batteries": ("an integer from 0 to 1000000", int, lambda v: 0 <= v <= 1_000_000),
        "offline_after_hours": (
            "a positive number of hours, at most 87600 (ten years)",
            float,
            lambda v: 0 < v <= 87_600,  # NaN and infinity fail this comparison too
        ),
    }
    meaning, kind, valid = rules[name]
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(value)
        number = kind(float(value)) if kind is float else int(str(value).strip())
    except ValueError:
        raise ButlrConfigurationError(f"{name} must be {meaning}, got {value!r}") from None
    if not valid(number):
        raise ButlrConfigurationError(f"{name} must be {meaning}, got {value!r}")
    return number


class ButlrDeviceHealthOperator(BaseOperator):
    """Report offline sensors/hives and battery status; fail when the user's thresholds are passed.

    Placeholder test devices (``mi-rr-or``/``fa-ke`` MACs, ``fake`` serials) are excluded. Scope with
    ``sites``/``buildings``/``floors`` (default: the whole organisation). The report goes to XCom
    (return value, and key ``device_health`` even when the task fails).

    :param max_offline_share: fail when the offline share of sensors or of hives is above this (0-1).
    :param max_critical_batteries: fail when more batteries than this are past their change-by date.
    :param offline_after_hours: also count a device as offline when its last heartbeat is older.
    :param due_soon_days: a battery is ``due_soon`` within this many days of its change-by date.
    """

    template_fields: Sequence[str] = (
        "butlr_conn_id",
        "sites",
        "buildings",
        "floors",
        "max_offline_share",
        "max_critical_batteries",
        "offline_after_hours",
    )
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        sites: Sequence[str] | str | None = None,
        buildings: Sequence[str] | str | None = None,
        floors: Sequence[str] | str | None = None,
        max_offline_share: float | None = None,
        max_critical_batteries: int | None = None,
        offline_after_hours: float | None = None,
        due_soon_days: int = 30,
        butlr_conn_id: str = ButlrBaseHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sites = sites
        self.buildings = buildings
        self.floors = floors
        self.max_offline_share = max_offline_share
        self.max_critical_batteries = max_critical_batteries
        self.offline_after_hours = offline_after_hours
        self.due_soon_days = due_soon_days
        self.butlr_conn_id = butlr_conn_id
        self._apply(run_checks(self, self.checks, final=False))

    def _apply(self, checked: Mapping[str, Any]) -> None:
        """Thresholds as numbers (numeric strings from rendered templates are accepted)."""
        for name in self.THRESHOLDS:
            if name in checked:
                setattr(self, name, checked[name])

    THRESHOLDS = ("max_offline_share", "max_critical_batteries", "offline_after_hours")

    checks: Sequence[Check] = (
        *(Check(kind, (kind,), ids_of(kind)) for kind in ("sites", "buildings", "floors")),
        *(Check(name, (name,), lambda value, name=name: threshold(name, value)) for name in THRESHOLDS),
        Check("due_soon_days", ("due_soon_days",), positive_int("due_soon_days")),
    )

    def _threshold(self, name: str) -> float | int | None:
        return threshold(name, getattr(self, name))

    def _floor_scope(self, hook: ButlrHook) -> list[str] | None:
        selection = {k: validate_ids(k, getattr(self, k)) for k in ("sites", "buildings", "floors")}
        if not any(selection.values()):
            return None
        topology = hook.get_topology()
        for floor in selection.get("floors", []):  # a mistyped floor would pass the check on zero devices
            if floor not in topology.assets:
                raise ButlrConfigurationError(
                    f"floors: {floor!r} is not a floor in the topology this connection can see"
                )
        return topology.resolve(selection).get("floors", [])

    def execute(self, context: Context) -> dict[str, Any]:
        self._apply(run_checks(self, self.checks, final=True))
        with new_hook(self.butlr_conn_id) as hook:
            floors = self._floor_scope(hook)
            sensors, hives = hook.get_sensors(), hook.get_hives()
        report = device_health_report(
            sensors,
            hives,
            datetime.now(UTC),
            floor_ids=floors,
            offline_after_hours=self.offline_after_hours,
            due_soon_days=self.due_soon_days,
        )
        s, h = report["sensors"], report["hives"]
        self.log.info(
            "Sensors: %d/%d offline; hives: %d/%d offline; batteries: %s (placeholders excluded: %d sensors, %d hives).",
            s["offline"],
            s["total"],
            h["offline"],
            h["total"],
            report["battery"],
            s["placeholders_excluded"],
            h["placeholders_excluded"],
        )
        problems = self._problems(report)
        if problems:
            ti = context.get("ti") if hasattr(context, "get") else None
            if ti is not None:
                ti.xcom_push(key="device_health", value=report)
            raise ButlrDeviceHealthError("Butlr device health check failed: " + "; ".join(problems))
        return report

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """Inputs ``butlr://<host>`` ``graphql/sensors`` and ``graphql/hives`` (and ``graphql/topology``
        when scoped to sites, buildings or floors); the report goes to XCom."""
        from airflow_provider_butlr.lineage import build_lineage, namespace_for

        names = ["graphql/sensors", "graphql/hives"]
        if any(getattr(self, k) for k in ("sites", "buildings", "floors")):
            names.append("graphql/topology")
        return build_lineage(namespace_for(self.butlr_conn_id), names)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        return self.get_openlineage_facets_on_start()

    def _problems(self, report: Mapping[str, Any]) -> list[str]:
        problems = []
        if self.max_offline_share is not None:
            for kind in ("sensors", "hives"):
                counts = report[kind]
                share = counts["offline"] / counts["total"] if counts["total"] else 0.0  # unrounded
                if share > self.max_offline_share:
                    problems.append(
                        f"{report[kind]['offline']} of {report[kind]['total']} {kind} offline "
                        f"({share:.1%} > max_offline_share {self.max_offline_share:.1%})"
                    )
        critical = report["battery"]["critical"]
        if self.max_critical_batteries is not None and critical > self.max_critical_batteries:
            problems.append(
                f"{critical} critical batteries (> max_critical_batteries {self.max_critical_batteries})"
            )
        return problems
