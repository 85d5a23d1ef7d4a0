"""The deployment's PostgreSQL metadata database, read-only: the deployment check's
:class:`~deploycheck.airflow_state.MetadataDB` queries on psycopg, plus what the scale check counts
(task tries, the killed worker's tasks, the runs' end times)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from deploycheck.airflow_state import MetadataDB

OK_STATES = frozenset({"success", "skipped"})


@dataclass(frozen=True)
class TaskTry:
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    state: str | None
    pid: int | None = None

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.run_id, self.task_id, self.map_index, self.try_number)


class PostgresMetadataDB(MetadataDB):
    """``MetadataDB`` with its ``?`` placeholders sent as psycopg's ``%s``."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self.connect = connect

    @contextmanager
    def _connect(self) -> Iterator[Any]:  # type: ignore[override]  # psycopg, not sqlite3
        conn = self.connect()
        try:
            yield conn
        finally:
            conn.close()

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self._connect() as conn:
            return list(conn.execute(sql.replace("?", "%s"), args).fetchall())

    def dag_ids(self) -> list[str]:
        return [r[0] for r in self.rows("SELECT dag_id FROM dag WHERE NOT is_stale ORDER BY dag_id")]

    def run_states(self, dag_id: str) -> dict[str, str]:
        return {
            str(r): str(s) for r, s in self.rows("SELECT run_id, state FROM dag_run WHERE dag_id = ?", dag_id)
        }

    def run_end(self, dag_id: str, run_ids: list[str]) -> dt.datetime | None:
        found = self.rows(
            "SELECT MAX(end_date) FROM dag_run WHERE dag_id = ? AND run_id = ANY(?)", dag_id, run_ids
        )
        return found[0][0] if found else None

    def tries(self, dag_id: str, run_ids: list[str]) -> tuple[list[TaskTry], list[TaskTry]]:
        """(the current try of every task instance, every earlier try) of the runs."""
        current = [
            TaskTry(str(r), str(t), int(m), int(n), s, p)
            for r, t, m, n, s, p in self.rows(
                "SELECT run_id, task_id, map_index, try_number, state, pid FROM task_instance"
                " WHERE dag_id = ? AND run_id = ANY(?)",
                dag_id,
                run_ids,
            )
        ]
        earlier = [
            TaskTry(str(r), str(t), int(m), int(n), s, p)
            for r, t, m, n, s, p in self.rows(
                "SELECT run_id, task_id, map_index, try_number, state, pid FROM task_instance_history"
                " WHERE dag_id = ? AND run_id = ANY(?)",
                dag_id,
                run_ids,
            )
        ]
        return current, earlier

    def running(self, dag_id: str, run_ids: list[str]) -> list[TaskTry]:
        return [t for t in self.tries(dag_id, run_ids)[0] if t.state == "running"]
