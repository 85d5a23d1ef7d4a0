"""Cluster policy of the scale check's deployment (on every component's ``PYTHONPATH``).

``butlr_daily_occupancy_export`` sets ``max_active_runs=1``; a team that runs several days of it at
once (issue 27: 10 exports triggered together) raises it for the deployment without editing the DAG:
``BUTLR_SCALE_MAX_ACTIVE_RUNS`` (set by ``scripts/scale_check.py``) becomes the DAG's limit. Task
retries come from ``[core] default_task_retries`` / ``default_task_retry_delay`` (environment).
"""

from __future__ import annotations

import os
from typing import Any

EXPORT_DAG = "butlr_daily_occupancy_export"


def dag_policy(dag: Any) -> None:
    runs = int(os.environ.get("BUTLR_SCALE_MAX_ACTIVE_RUNS", "0") or 0)
    if runs > 0 and dag.dag_id == EXPORT_DAG:
        dag.max_active_runs = runs
