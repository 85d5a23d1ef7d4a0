# Sourced by the scripts: make sure $VENV (default .venv) exists with Airflow and this package.
# AIRFLOW_VERSION picks the Airflow release (default 3.3.2). Installs are quick with uv.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
AIRFLOW_VERSION="${AIRFLOW_VERSION:-3.3.2}"
PYTHON="${PYTHON:-python3}"
stamp="$VENV/.butlr-installed-$AIRFLOW_VERSION"
if [ ! -x "$VENV/bin/python" ]; then
  echo ">> creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ "$REPO/pyproject.toml" -nt "$stamp" ]; then
  echo ">> installing apache-airflow==$AIRFLOW_VERSION and airflow-provider-butlr[test] into $VENV" >&2
  "$VENV/bin/python" -m pip install -q uv
  "$VENV/bin/python" -m uv pip install -q --compile-bytecode -p "$VENV/bin/python" \
    "apache-airflow==$AIRFLOW_VERSION" -e "$REPO[test]"
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
