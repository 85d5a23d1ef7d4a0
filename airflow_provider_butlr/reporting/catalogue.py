"""The Butlr reporting catalogue: asset kinds, measurements, functions, and the paths they go to.

One table per fact; everything else (validation, bodies, rows, conditions) reads these.
"""

from __future__ import annotations

REPORTING_PATH = "/api/v3/reporting"
STATS_PATH = "/api/v4/reporting/stats"

# User-facing asset kind -> (reporting filter key, accepted id prefixes).
ASSET_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "floors": ("spaces", ("space_",)),
    "rooms": ("rooms", ("room_",)),
    "zones": ("zones", ("zone_",)),
    "tags": ("tags", ("tag_",)),
    "buildings": ("buildings", ("building_",)),
    "sensors": ("sensors", ("sensor_",)),
    "hives": ("hives", ("hive_",)),
}


# Kinds that are never sent to the reporting API but resolved through the topology.
CONTAINER_PREFIXES: dict[str, tuple[str, ...]] = {
    "sites": ("site_",),
    **{k: v[1] for k, v in ASSET_KINDS.items()},
}


PREFIX_KIND = {prefix: kind for kind, prefixes in CONTAINER_PREFIXES.items() for prefix in prefixes}


# Requested measurement -> (asset kinds accepted as a filter, natural kind first; the row's asset kind).
MEASUREMENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "floor_occupancy": (("floors", "tags"), "floors"),
    "room_occupancy": (("rooms", "tags"), "rooms"),
    "zone_occupancy": (("zones", "tags"), "zones"),
    "tag_occupancy": (("tags",), "tags"),
    "traffic_floor_occupancy": (("floors",), "floors"),
    "traffic_room_occupancy": (("rooms",), "rooms"),
    "traffic": (("floors", "rooms", "sensors", "hives", "buildings"), "sensors"),
    "floor_presence_time_secs": (("floors",), "floors"),
    "room_presence_time_secs": (("rooms",), "rooms"),
    "zone_presence_time_secs": (("zones",), "zones"),
}


# Measurements that count people or passages, and the window functions that keep such counts whole:
# their values are ints in every output format (an API answer of 3.0 becomes 3); mean/median and the
# presence seconds stay floats.
WHOLE_NUMBER_MEASUREMENTS = frozenset(
    {
        "floor_occupancy",
        "room_occupancy",
        "zone_occupancy",
        "tag_occupancy",
        "traffic_floor_occupancy",
        "traffic_room_occupancy",
        "traffic",
    }
)


WHOLE_NUMBER_FUNCTIONS = frozenset({"max", "min", "sum", "first", "last"})


CALIBRATED_MEASUREMENTS = ("traffic_floor_occupancy", "traffic_room_occupancy")


CALIBRATED_VALUES = ("true", "raw", "false")


WINDOW_FUNCTIONS = ("mean", "max", "min", "sum", "median", "first", "last")


STAT_KEYS = frozenset({"sum", "min", "max", "count", "mean", "median", "stddev", "first", "last"})


STATS_MEASUREMENTS = tuple(
    f"occupancy_{metric}_{source}"
    for metric in ("avg", "median", "used_avg", "used_median")
    for source in ("presence", "traffic")
)


DAYS_OF_WEEK = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


ASSET_ID_COLUMN = {
    "floors": "floor_id",
    "rooms": "room_id",
    "zones": "zone_id",
    "tags": "tag_id",
    "sensors": "sensor_id",
    "hives": "hive_id",
    "buildings": "building_id",
}


def counts_whole_numbers(measurement: str, function: str) -> bool:
    """True when ``function`` over ``measurement`` gives whole numbers (``max`` of occupancy, ``sum`` of traffic)."""
    return measurement in WHOLE_NUMBER_MEASUREMENTS and function in WHOLE_NUMBER_FUNCTIONS


def kind_of_id(asset_id: str) -> str | None:
    """The asset kind an id's prefix names (``room_x`` -> ``rooms``), or None."""
    for prefix, kind in PREFIX_KIND.items():
        if asset_id.startswith(prefix):
            return kind
    return None


# Occupancy per asset kind: (key of the asset id in reporting rows, presence measurement, traffic
# measurement). Zones report presence only. Read by the occupancy sensor, the event trigger and the
# data-complete sensor.
OCCUPANCY_MEASUREMENTS: dict[str, tuple[str, str, str | None]] = {
    "floors": ("space_id", "floor_occupancy", "traffic_floor_occupancy"),
    "rooms": ("room_id", "room_occupancy", "traffic_room_occupancy"),
    "zones": ("zone_id", "zone_occupancy", None),
}
OCCUPANCY_SOURCES = ("auto", "presence", "traffic")


def occupancy_measurements(kind: str, source: str) -> list[str]:
    """The measurements ``source`` reads for ``kind`` (``auto``: presence and traffic, the higher wins)."""
    _, presence, traffic = OCCUPANCY_MEASUREMENTS[kind]
    sources: dict[str, list[str | None]] = {
        "presence": [presence],
        "traffic": [traffic],
        "auto": [presence, traffic],
    }
    chosen = sources[source]
    return [m for m in chosen if m]
