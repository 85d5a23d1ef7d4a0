#!/usr/bin/env bash
# Shared polls in a real triggerer (issue 27; docs/scale.md): N mapped deferred sensors in a real
# Airflow deployment against the emulator, reporting requests per poke interval.
#   ./scripts/shared_polls_check.sh [--sensors 45] [--poke 10] [--intervals 4] [--keep]
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$REPO"
exec python "$REPO/scripts/shared_polls_check.py" "$@"
