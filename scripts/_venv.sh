# Sourced by the scripts: make sure $VENV (default .venv) exists with Airflow and this package.
# AIRFLOW_VERSION picks the Airflow release (default 3.3.2); BUTLR_EXTRAS the extras (default test).
# Installs are quick with uv and pinned by scripts/locks/airflow-$AIRFLOW_VERSION.txt (see
# scripts/refresh_locks.sh), so a dependency released later never changes what gets installed.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
AIRFLOW_VERSION="${AIRFLOW_VERSION:-3.3.2}"
BUTLR_EXTRAS="${BUTLR_EXTRAS:-test}"
PYTHON="${PYTHON:-python3}"
LOCK="$REPO/scripts/locks/airflow-$AIRFLOW_VERSION.txt"
stamp="$VENV/.butlr-installed-$AIRFLOW_VERSION-${BUTLR_EXTRAS//,/-}"
if [ ! -x "$VENV/bin/python" ]; then
  echo ">> creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ "$REPO/pyproject.toml" -nt "$stamp" ] || { [ -f "$LOCK" ] && [ "$LOCK" -nt "$stamp" ]; }; then
  lock_args=()
  if [ -f "$LOCK" ]; then
    lock_args=(-c "$LOCK")
  else
    echo ">> no lock for Airflow $AIRFLOW_VERSION in scripts/locks: resolving its dependencies afresh" >&2
  fi
  echo ">> installing apache-airflow==$AIRFLOW_VERSION and airflow-provider-butlr[$BUTLR_EXTRAS] into $VENV" >&2
  "$VENV/bin/python" -m pip install -q -r "$REPO/scripts/locks/tools.txt"  # the pinned uv
  "$VENV/bin/python" -m uv pip install -q --compile-bytecode -p "$VENV/bin/python" "${lock_args[@]}" \
    "apache-airflow==$AIRFLOW_VERSION" -e "$REPO[$BUTLR_EXTRAS]"
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
