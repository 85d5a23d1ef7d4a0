"""Files people store: compressed outputs, a target checked before the first request, OS errors
reported against ``output_path``, and the export's log line (issue 25).

Every export runs ButlrReportingOperator against the emulator over HTTP and reads the file back.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.operators.butlr import ButlrReportingOperator
from airflow_provider_butlr.reporting.output.files import write_rows
from airflow_provider_butlr.reporting.rows import ROW_COLUMNS
from tests.integration.reporting.test_output_formats import export  # 10 hours of 3 rooms to a path


def unpacked(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


# --- compressed outputs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "compression"),
    [
        ("day.csv.gz", "gzip"),
        ("day.jsonl.gz", "gzip"),
        ("day.ndjson.gz", "gzip"),
        ("day.csv.zst", "zstd"),
        ("day.jsonl.zst", "zstd"),
    ],
)
def test_compressed_exports_by_suffix_hold_the_plain_files_bytes(
    butlr_conn: Any, tmp_path: Path, name: str, compression: str
) -> None:
    if compression == "zstd":
        pytest.importorskip("zstandard")  # in the test extra: CI always runs these
    plain_name = name.rsplit(".", 1)[0]
    plain = export(butlr_conn, tmp_path / "plain" / plain_name)
    packed = export(butlr_conn, tmp_path / name)
    assert (packed["compression"], plain["compression"]) == (compression, "none")
    assert packed["rows"] == plain["rows"] == 30
    raw = (tmp_path / "plain" / plain_name).read_bytes()
    assert (tmp_path / name).read_bytes() != raw and unpacked(tmp_path / name) == raw
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == [name]  # no temporary file left


def test_output_compression_argument_compresses_a_plain_name(butlr_conn: Any, tmp_path: Path) -> None:
    summary = export(butlr_conn, tmp_path / "day.jsonl", output_compression="gzip")
    rows = [json.loads(line) for line in gzip.decompress((tmp_path / "day.jsonl").read_bytes()).splitlines()]
    assert summary["compression"] == "gzip" and len(rows) == summary["rows"] == 30


def test_gzip_exports_are_reproducible(butlr_conn: Any, tmp_path: Path) -> None:
    """No temporary file name and no time stamp in the gzip header: a re-run writes the same bytes."""
    export(butlr_conn, tmp_path / "a.csv.gz")
    first = (tmp_path / "a.csv.gz").read_bytes()
    export(butlr_conn, tmp_path / "a.csv.gz")
    assert (tmp_path / "a.csv.gz").read_bytes() == first
    assert b".tmp" not in first[:64] and first[4:8] == b"\0\0\0\0"  # FLG/MTIME: no name, no time


def test_compressed_export_to_an_object_storage_uri(butlr_conn: Any, tmp_path: Path) -> None:
    target = tmp_path / "bucket" / "day.jsonl.gz"
    summary = export(butlr_conn, "/unused", output_path=target.as_uri())
    lines = gzip.decompress(target.read_bytes()).splitlines()
    assert summary["path"] == target.as_uri() and len(lines) == summary["rows"] == 30
    assert [p.name for p in target.parent.iterdir()] == ["day.jsonl.gz"]


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ({"output_path": "/data/x.csv.gz", "output_compression": "zstd"}, "contradicts the .gz suffix"),
        ({"output_path": "/data/x.jsonl", "output_compression": "lz4"}, "allowed: none, gzip, zstd"),
        ({"output_path": "/data/x.gz"}, r"no \.jsonl/\.ndjson/\.csv/\.parquet suffix"),
    ],
)
def test_compression_mistakes_fail_when_the_dag_is_parsed(output: dict[str, str], message: str) -> None:
    with pytest.raises(ButlrConfigurationError, match=message):
        ButlrReportingOperator(task_id="t", measurements="room_occupancy", rooms=["room_1"], **output)


PYARROW = ("pyarrow", "pyarrow.parquet")
ZSTD = ("zstandard", "compression", "compression.zstd")


@pytest.mark.parametrize(
    ("missing", "extra", "output"),
    [
        (PYARROW, "parquet", {"output_path": "/data/day.parquet"}),
        (PYARROW, "parquet", {"output_path": "/data/{{ ds }}.parquet"}),  # a template with a literal suffix
        (PYARROW, "parquet", {"output_path": "/data/{{ ds }}", "output_format": "parquet"}),
        (ZSTD, "zstd", {"output_path": "/data/day.csv.zst"}),
        (ZSTD, "zstd", {"output_path": "/data/{{ ds }}.jsonl.zst"}),
        (ZSTD, "zstd", {"output_path": "/data/{{ ds }}.jsonl", "output_compression": "zstd"}),
    ],
)
def test_a_missing_extra_fails_when_the_dag_is_parsed_naming_it(
    butlr_conn: Any,
    monkeypatch: pytest.MonkeyPatch,
    missing: tuple[str, ...],
    extra: str,
    output: dict[str, str],
) -> None:
    for module in missing:
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(
        ButlrConfigurationError, match=rf"^t: .*pip install 'airflow-provider-butlr\[{extra}\]'"
    ):
        ButlrReportingOperator(task_id="t", measurements="room_occupancy", rooms=["room_1"], **output)
    assert butlr_conn.counters.total == 0


# --- the target is checked before the first request -----------------------------------------------


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A folder that refuses new files, for root too: mode 0500, and immutable (chattr +i) if needed."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    immutable = False
    if os.access(folder, os.W_OK):  # root ignores the mode
        immutable = (
            subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode == 0
        )
    try:
        (folder / ".probe").touch()
    except OSError:
        pass
    else:
        pytest.skip("no way to make a folder unwritable here (root without chattr)")
    try:
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=False)
        folder.chmod(0o700)


def test_an_unwritable_folder_fails_before_any_request_naming_output_path(
    butlr_conn: Any, unwritable: Path
) -> None:
    out = unwritable / "day.csv"
    with pytest.raises(ButlrConfigurationError) as raised:
        export(butlr_conn, out)
    message = str(raised.value)
    assert message.startswith(f"t: output_path '{out}' cannot be written: its folder {unwritable}")
    assert ".tmp" not in message and ".probe" not in message
    assert butlr_conn.counters.total == 0  # not even the login
    assert list(unwritable.iterdir()) == []


def test_a_folder_that_cannot_be_created_fails_before_any_request(butlr_conn: Any, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / "a-file" / "day.jsonl.gz"
    with pytest.raises(
        ButlrConfigurationError,
        match=r"output_path '.*/a-file/day\.jsonl\.gz' cannot be written: its folder .* cannot be created",
    ):
        export(butlr_conn, out)
    assert butlr_conn.counters.total == 0


def test_an_output_path_that_is_a_folder_fails_before_any_request(butlr_conn: Any, tmp_path: Path) -> None:
    with pytest.raises(ButlrConfigurationError, match="is a directory; name a file such as"):
        export(butlr_conn, tmp_path, output_format="jsonl")
    assert butlr_conn.counters.total == 0


def test_an_unwritable_object_storage_target_fails_before_any_request(
    butlr_conn: Any, unwritable: Path
) -> None:
    uri = (unwritable / "day.parquet").as_uri()
    # Airflow 3.2+ builds an object-storage path for file:// (the message points to output_conn_id);
    # 3.0/3.1's ObjectStoragePath is an os.PathLike there and gets the local folder's message
    with pytest.raises(ButlrConfigurationError, match=rf"output_path '{uri}' cannot be written[ :(]"):
        export(butlr_conn, "/unused", output_path=uri)
    assert butlr_conn.counters.total == 0


def test_an_os_error_while_writing_names_output_path_not_the_temporary_file(unwritable: Path) -> None:
    """``write_rows`` alone (no check first): the error the issue saw, now about ``output_path``."""
    out = unwritable / "out.csv"
    with pytest.raises(PermissionError) as raised:
        write_rows([{"time": "2025-11-03T13:00:00Z", "value": 1}], str(out))
    assert str(raised.value).startswith(f"[Errno {raised.value.errno}] cannot write output_path '{out}': ")
    assert ".tmp" not in str(raised.value)
    assert ".out.csv." in str(raised.value.__cause__)  # the temporary file stays in the chained cause


def test_a_full_disk_mid_export_names_output_path_and_leaves_no_file(butlr_conn: Any, tmp_path: Path) -> None:
    """A real write error after the check passed: a 64 KiB file-size limit (RLIMIT_FSIZE) in a task process."""
    out = tmp_path / "big.jsonl"
    script = textwrap.dedent(
        f"""
        import resource, signal
        from airflow_provider_butlr.operators.butlr import ButlrReportingOperator
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY))
        rooms = {list(butlr_conn.org.rooms_by_id)[:10]!r}
        try:
            ButlrReportingOperator(task_id="t", measurements="room_occupancy", rooms=rooms, timezone="UTC",
                start="2025-11-03T00:00:00Z", stop="2025-11-04T00:00:00Z", window_every="15m",
                output_path={str(out)!r}).execute({{}})
        except OSError as err:
            print(type(err).__name__, err)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.splitlines()[-1].startswith(
        f"OSError [Errno 27] cannot write output_path '{out}': File too large"
    ), done.stdout + done.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary one


# --- the log line ------------------------------------------------------------------------------------


def logged_export_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The operator's "Exported ..." message (Airflow 3's task logger writes through structlog)."""
    out = capsys.readouterr()
    lines = [text for text in (out.out + out.err).splitlines() if "Exported " in text]
    # one message (Airflow 3.0's console logging may print it twice, once as the record's args tuple)
    messages = {
        line[line.index("Exported ") :].split(" [airflow.")[0].rstrip().rstrip("'\",)") for line in lines
    }
    assert len(messages) == 1, messages
    (message,) = messages
    return message


def test_floor_traffic_log_counts_assets_by_kind_and_says_rows_are_per_sensor(
    butlr_conn: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emu = butlr_conn
    floor = next(iter(emu.org.floors_by_id))
    summary = export(
        emu,
        tmp_path / "traffic.csv",
        measurements="traffic",
        rooms=None,
        floors=[floor],
        window_function="sum",
    )
    line = logged_export_line(capsys)
    assert line.startswith(
        f"Exported {summary['rows']:,} rows for 1 asset (1 floor) to {tmp_path / 'traffic.csv'} ("
    )
    assert (
        "per sensor (sensor_id) and field (in/out)" in line
        and "sum value by floor_id, time and field" in line
    )
    rows = (tmp_path / "traffic.csv").read_text().splitlines()[1:]
    assert len({r.split(",")[ROW_SENSOR] for r in rows}) > 1  # what the line warns about: several sensors


ROW_SENSOR = ROW_COLUMNS.index("sensor_id")


def test_room_export_log_counts_rooms(
    butlr_conn: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export(butlr_conn, tmp_path / "day.csv")
    assert (
        logged_export_line(capsys)
        == f"Exported 30 rows for 3 assets (3 rooms) to {tmp_path / 'day.csv'} (1 request)."
    )


def test_the_check_before_the_first_request_leaves_no_folder_behind(tmp_path: Path) -> None:
    from airflow_provider_butlr.reporting.output.files import check_writable

    check_writable(str(tmp_path / "a" / "b" / "day.csv.gz"))  # creates a/b to probe, then removes them
    assert list(tmp_path.iterdir()) == []
