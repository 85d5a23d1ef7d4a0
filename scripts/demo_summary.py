"""Print a short human summary of the demo's exports and inventory (reads files only, no network).

Usage: ``python scripts/demo_summary.py --base EXPORT_BASE --logical-date 2025-03-10T09:00:00+00:00``

Reads what ``butlr_daily_occupancy_export`` wrote under ``<base>/<day>/`` (``day`` = the day before
the logical date) and what ``butlr_asset_inventory`` wrote under ``<base>/inventory/<logical day>/``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

EXPORTS = ("occupancy", "traffic", "presence_time")
MAX_LISTED_DEVICES = 5


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def by_id(path: Path) -> dict[str, dict[str, Any]]:
    return {record["id"]: record for record in read_jsonl(path)} if path.exists() else {}


def local_time(utc_text: str, timezone: str) -> str:
    """``2025-03-09T18:00:00Z`` -> ``14:00`` in the site's timezone."""
    moment = datetime.fromisoformat(utc_text.replace("Z", "+00:00"))
    return moment.astimezone(ZoneInfo(timezone)).strftime("%H:%M")


def rows_per_site(day_dir: Path, sites: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for site_dir in sorted(p for p in day_dir.iterdir() if p.is_dir()):
        site = sites.get(site_dir.name, {})
        counts = {
            name: sum(1 for _ in read_jsonl(site_dir / f"{name}.jsonl"))
            for name in EXPORTS
            if (site_dir / f"{name}.jsonl").exists()
        }
        detail = ", ".join(f"{name} {n}" for name, n in counts.items())
        label = f"{site.get('name') or site_dir.name} ({site.get('timezone') or 'UTC'})"
        lines.append(f"  {label:<36} {sum(counts.values()):>6} rows  ({detail})")
    return lines


def floor_peaks(day_dir: Path, sites: dict[str, dict[str, Any]]) -> list[str]:
    """The highest hourly ``max`` of floor_occupancy per floor (building / floor), at its local hour."""
    lines = []
    for site_dir in sorted(p for p in day_dir.iterdir() if p.is_dir()):
        timezone = sites.get(site_dir.name, {}).get("timezone") or "UTC"
        peaks: dict[str, dict[str, Any]] = {}
        path = site_dir / "occupancy.jsonl"
        rows = read_jsonl(path) if path.exists() else iter(())
        for row in rows:
            if row["measurement"] != "floor_occupancy" or row["function"] != "max" or row["value"] is None:
                continue
            best = peaks.get(row["floor_id"])
            if best is None or row["value"] > best["value"]:
                peaks[row["floor_id"]] = row
        site_name = sites.get(site_dir.name, {}).get("name") or site_dir.name
        for row in sorted(peaks.values(), key=lambda r: (str(r["building_name"]), str(r["floor_name"]))):
            building = row["building_name"] or site_name  # Butlr building names usually carry the site's
            name = f"{building} / {row['floor_name'] or row['floor_id']}"
            lines.append(
                f"  {name:<40} {row['value']:>4g} people at {local_time(row['time'], timezone)} local"
            )
    return lines


def offline_devices(health: dict[str, Any]) -> list[str]:
    sensors, hives = health["sensors"], health["hives"]
    lines = [
        f"  {sensors['offline']} of {sensors['total']} sensors and {hives['offline']} of {hives['total']} hives "
        f"offline (placeholders excluded); batteries: {health['battery']['critical']} critical, "
        f"{health['battery']['due_soon']} due soon"
    ]
    devices = [("hive", d) for d in health["offline_hives"]] + [
        ("sensor", d) for d in health["offline_sensors"]
    ]
    for kind, device in devices[:MAX_LISTED_DEVICES]:
        hours = device.get("hours_since_heartbeat")
        since = (
            f"last heartbeat {hours / 24:.1f} days ago" if isinstance(hours, (int, float)) else "never seen"
        )
        lines.append(f"    {kind} {device.get('name') or ''} ({device['id']}): {since}")
    if len(devices) > MAX_LISTED_DEVICES:
        lines.append(f"    ... and {len(devices) - MAX_LISTED_DEVICES} more in device_health.json")
    return lines


def summary(base: Path, logical_day: date) -> str:
    exported = logical_day - timedelta(days=1)
    day = exported.isoformat()
    day_dir = base / day
    inventory = base / "inventory" / logical_day.isoformat()
    sites = by_id(inventory / "sites.jsonl")
    lines = [f"Butlr demo: exports of {exported:%A} {day} (each site's local day)", "Rows per site:"]
    lines += rows_per_site(day_dir, sites)
    lines += ["Peak occupancy per floor (highest hourly max):", *floor_peaks(day_dir, sites)]
    health_path = inventory / "device_health.json"
    if health_path.exists():
        lines += ["Devices:", *offline_devices(json.loads(health_path.read_text(encoding="utf-8")))]
    lines += [
        "Files:",
        f"  exports    {day_dir}/<site id>/{{{','.join(EXPORTS)}}}.jsonl",
        f"  summary    {day_dir / 'summary.json'} (with the weekly stats per floor)",
        f"  inventory  {inventory}/ (sites, buildings, floors, rooms, zones, tags, device health)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the export base path")
    parser.add_argument("--logical-date", required=True, help="logical date of the DAG runs (ISO 8601)")
    args = parser.parse_args(argv)
    print(summary(args.base, datetime.fromisoformat(args.logical_date).date()))


if __name__ == "__main__":
    main()
