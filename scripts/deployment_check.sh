#!/usr/bin/env bash
# The deployment check (issue 16; docs/deployment-check.md): the example DAGs in a real Airflow
# deployment (emulator, api-server, scheduler, dag-processor, triggerer as separate processes,
# LocalExecutor on a throw-away SQLite AIRFLOW_HOME), a triggerer SIGKILL while the sensors are
# deferred, then logins, secret-scan and error-line assertions. Exits non-zero on any failure.
#   ./scripts/deployment_check.sh [--work-dir DIR] [--keep]
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$REPO"
# exec: SIGINT/SIGTERM reach the orchestrator, which stops every component by process group.
exec python "$REPO/scripts/deployment_check.py" "$@"
