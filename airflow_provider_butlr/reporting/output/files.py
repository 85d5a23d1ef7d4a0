"""Stream rows to a file (local path or ObjectStoragePath URI) without a half-written file at the end.

Rows go to a hidden temporary file next to the destination, which is moved into place only after
the last row was written. A failure leaves the previous file (if any) untouched and removes the
temporary one. Re-running with the same destination overwrites it (idempotent exports).

Formats: JSON Lines, CSV (text cells that a spreadsheet would run as a formula are neutralised unless
``escape_formulas=False``) and Parquet (:mod:`.parquet`, needs the ``parquet`` extra).
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from pathlib import Path
from typing import IO, Any, Protocol

import msgspec

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.reporting.rows import ROW_COLUMNS

OUTPUT_FORMATS = ("jsonl", "csv", "parquet")
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}

# A spreadsheet runs a CSV cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Signed numbers and offsets such as "-5h" or "+5h30m" start with a sign but cannot hold a formula.
_SIGNED_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?(?:h(?:\d+m)?|m|s)?")

Writer = Callable[[Iterable[dict[str, Any]], IO[Any]], int]


def output_format_for(path: str, output_format: str | None) -> str:
    """The explicit format, else the one the file suffix names (``.jsonl``, ``.ndjson``, ``.csv``, ``.parquet``)."""
    if output_format is not None:
        fmt = str(output_format).strip().lower()
        if fmt not in OUTPUT_FORMATS:
            raise ButlrConfigurationError(
                f"output_format {output_format!r} is not supported; allowed: {', '.join(OUTPUT_FORMATS)}"
            )
        return fmt
    suffix = os.path.splitext(path.split("?", 1)[0])[1].lower()
    if suffix not in _SUFFIX_FORMATS:
        raise ButlrConfigurationError(
            f"output_path {path!r} has no .jsonl/.ndjson/.csv/.parquet suffix; set output_format to one of "
            f"{', '.join(OUTPUT_FORMATS)}"
        )
    return _SUFFIX_FORMATS[suffix]


def require_output_format(fmt: str) -> None:
    """Fail before any request when the format's optional dependency is missing (Parquet: pyarrow)."""
    if fmt == "parquet":
        from airflow_provider_butlr.reporting.output.parquet import require_pyarrow

        require_pyarrow()


def neutralise_formula(text: str) -> str:
    """``=HYPERLINK(...)`` -> ``'=HYPERLINK(...)``: a text cell a spreadsheet would run is prefixed
    with a single quote; signed numbers and offsets (``-5h``) are left as they are."""
    if text.startswith(FORMULA_PREFIXES) and not _SIGNED_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _cell(value: Any, escape_formulas: bool) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if escape_formulas and isinstance(value, str):
        return neutralise_formula(value)
    return value


def _csv_writer(columns: Sequence[str], escape_formulas: bool) -> Writer:
    def write(rows: Iterable[dict[str, Any]], handle: IO[str]) -> int:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        count = 0
        for row in rows:
            writer.writerow([_cell(row.get(c), escape_formulas) for c in columns])
            count += 1
        return count

    return write


JSONL_BATCH_ROWS = 2048  # rows encoded in one call: big enough to leave Python, small enough to stream


def _jsonl_write(rows: Iterable[dict[str, Any]], handle: IO[bytes]) -> int:
    encode_lines = _jsonl_encoder()
    count = 0
    iterator = iter(rows)
    while batch := list(islice(iterator, JSONL_BATCH_ROWS)):
        handle.write(encode_lines(batch))
        count += len(batch)
    return count


def _parquet_writer(columns: Sequence[str], integer_values: bool) -> Writer:
    from airflow_provider_butlr.reporting.output.parquet import write_parquet

    def write(rows: Iterable[dict[str, Any]], handle: IO[bytes]) -> int:
        return write_parquet(rows, handle, columns, integer_values=integer_values)

    return write


def _jsonl_encoder() -> Callable[[list[dict[str, Any]]], bytes]:
    """Rows as UTF-8 JSON lines (msgspec's ``encode_lines``: about 6x json's)."""
    return msgspec.json.Encoder(enc_hook=str).encode_lines


def is_uri(destination: str) -> bool:
    return "://" in destination


class ObjectPath(Protocol):
    """What the writer needs of an object-storage path (Airflow's ``ObjectStoragePath`` has it)."""

    name: str

    @property
    def parent(self) -> ObjectPath: ...

    def __truediv__(self, name: str) -> ObjectPath: ...

    def open(self, mode: str = "r", **kwargs: Any) -> Any: ...

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> Any: ...

    def rename(self, target: Any) -> Any: ...

    def unlink(self, missing_ok: bool = False) -> Any: ...


def write_rows(
    rows: Iterable[dict[str, Any]],
    destination: str | os.PathLike[str] | ObjectPath,
    output_format: str | None = None,
    *,
    columns: Sequence[str] = ROW_COLUMNS,
    escape_formulas: bool = True,
    integer_values: bool = False,
) -> int:
    """Write ``rows`` to ``destination`` atomically; return how many were written.

    ``destination`` is a local path, or an object-storage path such as Airflow's
    ``ObjectStoragePath("s3://bucket/key", conn_id=...)`` (the caller builds it: this module knows
    nothing of Airflow). ``escape_formulas`` neutralises CSV text cells a spreadsheet would run as
    formulas; ``integer_values`` makes the Parquet ``value`` column int64 (every measurement/function
    of the export counts whole numbers).
    """
    local = isinstance(destination, (str, os.PathLike))
    fmt = output_format_for(os.fspath(destination) if local else str(destination), output_format)  # type: ignore[arg-type]
    require_output_format(fmt)
    if fmt == "parquet":
        write, binary = _parquet_writer(columns, integer_values), True
    elif fmt == "csv":
        write, binary = _csv_writer(columns, escape_formulas), False
    else:
        write, binary = _jsonl_write, True
    if local:
        return _write_local(rows, Path(destination).expanduser(), write, binary)  # type: ignore[arg-type]
    return _write_object(rows, destination, write, binary)  # type: ignore[arg-type]


def _open_args(binary: bool) -> dict[str, Any]:
    return {"mode": "wb"} if binary else {"mode": "w", "encoding": "utf-8", "newline": ""}


def _write_local(rows: Iterable[dict[str, Any]], final: Path, write: Writer, binary: bool) -> int:
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open(**_open_args(binary)) as handle:
            count = write(rows, handle)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the rename: a crash never leaves an empty file
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return count


def _write_object(rows: Iterable[dict[str, Any]], final: ObjectPath, write: Writer, binary: bool) -> int:
    temporary = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open(**_open_args(binary)) as handle:
            count = write(rows, handle)
        temporary.rename(final)
    except BaseException:
        with contextlib.suppress(Exception):
            temporary.unlink(missing_ok=True)
        raise
    return count
