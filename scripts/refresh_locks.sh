#!/usr/bin/env bash
# The pinned environments every install of the scripts and CI uses: scripts/locks/airflow-X.Y.Z.txt,
# produced by `uv pip compile` from pyproject.toml's extras, scripts/locks/inputs/airflow-X.Y.Z.in
# and the caps in scripts/locks/caps/airflow-X.Y.txt, resolved as of the date in
# scripts/locks/resolution-date (uv's --exclude-newer), so a release published later never changes
# what CI installs. Refreshing is a deliberate act, in a commit of its own that shows what moved:
#
#   ./scripts/refresh_locks.sh                 # re-resolve at the recorded date (after a pyproject change)
#   ./scripts/refresh_locks.sh --date now      # move the date to now and re-resolve everything
#   ./scripts/refresh_locks.sh --date 2026-12-20T00:00:00Z
#   ./scripts/refresh_locks.sh --check         # exit 1 if a lock no longer satisfies its inputs (CI)
#
# Then run the matrix (./scripts/test_matrix.sh) and, where a new release breaks an Airflow minor,
# add a cap with its reason to scripts/locks/caps/ and refresh again.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
LOCKS=scripts/locks
CHECK=0
UPGRADE=()  # a new date moves every pin; without one, the pins that still fit are kept
DATE="$(cat "$LOCKS/resolution-date")"
while [ $# -gt 0 ]; do
  case "$1" in
    --check) CHECK=1; shift ;;
    --date) DATE="$2"; [ "$DATE" = now ] && DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"; UPGRADE=(--upgrade); shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -x "${VENV:-$REPO/.venv}/bin/python" ] && "${VENV:-$REPO/.venv}/bin/python" -m uv --version >/dev/null 2>&1; then
  UV=("${VENV:-$REPO/.venv}/bin/python" -m uv)
elif command -v uv >/dev/null 2>&1; then
  UV=(uv)
else
  tool="$(mktemp -d -t butlr-uv-XXXXXX)"
  python3 -m venv "$tool" && "$tool/bin/python" -m pip install -q uv
  UV=("$tool/bin/python" -m uv)
fi

stale=()
for input in "$LOCKS"/inputs/airflow-*.in; do
  version="$(basename "$input" .in)"; version="${version#airflow-}"
  minor="${version%.*}"
  extras=(--extra test)
  [ "$minor" = 3.3 ] && extras=(--extra dev --extra bench)
  caps=()
  [ -f "$LOCKS/caps/airflow-$minor.txt" ] && caps=(-c "$LOCKS/caps/airflow-$minor.txt")
  out="$LOCKS/airflow-$version.txt"
  if [ "$CHECK" = 1 ]; then
    # Do the committed pins still satisfy the inputs? Resolve for CI's platform (CPython 3.11, Linux)
    # with the lock as constraints: every package it needs must be pinned there at the version the
    # lock gives. A release the index learnt of later never makes this red (the lock pins the older
    # one); a new or tightened requirement does.
    target="$(mktemp)"
    if ! "${UV[@]}" pip compile -q --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
      --no-header --no-annotate pyproject.toml "${extras[@]}" "$input" "${caps[@]}" -c "$out" -o "$target"; then
      stale+=("$out")
    else
      missing="$(grep -E '^[A-Za-z0-9]' "$target" | sed 's/ *;.*//' | sort -u |
        comm -23 - <(grep -E '^[A-Za-z0-9]' "$out" | sed 's/ *;.*//' | sort -u))"
      if [ -n "$missing" ]; then
        echo "-- $out lacks: $missing" >&2
        stale+=("$out")
      fi
    fi
    rm -f "$target"
    continue
  fi
  "${UV[@]}" pip compile -q --universal --python-version 3.11 --exclude-newer "$DATE" \
    --custom-compile-command "scripts/refresh_locks.sh (resolved as of $DATE)" \
    "${UPGRADE[@]}" pyproject.toml "${extras[@]}" "$input" "${caps[@]}" -o "$out"
  echo ">> $out ($(grep -c '==' "$out") pins)"
done
if [ "$CHECK" = 1 ]; then
  if [ ${#stale[@]} -gt 0 ]; then
    echo "!! stale locks (the inputs give something else): ${stale[*]}; run ./scripts/refresh_locks.sh and commit" >&2
    exit 1
  fi
  echo ">> every lock satisfies its inputs (resolved as of $DATE)"
else
  echo "$DATE" >"$LOCKS/resolution-date"
fi
