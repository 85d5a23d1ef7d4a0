#!/usr/bin/env bash
# The benchmarks: installs the `bench` extra (apache-airflow-providers-http) into .venv if needed,
# then runs every scenario against the bundled emulator and prints the table.
# Arguments go to the runner: --quick (smoke run), --only NAME, --out FILE.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$REPO"
if ! "$VENV/bin/python" -c "import airflow.providers.http" 2>/dev/null; then
  echo ">> installing the bench extra into $VENV" >&2
  "$VENV/bin/python" -m uv pip install -q --compile-bytecode -p "$VENV/bin/python" \
    "apache-airflow==$AIRFLOW_VERSION" -e "$REPO[test,bench]"
fi
export AIRFLOW_HOME="${AIRFLOW_HOME_FOR_BENCH:-$(mktemp -d -t butlr-bench-home-XXXXXX)}"
exec "$VENV/bin/python" -m benchmarks "$@"
