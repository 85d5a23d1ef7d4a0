"""Rows to Parquet through pyarrow (the optional extra ``airflow-provider-butlr[parquet]``).

Typed columns: ``time`` as ``timestamp[us, tz=UTC]``, ``local_time`` as ``timestamp[us]`` (the
wall-clock time of the window timezone, stored as Parquet's local timestamp, ``isAdjustedToUTC =
false``: the offset is ``local_time - time``), ``value`` as ``int64`` (whole counts) or ``float64``,
``data_incomplete`` as ``bool``, ``null_percentage`` as ``float64``, everything else as ``string``.
Columns are compressed with ``compression`` (zstd by default). Rows are buffered per column and
written one row group at a time, so memory stays flat whatever the size of the export.
pyarrow is imported only when a Parquet file is written (no cost when a DAG file is parsed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrDataError
from airflow_provider_butlr.reporting.rows import INT64_MAX, INT64_MIN, ROW_COLUMNS, number_error
from airflow_provider_butlr.reporting.times import parse_iso_utc

if TYPE_CHECKING:
    import pyarrow as pa

PARQUET_EXTRA = "airflow-provider-butlr[parquet]"
DEFAULT_ROW_GROUP_ROWS = 10_000
# The codecs every pyarrow wheel carries. zstd: smaller than snappy (pyarrow's own default) and as fast
# on export rows (docs/performance.md, the formats scenario of benchmarks/).
PARQUET_CODECS = ("zstd", "snappy", "gzip", "lz4", "brotli", "none")
DEFAULT_PARQUET_CODEC = "zstd"


def require_pyarrow() -> None:
    """A ButlrConfigurationError naming the extra when pyarrow is not installed."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError as err:
        raise ButlrConfigurationError(
            f"output_format 'parquet' needs pyarrow, which is not installed: pip install '{PARQUET_EXTRA}'"
        ) from err


@lru_cache(maxsize=8192)
def _utc(text: str) -> datetime | None:
    """A row's ``time`` (RFC3339 UTC text) as an aware datetime; ``""`` gives None."""
    if not text:
        return None
    try:
        return parse_iso_utc(text)
    except ValueError as err:
        raise ButlrDataError(f"row time {text!r} is not an RFC3339 time; cannot write it to Parquet") from err


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return _utc(str(value))


@lru_cache(maxsize=8192)
def _wall_clock(text: str) -> datetime | None:
    """``"2025-03-09T03:00:00-04:00"`` -> ``datetime(2025, 3, 9, 3, 0)``: the local time, offset dropped."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError as err:
        raise ButlrDataError(
            f"row local_time {text!r} is not an ISO 8601 time; cannot write it to Parquet"
        ) from err


def _local(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return None if value is None else value.replace(tzinfo=None)
    return _wall_clock(str(value))


def _int(value: Any) -> int | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is None or (isinstance(value, int) and INT64_MIN <= value <= INT64_MAX):
        return value
    if isinstance(value, int):
        raise OverflowError("does not fit int64")
    raise ButlrDataError(
        f"value {value!r} is not a whole number, but the Parquet value column is int64 because every "
        "measurement/function of this export counts whole numbers; write CSV or JSON Lines instead"
    )


def _float(value: Any) -> float | None:
    """float64, non-finite written as null (as CSV and JSON Lines write them: empty, null)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _flag(value: Any) -> bool | None:
    return None if value is None or value == "" else bool(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _column_types(integer_values: bool) -> dict[str, tuple[Any, Callable[[Any], Any]]]:
    import pyarrow as pa

    return {
        "time": (pa.timestamp("us", tz="UTC"), _time),
        "local_time": (pa.timestamp("us"), _local),
        "value": (pa.int64(), _int) if integer_values else (pa.float64(), _float),
        "data_incomplete": (pa.bool_(), _flag),
        "null_percentage": (pa.float64(), _float),
    }


def parquet_schema(columns: Sequence[str] = ROW_COLUMNS, *, integer_values: bool = False) -> pa.Schema:
    """The schema of an export file: typed columns (see the module docstring), strings otherwise."""
    import pyarrow as pa

    types = _column_types(integer_values)
    return pa.schema([(c, types[c][0] if c in types else pa.string()) for c in columns])


def write_parquet(
    rows: Iterable[dict[str, Any]],
    handle: IO[bytes],
    columns: Sequence[str] = ROW_COLUMNS,
    *,
    integer_values: bool = False,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    compression: str = DEFAULT_PARQUET_CODEC,
) -> int:
    """Write ``rows`` to the open binary ``handle``, ``row_group_rows`` per row group; return the count.

    ``integer_values`` makes ``value`` an int64 column (for exports whose every measurement/function
    counts whole numbers); a fractional value then fails the export instead of being truncated.
    ``compression`` is the codec of every column (one of ``PARQUET_CODECS``).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(row_group_rows, int) or isinstance(row_group_rows, bool) or row_group_rows < 1:
        raise ButlrConfigurationError(f"row_group_rows must be a positive integer, got {row_group_rows!r}")
    schema = parquet_schema(columns, integer_values=integer_values)
    types = _column_types(integer_values)
    converters = [types[c][1] if c in types else _text for c in columns]
    buffers: list[list[Any]] = [[] for _ in columns]
    count = 0

    def flush(writer: pq.ParquetWriter) -> None:
        arrays = [pa.array(values, type=f.type) for values, f in zip(buffers, schema, strict=True)]
        writer.write_batch(pa.record_batch(arrays, schema=schema), row_group_size=row_group_rows)
        for values in buffers:
            values.clear()

    if compression not in PARQUET_CODECS:
        raise ButlrConfigurationError(
            f"Parquet compression {compression!r} is not one of {', '.join(PARQUET_CODECS)}"
        )
    with pq.ParquetWriter(handle, schema, compression=compression) as writer:
        for row in rows:
            for values, column, convert in zip(buffers, columns, converters, strict=True):
                try:
                    values.append(convert(row.get(column)))
                except (OverflowError, ValueError, TypeError) as err:
                    raise number_error(row, column, row.get(column), f"its Parquet column ({err})") from None
            count += 1
            if count % row_group_rows == 0:
                flush(writer)
        if buffers and buffers[0]:
            flush(writer)
    return count
