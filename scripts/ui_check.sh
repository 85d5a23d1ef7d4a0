#!/usr/bin/env bash
# The Butlr connection form in a real Airflow UI, with a real browser.
#
#   ./scripts/ui_check.sh                      # Airflow 3.3.2 (browser + metadata), then 3.1.8 (metadata)
#   ./scripts/ui_check.sh --airflow 3.1.8      # one version; add --browser to drive the browser there too
#   ./scripts/ui_check.sh --docs-screenshot docs/connection-form.png
#
# Per version: a throw-away SQLite AIRFLOW_HOME (airflow db migrate), the emulator CLI and
# `airflow api-server` on free 127.0.0.1 ports ([core] test_connection = Enabled, simple auth
# manager), headless Debian Chromium with remote debugging on loopback, then scripts/ui_check.py.
# Every process is started in its own session and stopped by its PID at exit, also on failure.
# Screenshots: ui-screenshots/ (UI_SCREENSHOTS to change). Installs Debian's chromium if
# /usr/bin/chromium is missing and the `playwright` Python package into the venv (no browser
# download). Venvs: .venv for 3.3.2 (VENV to change), .venv-matrix/af-X.Y otherwise.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"

VERSIONS=()
BROWSER=auto
DOCS_SCREENSHOT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --airflow) VERSIONS+=("$2"); shift 2 ;;
    --browser) BROWSER=always; shift ;;
    --no-browser) BROWSER=never; shift ;;
    --docs-screenshot) DOCS_SCREENSHOT="$(realpath -m "$2")"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ ${#VERSIONS[@]} -eq 0 ]; then
  VERSIONS=(3.3.2 3.1.8)
fi
SHOTS="$(realpath -m "${UI_SCREENSHOTS:-$REPO/ui-screenshots}")"

if [ ${#VERSIONS[@]} -gt 1 ]; then  # one process tree (and one trap) per version
  for version in "${VERSIONS[@]}"; do
    args=(--airflow "$version")
    if [ "${version%.*}" = 3.3 ] && [ -n "$DOCS_SCREENSHOT" ]; then
      args+=(--docs-screenshot "$DOCS_SCREENSHOT")
    fi
    [ "$BROWSER" = always ] && args+=(--browser)
    [ "$BROWSER" = never ] && args+=(--no-browser)
    "$0" "${args[@]}" &  # background + wait, so a TERM/INT here reaches the child (and its cleanup)
    child=$!
    trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' INT TERM
    wait "$child"
  done
  exit 0
fi

VERSION="${VERSIONS[0]}"
MINOR="${VERSION%.*}"
if [ "$BROWSER" = auto ]; then
  case "$MINOR" in 3.3) BROWSER=always ;; *) BROWSER=never ;; esac
fi
if [ "$VERSION" = "3.3.2" ]; then
  VENV="${VENV:-$REPO/.venv}"
else
  VENV="$REPO/.venv-matrix/af-$MINOR"
fi
echo "=== UI check on Airflow $VERSION ($VENV; browser: $BROWSER)"
VENV="$VENV" AIRFLOW_VERSION="$VERSION" bash -c 'source "$1/scripts/_venv.sh"' _ "$REPO"
PY="$VENV/bin/python"

if [ "$BROWSER" = always ]; then
  if [ ! -x /usr/bin/chromium ]; then
    echo ">> installing Debian's chromium"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
  if ! "$PY" -c "import playwright" 2>/dev/null; then
    echo ">> installing the playwright Python package into $VENV"
    lock="$REPO/scripts/locks/airflow-$VERSION.txt"  # pins playwright too (scripts/refresh_locks.sh)
    "$PY" -m uv pip install -q -p "$PY" -c "$lock" "playwright>=1.50"
  fi
fi

WORK="$(mktemp -d -t butlr-ui-check-XXXXXX)"
PIDS=()
cleanup() {
  local code=$?
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  if [ "$code" -ne 0 ]; then
    for log in "$WORK"/*.log; do
      [ -f "$log" ] && { echo "--- tail of $log" >&2; tail -n 30 "$log" >&2; }
    done
  fi
  rm -rf "$WORK"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
start() {  # start NAME CMD...: in its own session (PID = process group id), logging to $WORK/NAME.log
  local name="$1"; shift
  setsid "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
  echo ">> $name started (pid $!)"
}

export AIRFLOW_HOME="$WORK/airflow-home"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER="$WORK/dags"
export AIRFLOW__CORE__TEST_CONNECTION=Enabled
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin
mkdir -p "$AIRFLOW__CORE__DAGS_FOLDER"
API_PORT="$(free_port)"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$API_PORT"

"$VENV/bin/airflow" db migrate >"$WORK/db-migrate.log" 2>&1
start emulator "$PY" -m airflow_provider_butlr.testing --port 0 --ready-file "$WORK/emulator.url"
start api-server "$VENV/bin/airflow" api-server --host 127.0.0.1 --port "$API_PORT" --workers 1
CHECK_ARGS=()
if [ "$BROWSER" = always ]; then
  CDP_PORT="$(free_port)"
  start chromium /usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$WORK/chromium-profile" --remote-debugging-address=127.0.0.1 \
    --remote-debugging-port="$CDP_PORT" about:blank
  CHECK_ARGS+=(--cdp-url "http://127.0.0.1:$CDP_PORT" --server-log "$WORK/api-server.log")
  [ -n "$DOCS_SCREENSHOT" ] && CHECK_ARGS+=(--docs-screenshot "$DOCS_SCREENSHOT")
fi

for _ in $(seq 1 100); do [ -s "$WORK/emulator.url" ] && break; sleep 0.1; done
[ -s "$WORK/emulator.url" ] || { echo "the emulator did not start" >&2; exit 1; }

# In the background + wait: bash runs the INT/TERM trap (and so the cleanup) at once instead of
# after a foreground child has finished; the check gets its own session so the cleanup stops it too.
setsid "$PY" "$REPO/scripts/ui_check.py" --airflow-url "http://127.0.0.1:$API_PORT" --airflow-home "$AIRFLOW_HOME" \
  --airflow-version "$VERSION" --emulator-url "$(head -n 1 "$WORK/emulator.url")" \
  --screenshots "$SHOTS" "${CHECK_ARGS[@]}" &
PIDS+=("$!")
wait "$!"
