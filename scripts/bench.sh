#!/usr/bin/env bash
# The benchmarks: installs the `bench` extra (apache-airflow-providers-http, pinned by scripts/locks)
# into .venv if needed, then runs every scenario against the bundled emulator and prints the table.
# Arguments go to the runner: --quick (smoke run), --only NAME, --out FILE.
set -euo pipefail
BUTLR_EXTRAS="${BUTLR_EXTRAS:-test,bench}"
source "$(dirname "$0")/_venv.sh"
cd "$REPO"
export AIRFLOW_HOME="${AIRFLOW_HOME_FOR_BENCH:-$(mktemp -d -t butlr-bench-home-XXXXXX)}"
exec "$VENV/bin/python" -m benchmarks "$@"
