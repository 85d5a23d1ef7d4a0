"""Stream rows to a file (local path or ObjectStoragePath URI) without a half-written file at the end.

Rows go to a hidden temporary file next to the destination, which is moved into place only after
the last row was written. A failure leaves the previous file (if any) untouched and removes the
temporary one. Re-running with the same destination overwrites it (idempotent exports).

Formats: JSON Lines, CSV (text cells that a spreadsheet would run as a formula are neutralised unless
``escape_formulas=False``) and Parquet (:mod:`.parquet`, needs the ``parquet`` extra); JSON Lines and
CSV optionally gzip- or zstd-compressed (:mod:`.compression`), streamed like the plain ones.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import io
import os
import re
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any, Protocol

import msgspec

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.reporting.output.compression import (
    SUFFIX_COMPRESSIONS,
    TEXT_COMPRESSIONS,
    compressed,
    normalise_compression,
    require_compression,
)
from airflow_provider_butlr.reporting.output.parquet import DEFAULT_PARQUET_CODEC, PARQUET_CODECS
from airflow_provider_butlr.reporting.rows import ROW_COLUMNS

OUTPUT_FORMATS = ("jsonl", "csv", "parquet")
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
_SUFFIXES_TEXT = "/".join(_SUFFIX_FORMATS)

# A spreadsheet runs a CSV cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Signed numbers and offsets such as "-5h" or "+5h30m" start with a sign but cannot hold a formula.
_SIGNED_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?(?:h(?:\d+m)?|m|s)?")

Writer = Callable[[Iterable[dict[str, Any]], IO[bytes]], int]


@dataclass(frozen=True)
class OutputSpec:
    """What a file holds: its format and its compression (text: ``none``/``gzip``/``zstd``;
    Parquet: the codec inside the file)."""

    format: str
    compression: str


def _suffixes(path: str) -> tuple[str, str]:
    """``"/x/day.csv.gz"`` -> ``(".csv", ".gz")``; ``"/x/day.csv"`` -> ``(".csv", "")``."""
    name = os.path.basename(path.split("?", 1)[0]).lower()
    stem, last = os.path.splitext(name)
    if last in SUFFIX_COMPRESSIONS:
        return os.path.splitext(stem)[1], last
    return last, ""


def output_spec_for(path: str, output_format: Any = None, compression: Any = None) -> OutputSpec:
    """The format (``output_format``, else the suffix: ``.jsonl``, ``.ndjson``, ``.csv``, ``.parquet``)
    and the compression (``compression``, else a ``.gz``/``.zst`` suffix after the format's, else none;
    Parquet: the codec, zstd by default)."""
    suffix, packed = _suffixes(path)
    if output_format is not None:
        fmt = str(output_format).strip().lower()
        if fmt not in OUTPUT_FORMATS:
            raise ButlrConfigurationError(
                f"output_format {output_format!r} is not supported; allowed: {', '.join(OUTPUT_FORMATS)}"
            )
    elif suffix in _SUFFIX_FORMATS:
        fmt = _SUFFIX_FORMATS[suffix]
    else:
        raise ButlrConfigurationError(
            f"output_path {path!r} has no {_SUFFIXES_TEXT} suffix (optionally followed by .gz or .zst); "
            f"set output_format to one of {', '.join(OUTPUT_FORMATS)}"
        )
    by_suffix = SUFFIX_COMPRESSIONS.get(packed)
    if fmt == "parquet":
        if by_suffix:
            raise ButlrConfigurationError(
                f"output_path {path!r}: a Parquet file compresses its own columns (output_compression picks "
                f"the codec, {DEFAULT_PARQUET_CODEC} by default); name it without {packed}"
            )
        codec = DEFAULT_PARQUET_CODEC if compression is None else compression
        return OutputSpec(fmt, normalise_compression(codec, PARQUET_CODECS))
    if compression is None:
        return OutputSpec(fmt, by_suffix or "none")
    chosen = normalise_compression(compression, ("none", *TEXT_COMPRESSIONS))
    if by_suffix and chosen != by_suffix:
        raise ButlrConfigurationError(
            f"output_compression {compression!r} contradicts the {packed} suffix of output_path {path!r}"
        )
    return OutputSpec(fmt, chosen)


def require_output(spec: OutputSpec) -> None:
    """Fail before any request when the output needs an optional dependency that is missing
    (Parquet: pyarrow, the ``parquet`` extra; zstd text: zstandard, the ``zstd`` extra)."""
    if spec.format == "parquet":
        from airflow_provider_butlr.reporting.output.parquet import require_pyarrow

        require_pyarrow()
    else:
        require_compression(spec.compression)


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
    def write(rows: Iterable[dict[str, Any]], handle: IO[bytes]) -> int:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        count = 0
        for row in rows:
            writer.writerow([_cell(row.get(c), escape_formulas) for c in columns])
            count += 1
        text.flush()
        text.detach()  # the caller closes the binary handle
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


def _parquet_writer(columns: Sequence[str], integer_values: bool, codec: str) -> Writer:
    from airflow_provider_butlr.reporting.output.parquet import write_parquet

    def write(rows: Iterable[dict[str, Any]], handle: IO[bytes]) -> int:
        return write_parquet(rows, handle, columns, integer_values=integer_values, compression=codec)

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


Destination = str | os.PathLike[str] | ObjectPath


def _shown(destination: Destination) -> str:
    return os.fspath(destination) if isinstance(destination, (str, os.PathLike)) else str(destination)


def write_rows(
    rows: Iterable[dict[str, Any]],
    destination: Destination,
    output_format: str | None = None,
    *,
    compression: str | None = None,
    columns: Sequence[str] = ROW_COLUMNS,
    escape_formulas: bool = True,
    integer_values: bool = False,
) -> int:
    """Write ``rows`` to ``destination`` atomically; return how many were written.

    ``destination`` is a local path, or an object-storage path such as Airflow's
    ``ObjectStoragePath("s3://bucket/key", conn_id=...)`` (the caller builds it: this module knows
    nothing of Airflow). The format and compression come from the arguments, else from the suffix
    (:func:`output_spec_for`). ``escape_formulas`` neutralises CSV text cells a spreadsheet would run
    as formulas; ``integer_values`` makes the Parquet ``value`` column int64 (every
    measurement/function of the export counts whole numbers). An OS error while writing names
    ``destination``, not the temporary file.
    """
    shown = _shown(destination)
    spec = output_spec_for(shown, output_format, compression)
    require_output(spec)
    write = _writer(spec, columns, escape_formulas, integer_values)
    source = _source(rows)
    try:
        if isinstance(destination, (str, os.PathLike)):
            return _write_local(source, Path(destination).expanduser(), write)
        return _write_object(source, destination, write)
    except _SourceError as failure:
        raise failure.error from failure.error.__cause__
    except OSError as err:
        raise _against_output(err, shown) from err


def _writer(spec: OutputSpec, columns: Sequence[str], escape_formulas: bool, integer_values: bool) -> Writer:
    if spec.format == "parquet":
        return _parquet_writer(columns, integer_values, spec.compression)
    inner: Writer = _csv_writer(columns, escape_formulas) if spec.format == "csv" else _jsonl_write

    def write(rows: Iterable[dict[str, Any]], handle: IO[bytes]) -> int:
        with compressed(handle, spec.compression) as stream:
            return inner(rows, stream)

    return write


class _SourceError(Exception):
    """Carries an OSError raised while *producing* rows (a network error), so that only the file's
    own errors are reported against ``output_path``."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _source(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    try:
        yield from rows
    except OSError as err:
        raise _SourceError(err) from err


def _against_output(err: OSError, shown: str) -> OSError:
    """The same kind of OSError (``PermissionError``, ...), about ``output_path``: the temporary file's
    name stays in the chained cause."""
    reason = err.strerror or str(err) or type(err).__name__
    text = f"cannot write output_path {shown!r}: {reason}"
    return OSError(err.errno, text) if err.errno else OSError(text)


def check_writable(destination: Destination) -> None:
    """Before the first request: ``destination`` is not a folder, and its folder takes a new file.

    A probe file (local) or object (object storage) is created next to it and removed, as the export
    will do with its temporary file. A ButlrConfigurationError names ``output_path`` and the cause.
    """
    shown = _shown(destination)
    if not isinstance(destination, (str, os.PathLike)):
        probe = destination.parent / f".{destination.name}.{uuid.uuid4().hex}.probe"
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            with probe.open("wb") as handle:
                handle.write(b"")
            probe.unlink(missing_ok=True)
        except Exception as err:
            raise ButlrConfigurationError(
                f"output_path {shown!r} cannot be written ({type(err).__name__}: {err}); check the path and "
                "the permissions of the output_conn_id connection"
            ) from err
        return
    final = Path(destination).expanduser()
    if final.is_dir():
        raise ButlrConfigurationError(
            f"output_path {shown!r} is a directory; name a file such as {shown.rstrip('/')}/export.jsonl"
        )
    missing = [folder for folder in (final.parent, *final.parent.parents) if not folder.exists()]
    try:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ButlrConfigurationError(
                f"output_path {shown!r} cannot be written: its folder {final.parent} cannot be created "
                f"({err.strerror or err}); choose a folder the Airflow worker can write to"
            ) from err
        local_probe = final.with_name(f".{final.name}.{uuid.uuid4().hex}.probe")
        try:
            local_probe.open("xb").close()
            local_probe.unlink()
        except OSError as err:
            raise ButlrConfigurationError(
                f"output_path {shown!r} cannot be written: its folder {final.parent} does not take new "
                f"files ({err.strerror or err}); choose a folder the Airflow worker can write to, or change "
                "its permissions"
            ) from err
    finally:
        for folder in missing:  # deepest first: a failed export leaves no empty folders behind
            with contextlib.suppress(OSError):
                folder.rmdir()


def _temporary_name(final_name: str) -> str:
    """``.<name>.<host>.<pid>.<random>.tmp``: whose it is, so a later attempt can tell a dead writer's."""
    host = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in socket.gethostname())[:64] or "host"
    return f".{final_name}.{host}.{os.getpid()}.{uuid.uuid4().hex}.tmp"


def _remove_dead_writers_files(final: Path) -> None:
    """Remove the temporary files of earlier attempts at ``final`` on this host whose process is
    gone (a worker killed with SIGKILL cannot clean up): a retry leaves one file, not two."""
    host = _temporary_name(final.name).split(".")[-4]
    for path in final.parent.glob(f".{glob.escape(final.name)}.{glob.escape(host)}.*.tmp"):
        pid_text = path.name[len(final.name) + len(host) + 3 :].split(".", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _process_alive(int(pid_text)):
            with contextlib.suppress(OSError):
                path.unlink()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: alive
        return True
    return True


def _write_local(rows: Iterable[dict[str, Any]], final: Path, write: Writer) -> int:
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_writers_files(final)
    temporary = final.with_name(_temporary_name(final.name))
    try:
        with temporary.open("wb") as handle:
            count = write(rows, handle)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the rename: a crash never leaves an empty file
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return count


def _write_object(rows: Iterable[dict[str, Any]], final: ObjectPath, write: Writer) -> int:
    temporary = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("wb") as handle:
            count = write(rows, handle)
        temporary.rename(final)
    except BaseException:
        with contextlib.suppress(Exception):
            temporary.unlink(missing_ok=True)
        raise
    return count
