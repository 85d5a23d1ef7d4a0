#!/usr/bin/env bash
# The scale check (issue 27; docs/scale-check.md): N daily exports at once on a CeleryExecutor
# deployment (PostgreSQL, Redis, three workers standing in for three hosts) against the emulator's
# rate limit, with a worker killed, every token revoked and Redis restarted mid-run; then the secret
# scan and one Markdown table of figures against issue 27's targets.
#   ./scripts/scale_check.sh [--full] [--report-only] [--work-dir DIR] [--keep] [--help]
# Installs what it needs: Debian's redis-server (and postgresql) when missing, and Airflow with the
# Celery and Postgres providers in $VENV (default .venv-scale), pinned by scripts/locks.
set -euo pipefail
export VENV="${VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv-scale}"
export BUTLR_EXTRAS="${BUTLR_EXTRAS:-emulator}"
source "$(dirname "$0")/_venv.sh"
cd "$REPO"
stamp="$VENV/.butlr-scale-installed"
if [ ! -f "$stamp" ] || [ "$LOCK" -nt "$stamp" ]; then
  echo ">> installing the Celery and Postgres providers and redis into $VENV" >&2
  "$VENV/bin/python" -m uv pip install -q -p "$VENV/bin/python" -c "$LOCK" \
    apache-airflow-providers-celery apache-airflow-providers-postgres redis
  touch "$stamp"
fi
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then echo "redis-server is missing: apt-get install redis-server" >&2; exit 1; fi
  echo ">> apt-get install -y redis-server" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
# exec: SIGINT/SIGTERM reach the orchestrator, which stops every component by process group.
exec "$VENV/bin/python" "$REPO/scripts/scale_check.py" "$@"
