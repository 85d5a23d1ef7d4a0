"""Why a task try failed, from its task log: the exception type Airflow's task runner logged.

Task logs are JSON lines under ``<AIRFLOW_HOME>/logs/dag_id=.../run_id=.../task_id=.../
[map_index=N/]attempt=K.log`` on the worker that ran the try (each worker has its own home here).
A try whose process was killed (its worker died) logs no exception: Airflow fails it later for its
missing heartbeats.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

NO_EXCEPTION = "no exception logged (process killed or lost)"
NO_LOG = "no task log found"


def attempt_log(home: Path, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> Path:
    folder = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:
        folder /= f"map_index={map_index}"
    return folder / f"attempt={try_number}.log"


def failure_cause(lines: Iterable[str]) -> str:
    """The exception type of the last ``Task failed with exception`` record, else :data:`NO_EXCEPTION`."""
    cause = NO_EXCEPTION
    for line in lines:
        if '"error_detail"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        details = record.get("error_detail") if isinstance(record, dict) else None
        if isinstance(details, list) and details and isinstance(details[0], dict):
            cause = str(details[0].get("exc_type") or cause)
    return cause


def causes(homes: Iterable[Path], dag_id: str, tries: Iterable[tuple[str, str, int, int]]) -> Counter[str]:
    """How many of ``tries`` (run id, task id, map index, try number) failed for each cause."""
    homes = list(homes)
    found: Counter[str] = Counter()
    for run_id, task_id, map_index, try_number in tries:
        logs = [attempt_log(h, dag_id, run_id, task_id, map_index, try_number) for h in homes]
        existing = [p for p in logs if p.is_file()]
        if not existing:
            found[NO_LOG] += 1
            continue
        found[failure_cause(existing[0].read_text(errors="replace").splitlines())] += 1
    return found
