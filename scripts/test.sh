#!/usr/bin/env bash
# The test command: installs what it needs into .venv (if missing), then runs the whole suite
# against the bundled emulator on 127.0.0.1. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$REPO"
export AIRFLOW_HOME="${AIRFLOW_HOME_FOR_TESTS:-$(mktemp -d -t butlr-test-home-XXXXXX)}"
exec "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
