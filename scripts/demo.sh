#!/usr/bin/env bash
# The main job: run the example DAGs end to end against the bundled Butlr emulator, on a
# throw-away SQLite Airflow home. Exits non-zero if a DAG fails.
# What it runs: this clone, installed editable (pip install -e ".[test]", pinned by
# scripts/locks/airflow-$AIRFLOW_VERSION.txt) into $VENV (default .venv) by scripts/_venv.sh; the
# package is not published yet (README, "Install"; scripts/package_check.sh checks the wheel).
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$REPO"
echo ">> using $VENV: airflow-provider-butlr installed from this clone ($REPO, editable), Airflow $AIRFLOW_VERSION"

WORK="${DEMO_DIR:-$(mktemp -d -t butlr-demo-XXXXXX)}"
mkdir -p "$WORK"
export AIRFLOW_HOME="$WORK/airflow-home"
export AIRFLOW__CORE__DAGS_FOLDER="$REPO/example_dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export BUTLR_EXPORT_BASE_PATH="$WORK/exports"

python -m airflow_provider_butlr.testing --port 0 --ready-file "$WORK/emulator.url" >"$WORK/emulator.log" 2>&1 &
EMULATOR_PID=$!
trap 'kill "$EMULATOR_PID" 2>/dev/null || true; wait "$EMULATOR_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [ -s "$WORK/emulator.url" ] && break
  kill -0 "$EMULATOR_PID" 2>/dev/null || { cat "$WORK/emulator.log" >&2; echo "emulator failed to start" >&2; exit 1; }
  sleep 0.2
done
[ -s "$WORK/emulator.url" ] || { echo "emulator did not become ready" >&2; exit 1; }
EMULATOR_URL="$(head -n1 "$WORK/emulator.url")"
# The emulator's documented default credentials (see README, "Try it against the emulator: your first DAG").
export AIRFLOW_CONN_BUTLR_DEFAULT="$(python - "$EMULATOR_URL" <<'PY'
import json, sys
print(json.dumps({"conn_type": "butlr", "host": sys.argv[1], "login": "emulator-client-id",
                  "password": "emulator-client-secret-do-not-use",
                  "extra": {"audience": "https://butlrauth/", "auth_type": "client_credentials"}}))
PY
)"
echo ">> emulator at $EMULATOR_URL; Airflow home $AIRFLOW_HOME"

airflow db migrate >"$WORK/db-migrate.log" 2>&1 || { cat "$WORK/db-migrate.log" >&2; exit 1; }

run_dag() {
  local dag_id="$1"; shift
  echo ">> airflow dags test $dag_id $*"
  if ! airflow dags test "$dag_id" "$@" >"$WORK/$dag_id.log" 2>&1; then
    tail -n 60 "$WORK/$dag_id.log" >&2
    echo "DAG $dag_id FAILED (full log: $WORK/$dag_id.log)" >&2
    exit 1
  fi
  grep -q "state=success\|DagRun Finished.*success\|state: success" "$WORK/$dag_id.log" || {
    tail -n 60 "$WORK/$dag_id.log" >&2; echo "DAG $dag_id did not finish in state success" >&2; exit 1; }
}

run_dag butlr_quickstart
run_dag butlr_find_my_ids  # the site tree with every id, as you would print your own (README, "Find your ids")
for extra in "$REPO"/scripts/demo.d/*.sh; do
  [ -e "$extra" ] && source "$extra"
done
echo ">> demo finished; everything is under $WORK"
