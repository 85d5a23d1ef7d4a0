"""Stream rows to a file (local path or ObjectStoragePath URI) without a half-written file at the end.

Rows go to a hidden temporary file next to the destination, which is moved into place only after
the last row was written. A failure leaves the previous file (if any) untouched and removes the
temporary one. Re-running with the same destination overwrites it (idempotent exports).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.reporting import ROW_COLUMNS

OUTPUT_FORMATS = ("jsonl", "csv")
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


def output_format_for(path: str, output_format: str | None) -> str:
    """The explicit format, else the one the file suffix names (``.jsonl``, ``.ndjson``, ``.csv``)."""
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
            f"output_path {path!r} has no .jsonl/.ndjson/.csv suffix; set output_format to one of "
            f"{', '.join(OUTPUT_FORMATS)}"
        )
    return _SUFFIX_FORMATS[suffix]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _write(rows: Iterable[dict[str, Any]], handle: IO[str], fmt: str, columns: Sequence[str]) -> int:
    count = 0
    if fmt == "csv":
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
            count += 1
    else:
        encode = _jsonl_encoder()
        for row in rows:
            handle.write(encode(row))
            count += 1
    return count


def _jsonl_encoder() -> Any:
    """One row as a JSON line: msgspec's encoder when installed (about 5x faster), else json's."""
    try:
        import msgspec  # ships with Airflow 3.3; optional before
    except ImportError:
        encoder = json.JSONEncoder(separators=(",", ":"), default=str)
        return lambda row: encoder.encode(row) + "\n"
    fast = msgspec.json.Encoder(enc_hook=str)
    return lambda row: fast.encode(row).decode() + "\n"


def is_uri(destination: str) -> bool:
    return "://" in destination


def write_rows(
    rows: Iterable[dict[str, Any]],
    destination: str,
    output_format: str | None = None,
    *,
    columns: Sequence[str] = ROW_COLUMNS,
    conn_id: str | None = None,
) -> int:
    """Write ``rows`` to ``destination`` atomically; return how many were written.

    ``destination`` is a local path or a URI understood by Airflow's ``ObjectStoragePath``
    (``file://``, ``s3://``, ``gs://``... with ``conn_id`` for credentials).
    """
    fmt = output_format_for(destination, output_format)
    if not is_uri(destination):
        return _write_local(rows, Path(destination).expanduser(), fmt, columns)
    return _write_object(rows, destination, fmt, columns, conn_id)


def _write_local(rows: Iterable[dict[str, Any]], final: Path, fmt: str, columns: Sequence[str]) -> int:
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("w", encoding="utf-8", newline="") as handle:
            count = _write(rows, handle, fmt, columns)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the rename: a crash never leaves an empty file
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return count


def _write_object(
    rows: Iterable[dict[str, Any]], destination: str, fmt: str, columns: Sequence[str], conn_id: str | None
) -> int:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    final = ObjectStoragePath(destination, conn_id=conn_id)
    temporary = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("w", encoding="utf-8", newline="") as handle:
            count = _write(rows, handle, fmt, columns)
        temporary.rename(final)
    except BaseException:
        with contextlib.suppress(Exception):
            temporary.unlink(missing_ok=True)
        raise
    return count
