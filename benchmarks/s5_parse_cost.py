"""Scenario 5: DAG-parse cost of a DAG using the provider vs one importing only ``airflow.sdk``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, Line, ScenarioResult, Settings, Target, interleaved, median

KEY = "parse"
TITLE = "DAG-parse cost per parse (as the DAG processor parses)"
DAGS = REPO / "benchmarks" / "dags"
CONTENDERS = {
    "DAG importing only airflow.sdk": DAGS / "parse_baseline.py",
    "DAG importing the butlr operators and sensors": DAGS / "parse_butlr.py",
}
# The parse server mimics Airflow 3's DAG processor: the parent process has
# airflow.dag_processing.processor loaded and its heap frozen (gc.freeze(), so a child's garbage
# collections skip the manager's objects), pre-imports the file's ``airflow.*`` imports
# (`parsing_pre_import_modules`), then forks a child that executes the DAG file. Only
# ``airflow.``-prefixed modules are pre-imported, so a provider's own modules are imported again in
# every parse: that is the cost measured here.
PARSE_SERVER = """
import gc, importlib, importlib.util, json, os, sys, time
import airflow.dag_processing.processor
from airflow.utils.file import iter_airflow_imports
gc.freeze()  # as DagFileProcessorManager.before_run() does, "to prevent COW in forked process"
print("ready", flush=True)
for line in sys.stdin:
    path = line.strip()
    for name in iter_airflow_imports(path):
        importlib.import_module(name)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        before = set(sys.modules)
        started = time.perf_counter()
        try:
            spec = importlib.util.spec_from_file_location("bench_parsed_dag", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            answer = {"seconds": time.perf_counter() - started, "modules": sorted(set(sys.modules) - before)}
        except BaseException as err:
            answer = {"error": f"{type(err).__name__}: {err}"}
        os.write(write_end, json.dumps(answer).encode())
        os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 1 << 16):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    print(b"".join(chunks).decode(), flush=True)
"""


class ParseServer:
    """A long-lived process that forks one child per parse, as the DAG processor does."""

    def __enter__(self) -> ParseServer:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", PARSE_SERVER],
            cwd=REPO,
            env=os.environ.copy(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the parse server did not start (airflow.dag_processing failed to import)")
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)

    def parse(self, path: Path) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"{path}\n")
        self._proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self._proc.stdout.readline())
        if "error" in answer:
            raise RuntimeError(f"parsing {path.name} failed: {answer['error']}")
        return answer


def top_level_counts(modules: set[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in modules:
        top = name.split(".")[0]
        counts[top] = counts.get(top, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def _parser(server: ParseServer, path: Path) -> Callable[[int], dict[str, Any]]:
    return lambda _round: server.parse(path)


def run(settings: Settings, emu: Any = None) -> ScenarioResult:
    repeats = settings.pick(30, 5)
    with ParseServer() as server:
        for path in CONTENDERS.values():  # warm-up: .pyc files
            server.parse(path)
        runs = interleaved(repeats, {name: _parser(server, path) for name, path in CONTENDERS.items()})
    base_name, ours_name = list(CONTENDERS)
    result = ScenarioResult(
        key=KEY,
        title=TITLE,
        method=(
            f"{repeats} interleaved pairs of parses (after one warm-up each), each in a child forked from "
            "a process that has loaded what Airflow 3's DAG processor has loaded before it parses a file "
            "(airflow.dag_processing.processor plus the file's `airflow.*` imports, as "
            "`parsing_pre_import_modules` does); the child times executing the DAG file (3 tasks, same "
            "shape) and lists the modules it pulled in. Provider modules are never pre-imported by "
            "Airflow, so this cost is paid on every parse."
        ),
    )
    summary: dict[str, dict[str, Any]] = {}
    for name in CONTENDERS:
        rs = runs[name]
        summary[name] = {
            "parse_ms": 1000 * median([r["seconds"] for r in rs]),
            "modules": median([len(r["modules"]) for r in rs]),
        }
    extra_modules = set(runs[ours_name][0]["modules"]) - set(runs[base_name][0]["modules"])
    for name, figures in summary.items():
        result.lines.append(
            Line(
                name,
                f"parse {figures['parse_ms']:.1f} ms, {figures['modules']:.0f} modules imported by the file",
                figures,
            )
        )
    extra_ms = summary[ours_name]["parse_ms"] - summary[base_name]["parse_ms"]
    by_package = top_level_counts(extra_modules)
    result.ratios = {"extra_parse_ms": extra_ms, "extra_modules": float(len(extra_modules))}
    result.lines[-1].figures["extra_modules_by_package"] = by_package
    result.notes.append(f"modules the butlr DAG adds, by top-level package: {by_package}")
    result.targets.append(
        Target("extra DAG-parse time of the butlr DAG (median)", extra_ms, 50.0, "<=", " ms")
    )
    return result
