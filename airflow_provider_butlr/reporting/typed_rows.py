"""Flat reporting rows decoded straight into the export's columns (msgspec typed decoding).

The generic reader (:func:`.rows.flatten_response`) builds a dict per API row and then an
output row per dict. For the common answer, a flat list whose text fields are strings, msgspec can
decode every API row into a struct laid out in :data:`ROW_COLUMNS` order, whose defaults already
hold the measurement and function; the output row is that struct as a dict, plus ``asset_id``,
``local_time`` and the canonical ``time``.
Anything the struct does not accept (nested data, a number where text was expected, a ``floor_id``
key beside ``space_id``) makes :func:`decode_flat_rows` answer None, and the generic reader takes
over. Both give the same rows (``tests/unit/reporting/test_typed_rows.py`` compares them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from airflow_provider_butlr.reporting.catalogue import ASSET_ID_COLUMN, MEASUREMENTS, counts_whole_numbers
from airflow_provider_butlr.reporting.rows import (
    API_TO_COLUMN,
    OWN_COLUMNS,
    ROW_COLUMNS,
    Row,
    check_numbers,
    whole_value,
)
from airflow_provider_butlr.reporting.times import local_time, normalise_time_text

_NEVER = "~butlr-provider~"  # a prefix for the provider's own columns: never read from the API
_NUMBERS: dict[str, Any] = {"data_incomplete": bool | None, "null_percentage": float | int | None}


@dataclass(frozen=True)
class _Reader:
    decoder: Any  # msgspec.json.Decoder of list[ApiRow]
    asdict: Callable[[Any], dict[str, Any]]
    invalid: type[Exception]
    asset_column: str
    convert: Callable[[Any], Any] | None  # None: msgspec already types ``value`` (floats)
    traps: tuple[str, ...]  # struct fields that are no column


@lru_cache(maxsize=64)
def _reader(measurement: str, function: str) -> _Reader:
    """The typed reader of one measurement and function (their columns are the struct's defaults)."""
    asset_kind = MEASUREMENTS[measurement][1]
    whole = counts_whole_numbers(measurement, function)
    own = {"measurement": measurement, "function": function, "asset_type": asset_kind[:-1]}
    api_names = {column: api for api, column in API_TO_COLUMN.items()}
    fields: list[tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    for column in ROW_COLUMNS:
        if column in OWN_COLUMNS:
            # renamed away from the API's keys (real rows carry "measurement") and typed UNSET,
            # which no JSON value decodes as: they keep their default until set by the caller
            fields.append((column, msgspec.UnsetType, own.get(column, "")))
            rename[column] = _NEVER + column
        elif column == "value":
            fields.append((column, float | int | None if whole else float | None, None))
        else:
            fields.append((column, _NUMBERS.get(column, str), None if column in _NUMBERS else ""))
            rename[column] = api_names.get(column, column)
    # A column read from another API key (floor_id <- space_id) must not also arrive under its own
    # name: the generic reader lets the later key win, which a struct cannot express.
    traps = [f"trap_{column}" for column in api_names]
    for trap, column in zip(traps, api_names, strict=True):
        fields.append((trap, msgspec.UnsetType, msgspec.UNSET))
        rename[trap] = column
    api_row = msgspec.defstruct("ApiRow", fields, rename=rename, gc=False)
    return _Reader(
        decoder=msgspec.json.Decoder(list[api_row]),  # type: ignore[valid-type]
        asdict=msgspec.structs.asdict,
        invalid=msgspec.ValidationError,
        asset_column=ASSET_ID_COLUMN[asset_kind],
        convert=whole_value if whole else None,
        traps=tuple(traps),
    )


def decode_flat_rows(raw: Any, measurement: str, function: str, zone: ZoneInfo | None) -> list[Row] | None:
    """The rows of a flat ``data`` array given as raw JSON; None when the typed reader does not apply."""
    reader = _reader(measurement, function)
    try:
        api_rows = reader.decoder.decode(raw)
    except (reader.invalid, RecursionError):
        return None
    asdict, asset_column, convert, traps = reader.asdict, reader.asset_column, reader.convert, reader.traps
    normalise = normalise_time_text  # cached: the same window times repeat for every asset
    rows: list[Row] = []
    append = rows.append
    for api_row in api_rows:
        row = asdict(api_row)
        for trap in traps:
            del row[trap]
        if convert is not None:
            row["value"] = convert(row["value"])
        row["asset_id"] = row[asset_column]
        utc = row["time"] = normalise(row["time"])
        if zone is not None and utc:
            row["local_time"] = local_time(utc, zone)
        append(check_numbers(row))
    return rows
