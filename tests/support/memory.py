"""Peak memory of one hostile call, measured as the process's resident set (issue 22).

``measure(driver, cases)`` starts one fresh interpreter (``python -m tests.support.memory``) that
imports the hooks once, then forks a process per case: it serves the case's body from a
:class:`~tests.support.hostile.HostileApi`, makes one warm-up call answered by a small body of the same
coding (imports, the login, the first connection), then the hostile call, and reports how far the
peak RSS (``ru_maxrss``) rose above the RSS just before it: what the call itself held at its worst,
answer, decoders, transport buffers and all. A fork per case keeps the high-water marks apart.

Bodies are built here without ever holding the inflated answer (:func:`bomb`).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    """One answer: its ``Content-Encoding`` header, the file holding its (encoded) body, the cap."""

    name: str
    header: str
    body: str  # a file path
    small: str  # a file path: the same coding around '{"data": []}' (the warm-up answer)
    cap: int
    stream_identity: int = 0  # > 0: serve that many spaces unencoded instead of ``body``


def _compressor(coding: str, lgwin: int) -> Any:
    if coding in ("gzip", "x-gzip"):
        return zlib.compressobj(9, zlib.DEFLATED, 31)
    if coding == "deflate":
        return zlib.compressobj(9, zlib.DEFLATED, 15)
    if coding == "deflate-raw":
        return zlib.compressobj(9, zlib.DEFLATED, -15)
    import brotli

    class _Brotli:
        def __init__(self) -> None:
            self._c = brotli.Compressor(quality=5, lgwin=lgwin)

        def compress(self, data: bytes) -> bytes:
            return bytes(self._c.process(data))

        def flush(self) -> bytes:
            return bytes(self._c.finish())

    return _Brotli()


def bomb(codings: Iterable[str], inflated: int, lgwin: int = 16) -> bytes:
    """``{"data": [<inflated spaces>]}`` encoded with ``codings`` (applied in order, as the header
    lists them), built 1 MiB at a time: the inflated answer never exists here."""
    stages = [_compressor(coding, lgwin) for coding in codings]

    def push(data: bytes, start: int = 0) -> bytes:
        for stage in stages[start:]:
            data = stage.compress(data)
        return data

    out = [push(b'{"data": [')]
    chunk = b" " * MiB
    for _ in range(inflated // MiB):
        out.append(push(chunk))
    out.append(push(b"]}"))
    for i, stage in enumerate(stages):  # each stage's tail goes through the stages after it
        out.append(push(stage.flush(), i + 1))
    return b"".join(out)


def header_of(codings: Iterable[str]) -> str:
    return ", ".join("deflate" if coding == "deflate-raw" else coding for coding in codings)


def measure(driver: str, cases: list[Case], timeout: float = 300.0) -> dict[str, dict[str, Any]]:
    """``{case name: {"growth": bytes, "outcome": text}}`` for ``driver`` ("sync" or "async")."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.memory", driver],
        input=json.dumps([asdict(case) for case in cases]),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            results[result.pop("name")] = result
    missing = [case.name for case in cases if case.name not in results]
    assert not missing, f"no measurement for {missing}: {done.stderr[-2000:]}"
    return results


# --- the child --------------------------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _one(driver: Callable[..., Any], case: Case) -> dict[str, Any]:
    from airflow_provider_butlr.exceptions import ButlrError
    from tests.support.hostile import HostileApi, Request

    body = b"" if case.stream_identity else Path(case.body).read_bytes()
    small = Path(case.small).read_bytes()
    spaces = b" " * MiB
    api = HostileApi()
    os.environ["AIRFLOW_CONN_BUTLR_DEFAULT"] = api.connection(max_response_bytes=case.cap, max_retries=0)
    headers = {"Content-Encoding": case.header} if case.header else {}

    def answer(data: bytes) -> Callable[[Request], None]:
        return lambda request: request.reply(200, data, headers=headers)

    api.script = answer(small)
    with contextlib.suppress(ButlrError):  # imports, the login, a connection (a refusal warms up too)
        driver("POST", "/api/v3/reporting", {"warm": "up"})
    if case.stream_identity:
        api.script = lambda request: request.stream(200, case.stream_identity, spaces)
    else:
        api.script = answer(body)
    before = _rss()
    try:
        driver("POST", "/api/v3/reporting", {"q": 1})
        outcome = "no error"
    except ButlrError as err:
        outcome = f"{type(err).__name__}: {err}"
    except Exception as err:
        outcome = f"escaped {type(err).__name__}: {err}"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    api.close()
    return {"name": case.name, "growth": peak - before, "outcome": outcome[:400]}


def _main() -> None:
    from tests.support.hostile import async_call, sync_call

    driver = sync_call if sys.argv[1] == "sync" else async_call
    for raw in json.loads(sys.stdin.read()):
        case = Case(**raw)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the case runs alone in its own process
            os.close(read)
            try:
                result = _one(driver, case)
            except BaseException as err:
                result = {"name": case.name, "growth": -1, "outcome": f"the probe failed: {err!r}"}
            try:
                os.write(write, json.dumps(result).encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            line = pipe.read()
        os.waitpid(pid, 0)
        print(line or json.dumps({"name": case.name, "growth": -1, "outcome": "the probe died"}), flush=True)


if __name__ == "__main__":
    _main()
