#!/usr/bin/env bash
# The Airflow version matrix: the whole test suite (the README's ./scripts/test.sh) on the newest
# patch release of every Airflow minor the package claims, each in its own venv
# .venv-matrix/af-X.Y (created and installed with uv on first use, reused afterwards).
#
#   ./scripts/test_matrix.sh                 # 3.0.6 3.1.8 3.2.2 3.3.2
#   ./scripts/test_matrix.sh 3.1.8 3.3.2     # a subset
#   ./scripts/test_matrix.sh --keep 3.0.6    # add to the results file instead of starting a new one
#                                            # (CI records 3.3.2 from its main test step first)
#
# Writes .matrix-results.json, prints "Airflow | result | passed/failed/skipped | seconds" and
# exits non-zero if any minor fails. Logs: .venv-matrix/af-X.Y/test.log. MATRIX_JOBS (default 2)
# minors run at once; tests marked airflow_independent are left out (MATRIX_MARKERS="" keeps them).
# Each install is pinned by scripts/locks/airflow-X.Y.Z.txt (scripts/refresh_locks.sh; the caps on
# Airflow's own dependencies that broke a release are in scripts/locks/caps/airflow-X.Y.txt).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"

KEEP=0
if [ "${1:-}" = "--keep" ]; then KEEP=1; shift; fi
DEFAULT_VERSIONS="3.0.6 3.1.8 3.2.2 3.3.2"
read -r -a VERSIONS <<<"${*:-${AIRFLOW_VERSIONS:-$DEFAULT_VERSIONS}}"
RESULTS="${MATRIX_RESULTS:-$REPO/.matrix-results.json}"
PYTHON="${PYTHON:-python3}"
export PYTHON

[ "$KEEP" = 1 ] || rm -f "$RESULTS"  # the file describes this run only
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

run_version() {  # install and test one Airflow release; leaves result.env in its venv
  local version="$1" minor venv log junit t0 t1 t2 installed py code
  minor="${version%.*}"
  venv="$REPO/.venv-matrix/af-$minor"
  mkdir -p "$venv"
  log="$venv/test.log"
  junit="$venv/junit.xml"
  rm -f "$junit" "$venv/result.env"
  echo ">> Airflow $version in $venv"

  t0=$(now)
  # scripts/_venv.sh creates the venv and installs "apache-airflow==$version" -e ".[test]" with uv,
  # pinned by scripts/locks/airflow-$version.txt (it reinstalls when the lock changed).
  # Installs take turns (flock): each editable install rewrites the repo's *.egg-info.
  if ! VENV="$venv" AIRFLOW_VERSION="$version" flock "$REPO/.venv-matrix/.install.lock" \
      bash -c 'source "$1/scripts/_venv.sh"' _ "$REPO" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "!! install of Airflow $version failed" >&2
  fi
  t1=$(now)
  installed="$("$venv/bin/python" -c 'import airflow; print(airflow.__version__)' 2>/dev/null || echo none)"
  py="$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)"

  code=0
  if [ "$installed" != "$version" ]; then
    echo "!! $venv has Airflow $installed, expected $version" >&2
    code=2
  else
    VENV="$venv" AIRFLOW_VERSION="$version" "$REPO/scripts/test.sh" -q --junitxml="$junit" \
      -m "$MARKERS" >>"$log" 2>&1 || code=$?
    if [ "$code" -ne 0 ]; then
      echo "!! Airflow $version:" >&2
      grep -E "^(FAILED|ERROR)" "$log" >&2 || tail -n 40 "$log" >&2
    fi
  fi
  t2=$(now)
  printf 'code=%s\npy=%s\ninstall=%s\ntests=%s\n' "$code" "$py" "$(elapsed "$t0" "$t1")" \
    "$(elapsed "$t1" "$t2")" >"$venv/result.env"
}

# Tests marked airflow_independent (the emulator, pure functions, the hook's fault matrix) do not
# touch Airflow; they run once, in the main test step. Tests marked newest_airflow (the two longest
# end-to-end checks of the daily export's output, ~40-90 s per minor) also run there only: every
# example DAG still runs to success on every minor (test_secret_hygiene). MATRIX_MARKERS="" runs everything.
MARKERS="${MATRIX_MARKERS-not airflow_independent and not newest_airflow}"
JOBS="${MATRIX_JOBS:-2}"  # minors tested at once
running=0
for version in "${VERSIONS[@]}"; do
  if [ "$running" -ge "$JOBS" ]; then wait -n || true; running=$((running - 1)); fi
  run_version "$version" &
  running=$((running + 1))
done
wait || true

for version in "${VERSIONS[@]}"; do  # record in order, one writer
  venv="$REPO/.venv-matrix/af-${version%.*}"
  code=99 py=none install=0 tests=0
  # shellcheck disable=SC1091
  [ -f "$venv/result.env" ] && source "$venv/result.env"
  echo "Airflow $version: $(tail -n 1 "$venv/test.log" 2>/dev/null)"
  "$PYTHON" "$REPO/scripts/matrix_results.py" --results "$RESULTS" record --airflow "$version" --python "$py" \
    --junit "$venv/junit.xml" --exit-code "$code" --install-seconds "$install" --test-seconds "$tests"
done

echo
echo "Results: $RESULTS"
exec "$PYTHON" "$REPO/scripts/matrix_results.py" --results "$RESULTS" table --expect "${VERSIONS[@]}"
