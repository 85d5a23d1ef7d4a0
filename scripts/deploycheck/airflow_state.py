"""The deployment's state: the REST API (unpause, trigger) and the SQLite metadata DB (read-only)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests


class AirflowAPI:
    """``/api/v2`` of the api-server (simple auth manager with all-admins: no login needed)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()

    def up(self) -> bool:
        try:
            return self.session.get(f"{self.base_url}/api/v2/version", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base_url}/api/v2{path}", timeout=30, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(
                f"{method} /api/v2{path} answered {response.status_code}: {response.text[:500]}"
            )
        return response.json()

    def unpause(self, dag_id: str) -> None:
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": True})

    def trigger(self, dag_id: str, logical_date: str | None, run_id: str | None = None) -> str:
        body: dict[str, Any] = {"logical_date": logical_date}
        if run_id:
            body["dag_run_id"] = run_id
        return str(self._call("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])


class MetadataDB:
    """Read-only queries on the deployment's SQLite database (retried while a writer holds it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        try:
            yield conn
        finally:
            conn.close()

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self._connect() as conn:
            return list(conn.execute(sql, args).fetchall())

    def return_value(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """A task's ``return_value`` XCom (JSON-decoded), or None when it has none."""
        found = self.rows(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = 'return_value'",
            dag_id,
            run_id,
            task_id,
        )
        return json.loads(found[0][0]) if found and found[0][0] is not None else None

    def dag_ids(self) -> list[str]:
        return [r[0] for r in self.rows("SELECT dag_id FROM dag WHERE is_stale = 0 ORDER BY dag_id")]

    def dag_files(self) -> list[str]:
        """The DAG files parsed so far, relative to the DAGs folder."""
        return [str(r[0]) for r in self.rows("SELECT DISTINCT relative_fileloc FROM dag WHERE is_stale = 0")]

    def import_errors(self) -> list[tuple[str, str]]:
        return [(str(r[0]), str(r[1])) for r in self.rows("SELECT filename, stacktrace FROM import_error")]

    def latest_job_id(self, job_type: str) -> int | None:
        """The id of the newest job of ``job_type`` (e.g. ``TriggererJob``)."""
        found = self.rows("SELECT MAX(id) FROM job WHERE job_type = ?", job_type)
        return int(found[0][0]) if found and found[0][0] is not None else None

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        found = self.rows("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return str(found[0][0]) if found else None

    def runs(self) -> list[tuple[str, str, str]]:
        """Every DAG run: (dag_id, run_id, state)."""
        return [
            (str(d), str(r), str(s))
            for d, r, s in self.rows("SELECT dag_id, run_id, state FROM dag_run ORDER BY id")
        ]

    def task_states(self, dag_id: str, run_id: str, task_id: str | None = None) -> dict[str, str | None]:
        """``{"task_id[map_index]": state}`` of a run (optionally of one task)."""
        sql = "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? AND run_id = ?"
        args: list[Any] = [dag_id, run_id]
        if task_id is not None:
            sql += " AND task_id = ?"
            args.append(task_id)
        return {
            f"{t}[{m}]" if m >= 0 else str(t): (str(s) if s is not None else None)
            for t, m, s in self.rows(sql, *args)
        }
