"""Device health: the sensors and hives queries and the pure rules (offline, battery, placeholders).

Hives only have camelCase health fields (``isOnline``, ``lastHeartbeat``, ``serialNumber``), which
are safe to select.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_butlr.reporting.times import format_time, parse_iso_utc

SENSORS_QUERY = """
query ButlrSensors {
  sensors { data { id name mac_address mode model floor_id room_id hive_id hive_serial is_entrance
    is_online is_streaming power_type last_heartbeat battery_change_by_date next_battery_change_date
    last_battery_change_date installation_status } }
}
""".strip()


HIVES_QUERY = """
query ButlrHives {
  hives { data { id name serialNumber floor_id room_id isOnline isStreaming lastHeartbeat
    netPathStability installed hiveVersion hiveType } }
}
""".strip()


PLACEHOLDER_MAC_PREFIXES = ("mi-rr-or", "fa-ke", "fake")


PLACEHOLDER_SERIAL_PREFIXES = ("fake",)


BATTERY_STATUSES = ("critical", "due_soon", "healthy", "wired", "unknown")


DEFAULT_DUE_SOON_DAYS = 30


def is_placeholder_sensor(sensor: Mapping[str, Any]) -> bool:
    """Test/mirror devices (MAC ``mi-rr-or...``, ``fa-ke...``, ``fake...`` or empty) still send data."""
    mac = str(sensor.get("mac_address") or "").strip().lower()
    return not mac or mac.startswith(PLACEHOLDER_MAC_PREFIXES)


def is_placeholder_hive(hive: Mapping[str, Any]) -> bool:
    serial = str(hive.get("serialNumber") or hive.get("serial_number") or "").strip().lower()
    return not serial or serial.startswith(PLACEHOLDER_SERIAL_PREFIXES)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return parse_iso_utc(value)
    except ValueError:
        return None


def _seconds(heartbeat: Any) -> float | None:
    """A Unix-seconds heartbeat as a time a datetime can hold (years 1 to 9999); None otherwise."""
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, (int, float)):
        return None
    if not _EARLIEST <= heartbeat <= _LATEST:  # NaN, infinities, 10**400: no time at all
        return None
    return float(heartbeat)


_EARLIEST, _LATEST = -62135596800, 253402300799  # 0001-01-01 and 9999-12-31T23:59:59Z


def hours_since(heartbeat: Any, now: datetime) -> float | None:
    """Hours since a Unix-seconds heartbeat (None when absent or not a time)."""
    seconds = _seconds(heartbeat)
    return None if seconds is None else round((now.timestamp() - seconds) / 3600.0, 2)


def battery_status(
    sensor: Mapping[str, Any], now: datetime, due_soon_days: int = DEFAULT_DUE_SOON_DAYS
) -> str:
    """Butlr's rule: Wired -> wired; no change-by date -> unknown; past -> critical; <= N days -> due_soon."""
    if str(sensor.get("power_type") or "").strip().lower() == "wired":
        return "wired"
    due = _parse_time(sensor.get("battery_change_by_date"))
    if due is None:
        return "unknown"
    if due <= now:
        return "critical"
    if (due - now).total_seconds() <= due_soon_days * 86400:
        return "due_soon"
    return "healthy"


def _heartbeat_iso(heartbeat: Any) -> str | None:
    seconds = _seconds(heartbeat)
    return (
        None
        if seconds is None
        else format_time(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds))
    )


def _offline(online: Any, age_hours: float | None, offline_after_hours: float | None) -> bool:
    if not online:
        return True
    return offline_after_hours is not None and age_hours is not None and age_hours > offline_after_hours


def device_health_report(
    sensors: Iterable[Mapping[str, Any]],
    hives: Iterable[Mapping[str, Any]],
    now: datetime,
    *,
    floor_ids: Iterable[str] | None = None,
    offline_after_hours: float | None = None,
    due_soon_days: int = DEFAULT_DUE_SOON_DAYS,
) -> dict[str, Any]:
    """Offline sensors/hives (with hours since ``last_heartbeat``) and battery status, placeholders excluded.

    A device is offline when its online flag is false, or when ``offline_after_hours`` is set and
    its last heartbeat is older than that. JSON-serialisable.
    """
    floors = set(floor_ids) if floor_ids is not None else None
    scoped_sensors = [s for s in sensors if floors is None or s.get("floor_id") in floors]
    scoped_hives = [h for h in hives if floors is None or h.get("floor_id") in floors]
    real_sensors = [s for s in scoped_sensors if not is_placeholder_sensor(s)]
    real_hives = [h for h in scoped_hives if not is_placeholder_hive(h)]

    offline_sensors = []
    batteries: dict[str, list[dict[str, Any]]] = {status: [] for status in BATTERY_STATUSES}
    for sensor in real_sensors:
        age = hours_since(sensor.get("last_heartbeat"), now)
        if _offline(sensor.get("is_online"), age, offline_after_hours):
            offline_sensors.append(
                {
                    "id": sensor.get("id"),
                    "name": sensor.get("name"),
                    "mac_address": sensor.get("mac_address"),
                    "floor_id": sensor.get("floor_id"),
                    "room_id": sensor.get("room_id"),
                    "last_heartbeat": _heartbeat_iso(sensor.get("last_heartbeat")),
                    "hours_since_heartbeat": age,
                }
            )
        status = battery_status(sensor, now, due_soon_days)
        batteries[status].append(
            {
                "id": sensor.get("id"),
                "name": sensor.get("name"),
                "battery_change_by_date": sensor.get("battery_change_by_date"),
            }
        )
    offline_hives = []
    for hive in real_hives:
        age = hours_since(hive.get("lastHeartbeat"), now)
        if _offline(hive.get("isOnline"), age, offline_after_hours):
            offline_hives.append(
                {
                    "id": hive.get("id"),
                    "name": hive.get("name"),
                    "serial_number": hive.get("serialNumber"),
                    "floor_id": hive.get("floor_id"),
                    "last_heartbeat": _heartbeat_iso(hive.get("lastHeartbeat")),
                    "hours_since_heartbeat": age,
                }
            )
    key = _offline_sort_key
    return {
        "checked_at": format_time(now),
        "sensors": _counts(len(real_sensors), len(offline_sensors), len(scoped_sensors) - len(real_sensors)),
        "hives": _counts(len(real_hives), len(offline_hives), len(scoped_hives) - len(real_hives)),
        "offline_sensors": sorted(offline_sensors, key=key),
        "offline_hives": sorted(offline_hives, key=key),
        "battery": {status: len(items) for status, items in batteries.items()},
        "critical_batteries": sorted(batteries["critical"], key=lambda d: str(d["id"])),
        "due_soon_batteries": sorted(batteries["due_soon"], key=lambda d: str(d["id"])),
    }


def _offline_sort_key(device: Mapping[str, Any]) -> tuple[float, str]:
    age = device.get("hours_since_heartbeat")
    return (-(age if isinstance(age, (int, float)) else float("inf")), str(device.get("id")))


def _counts(total: int, offline: int, placeholders: int) -> dict[str, Any]:
    return {
        "total": total,
        "online": total - offline,
        "offline": offline,
        "offline_share": round(offline / total, 4) if total else 0.0,
        "placeholders_excluded": placeholders,
    }
