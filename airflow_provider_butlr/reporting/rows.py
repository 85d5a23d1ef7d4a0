"""Reporting answers as rows with stable columns: the generic reader of every answer shape.

Shape A (flat list), B (nested, statistics leaves) and C (nested, row arrays) all become rows in
:data:`ROW_COLUMNS` order; the ``measurement``/``field`` inside API rows are internal names, so
rows keep the *requested* measurement name instead. :mod:`.typed_rows` is the fast path for flat
answers and gives the same rows.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from airflow_provider_butlr.common.jsondecode import MAX_JSON_DEPTH, JSONTooDeep
from airflow_provider_butlr.exceptions import ButlrDataError
from airflow_provider_butlr.reporting.catalogue import (
    ASSET_ID_COLUMN,
    MEASUREMENTS,
    STAT_KEYS,
    counts_whole_numbers,
    kind_of_id,
)
from airflow_provider_butlr.reporting.times import local_time, normalise_time
from airflow_provider_butlr.reporting.validation import validate_timezone

Row = dict[str, Any]

ROW_COLUMNS: tuple[str, ...] = (
    "time",
    "local_time",
    "measurement",
    "function",
    "field",
    "value",
    "asset_type",
    "asset_id",
    "building_id",
    "building_name",
    "floor_id",
    "floor_name",
    "room_id",
    "room_name",
    "zone_id",
    "zone_name",
    "tag_id",
    "sensor_id",
    "mac_address",
    "hive_id",
    "hive_serial",
    "floor_custom_id",
    "room_custom_id",
    "zone_custom_id",
    "timezone_offset",
    "data_incomplete",
    "null_percentage",
)


# API row key -> output column (everything else keeps its name; unknown keys are dropped).
API_TO_COLUMN = {"space_id": "floor_id", "space_name": "floor_name"}


_STRING_COLUMNS = tuple(
    c for c in ROW_COLUMNS if c not in ("value", "data_incomplete", "null_percentage", "time")
)


_EMPTY_ROW: dict[str, Any] = {
    column: "" if column in _STRING_COLUMNS or column == "time" else None for column in ROW_COLUMNS
}


_GROUP_KEY_COLUMN = {"space_id": "floor_id", "floor_id": "floor_id"}


def response_data(payload: Any) -> Any:
    """The ``data`` member of a reporting response (list or dict); anything else is a ButlrDataError."""
    if not isinstance(payload, Mapping) or "data" not in payload:
        raise ButlrDataError(
            f"reporting response has no 'data' member (got {type(payload).__name__}"
            + (f" with keys {sorted(payload)[:8]}" if isinstance(payload, Mapping) else "")
            + ")"
        )
    data = payload["data"]
    if data is None:
        return []
    if not isinstance(data, (list, Mapping)):
        raise ButlrDataError(f"reporting 'data' is a {type(data).__name__}, expected a list or an object")
    return data


def _new_row(measurement: str, function: str, asset_kind: str) -> Row:
    """An empty row with every column, in ``ROW_COLUMNS`` order (strings empty, numbers None)."""
    row: Row = dict(_EMPTY_ROW)
    row.update(measurement=measurement, function=function, asset_type=asset_kind[:-1])
    return row


def _number(value: Any) -> float | int | None:
    """A number from the API: ints as they are, floats finite; NaN, infinities (``"Infinity"``,
    ``"1e999"``) and what is no number become None, written empty (CSV) or null (JSON Lines, Parquet)."""
    kind = type(value)
    if kind is float:
        return value if value - value == 0 else None  # inf - inf and NaN - NaN are NaN
    if kind is int:
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value if isinstance(value, int) or math.isfinite(value) else None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


def whole_value(value: Any) -> float | int | None:
    """A count as an ``int`` when it is a whole number (``3.0`` -> ``3``); fractions stay as they are."""
    number = _number(value)
    if isinstance(number, float) and number.is_integer():
        return int(number)
    return number


def float_value(value: Any) -> float | None:
    number = _number(value)
    return None if number is None else float(number)  # OverflowError past float64: see check_numbers


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_FLOAT_MAX = int(sys.float_info.max)


def check_numbers(row: Row) -> Row:
    """``row`` if its numbers fit their typed columns (``value``: int64 for counts, float64 otherwise;
    ``null_percentage``: float64), else a :class:`ButlrDataError` naming the row and the field."""
    value, nulls = row["value"], row["null_percentage"]
    if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
        raise number_error(row, "value", value, "a 64-bit whole number (int64)")
    if type(nulls) is int and not -_FLOAT_MAX <= nulls <= _FLOAT_MAX:
        raise number_error(row, "null_percentage", nulls, "a 64-bit float")
    return row


def number_error(row: Mapping[str, Any], field: str, value: Any, kind: str) -> ButlrDataError:
    shown = str(value)
    shown = shown if len(shown) <= 24 else f"{shown[:12]}...({len(shown)} digits)"
    return ButlrDataError(
        f"reporting row of {row.get('asset_id') or '?'} at {row.get('time') or '?'} "
        f"({row.get('measurement')} {row.get('function')}): {field} {shown} does not fit {kind}"
    )


def value_converter(measurement: str, function: str) -> Callable[[Any], float | int | None]:
    """How a row's ``value`` is typed: whole counts as ints, everything else as floats."""
    return whole_value if counts_whole_numbers(measurement, function) else float_value


def _text(value: Any) -> str:
    return value if type(value) is str else "" if value is None else str(value)


def _as_is(value: Any) -> Any:
    return value


OWN_COLUMNS = frozenset(
    {"measurement", "function", "asset_type", "asset_id", "local_time"}
)  # never the API's


_TYPED_COLUMNS: dict[str, Callable[[Any], Any]] = {
    "time": normalise_time,
    "value": _as_is,  # typed per measurement and function in row_from_api
    "data_incomplete": _flag,
    "null_percentage": _number,
}


_DROP = ("", _text)  # the plan of an API key that has no column


_KEY_PLANS: dict[str, tuple[str, Callable[[Any], Any]]] = {}


def _key_plan(key: str) -> tuple[str, Callable[[Any], Any]]:
    """Where an API key goes and how its value is converted (cached: rows repeat the same keys)."""
    plan = _KEY_PLANS.get(key)
    if plan is None:
        column = API_TO_COLUMN.get(key, key)
        if column in OWN_COLUMNS or column not in _EMPTY_ROW:
            plan = _DROP  # the API's internal measurement names and unknown keys are never used
        else:
            plan = (column, _TYPED_COLUMNS.get(column, _text))
        if len(_KEY_PLANS) < 1024:
            _KEY_PLANS[key] = plan
    return plan


def as_zone(tz: str | ZoneInfo | None) -> ZoneInfo | None:
    """A ZoneInfo from an IANA name (validated) or a ZoneInfo; None stays None."""
    return tz if tz is None or isinstance(tz, ZoneInfo) else validate_timezone(tz)


def row_from_api(
    raw: Mapping[str, Any], measurement: str, function: str, zone: ZoneInfo | None = None
) -> Row:
    """One API row (shape A or a shape C leaf) as a row with the stable columns.

    ``value`` is an int for whole counts (see :func:`counts_whole_numbers`), else a float;
    ``local_time`` is ``time`` in ``zone`` (the query's window timezone), ``""`` without a zone.
    """
    asset_kind = MEASUREMENTS[measurement][1]
    row = _new_row(measurement, function, asset_kind)
    plans = _KEY_PLANS
    for key, value in raw.items():
        column, convert = plans.get(key) or _key_plan(key)
        if column:
            row[column] = convert(value)
    row["asset_id"] = row[ASSET_ID_COLUMN[asset_kind]]
    try:
        row["value"] = value_converter(measurement, function)(row["value"])  # the "value" plan keeps it
    except OverflowError:  # an integer past float64
        raise number_error(row, "value", row["value"], "a 64-bit float") from None
    check_numbers(row)
    if zone is not None and row["time"]:
        row["local_time"] = local_time(row["time"], zone)
    return row


def _looks_like_time(key: str) -> bool:
    return len(key) >= 13 and key[:4].isdigit() and key[4] == "-" and "T" in key


def _group_column(key: str, level_name: str | None) -> str:
    if level_name:
        return _GROUP_KEY_COLUMN.get(level_name, level_name)
    if _looks_like_time(key):
        return "time"
    kind = kind_of_id(key)
    if kind in ASSET_ID_COLUMN:
        return ASSET_ID_COLUMN[kind]
    if re.fullmatch(r"[0-9A-Za-z]{2}(-[0-9A-Za-z]{2}){5,7}", key):
        return "mac_address"
    return "field"


def _is_stats_leaf(node: Mapping[str, Any]) -> bool:
    return bool(node) and set(node) <= STAT_KEYS


def flatten_response(
    payload: Any,
    *,
    measurement: str,
    function: str,
    group_by_order: Sequence[str] | None = None,
    timezone: str | ZoneInfo | None = None,
) -> Iterator[Row]:
    """Rows from any response shape: A (flat list), B (nested, stats leaves), C (nested, row arrays).

    Shape B leaves give ``value = leaf[function]`` (the nine stats summarise the windowed values
    of the group); the group keys fill the matching columns (``room_id``, ``time``, ``field``...).
    ``timezone`` (the request's ``window.timezone``) fills ``local_time``.
    """
    data = response_data(payload)
    order = list(group_by_order or [])
    zone = as_zone(timezone)
    if isinstance(data, list):
        for raw in data:
            if not isinstance(raw, Mapping):
                raise ButlrDataError(f"reporting row is a {type(raw).__name__}, expected an object")
            yield row_from_api(raw, measurement, function, zone)
        return
    yield from _flatten_nested(data, measurement, function, order, zone)


def _flatten_nested(
    data: Mapping[str, Any],
    measurement: str,
    function: str,
    order: list[str],
    zone: ZoneInfo | None = None,
) -> Iterator[Row]:
    """Rows of a nested answer in document order, without recursion: each level's group keys fill
    their columns; nested deeper than ``MAX_JSON_DEPTH`` is a :class:`ButlrDataError`."""
    stack: list[tuple[Iterator[tuple[Any, Any]], dict[str, str]]] = [(iter(data.items()), {})]
    while stack:
        items, keys = stack[-1]
        depth = len(stack) - 1
        for key, child in items:
            column = _group_column(str(key), order[depth] if depth < len(order) else None)
            path = {**keys, column: normalise_time(key) if column == "time" else str(key)}
            if isinstance(child, list):  # shape C: arrays of raw rows
                for raw in child:
                    if not isinstance(raw, Mapping):
                        raise ButlrDataError(f"reporting row is a {type(raw).__name__}, expected an object")
                    yield row_from_api({**_path_to_api(path), **raw}, measurement, function, zone)
            elif isinstance(child, Mapping) and _is_stats_leaf(child):  # shape B
                stat = function if function in child else "mean"
                raw = {**_path_to_api(path), "value": child.get(stat)}
                yield row_from_api(raw, measurement, function, zone)
            elif isinstance(child, Mapping):
                if len(stack) >= MAX_JSON_DEPTH:
                    raise ButlrDataError(f"reporting 'data' is {JSONTooDeep()}")
                stack.append((iter(child.items()), path))
                break
            else:
                raise ButlrDataError(f"unexpected {type(child).__name__} under reporting group key {key!r}")
        else:
            stack.pop()


def _path_to_api(path: Mapping[str, str]) -> dict[str, str]:
    reverse = {v: k for k, v in API_TO_COLUMN.items()}
    return {reverse.get(column, column): value for column, value in path.items()}


row_sort_key: Callable[[Row], tuple[str, ...]] = itemgetter(
    "asset_id", "time", "field", "sensor_id", "mac_address", "room_id", "zone_id", "floor_id", "tag_id"
)
"""Deterministic order inside one unit: asset, time, then the per-row discriminators (all text
columns, ``""`` when empty, in every row :func:`row_from_api` makes)."""


def flatten_stats(payload: Any) -> dict[str, dict[str, float | int | None]]:
    """``{item_id: {measurement: number}}`` from a stats response."""
    data = payload.get("data") if isinstance(payload, Mapping) else None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ButlrDataError(f"stats 'data' is a {type(data).__name__}, expected an object keyed by item id")
    result: dict[str, dict[str, float | int | None]] = {}
    for item, values in data.items():
        if not isinstance(values, Mapping):
            raise ButlrDataError(f"stats entry for {item!r} is a {type(values).__name__}, expected an object")
        result[str(item)] = {str(k): _number(v) for k, v in values.items()}
    return result
