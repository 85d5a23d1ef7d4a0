#!/usr/bin/env bash
# The package as a new user gets it (issue 25), run by .ci/run:
#   1. a local clone of HEAD (what a user's `git clone` gives);
#   2. the README's "install from a clone" block, word for word, in that clone (non-editable);
#   3. the README's "install from a built wheel" block in a fresh virtualenv: `uv build` makes the sdist
#      and, from it, the wheel; the wheel is installed with Airflow pinned by scripts/locks;
#   4. the sdist and the wheel hold what a packager needs (LICENSE, README, py.typed, the tests, the
#      license metadata and the extras);
#   5. from the wheel's virtualenv, outside the source tree: the emulator CLI, `airflow providers list`
#      and the example DAG butlr_quickstart;
#   6. the README's "your first DAG" walkthrough, word for word, in the clone's virtualenv: the emulator
#      command, the exports, the DAG file, `airflow dags test` and the look at the compressed file.
# Deviations from word for word, all about CI: `pip install uv` installs the pinned uv of
# scripts/locks/tools.txt, `uv build` uses the pinned backend of scripts/locks/build.txt
# (UV_BUILD_CONSTRAINT), port 8765 becomes a free one and /tmp/butlr a folder of this run.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d -t butlr-package-XXXXXX)"
stop_pid_file() {  # the process this script started (and its children), by id
  [ -s "$1" ] || return 0
  local pid; pid="$(cat "$1")"
  pkill -P "$pid" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  rm -f "$1"
}
cleanup() {
  for pid_file in "$WORK"/*.pid "$WORK"/wheel-run/*.pid; do stop_pid_file "$pid_file"; done
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
start=$(date +%s)
step() { echo ">> package check: $* ($(( $(date +%s) - start )) s)"; }
fail() { echo "!! package check: $*" >&2; exit 1; }

# A README block by its fence title: ```bash title="..."
readme_block() {
  "$PYTHON" - "$REPO/README.md" "$1" <<'PY'
import re, sys, textwrap
text = open(sys.argv[1], encoding="utf-8").read()
found = re.findall(r'```\w+ title="' + re.escape(sys.argv[2]) + r'"\n(.*?)```', text, flags=re.S)
if len(found) != 1:
    sys.exit(f"README.md: {len(found)} blocks titled {sys.argv[2]!r}, expected 1")
print(textwrap.dedent(found[0]).rstrip() + "\n", end="")  # blocks inside list items are indented
PY
}
free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"
OUT="$WORK/out"
for_ci() {  # the CI deviations listed above
  sed -e "s#pip install uv#pip install -q -r $REPO/scripts/locks/tools.txt#" \
      -e "s#8765#$PORT#g" -e "s#/tmp/butlr#$OUT#g"
}
export UV_BUILD_CONSTRAINT="$REPO/scripts/locks/build.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1

step "1. clone"
CLONE="$WORK/clone/airflow-provider-butlr"
git clone -q "$REPO" "$CLONE"

step "2. README: install from a clone"
block="$(readme_block "install from a clone")"
grep -q "^git clone " <<<"$block" || fail "the README's clone install does not start with git clone"
(cd "$WORK/clone" && bash -euo pipefail -c "$(grep -v '^git clone ' <<<"$block" | for_ci)") \
  >"$WORK/install-clone.log" 2>&1 || { tail -n 40 "$WORK/install-clone.log" >&2; fail "the README's clone install failed"; }
(cd "$WORK" && "$CLONE/.venv/bin/python" -c '
import airflow_provider_butlr as p, sys
assert "site-packages" in p.__file__, p.__file__  # installed, not the source tree
') || fail "the clone install is not a regular install"

step "3. README: install from a built wheel (fresh virtualenv)"
"$PYTHON" -m venv "$WORK/wheel-venv"
block="$(readme_block "install from a built wheel")"
(cd "$CLONE" && . "$WORK/wheel-venv/bin/activate" && pip install -q -r "$REPO/scripts/locks/tools.txt" \
  && bash -euo pipefail -c "$(for_ci <<<"$block")") >"$WORK/install-wheel.log" 2>&1 \
  || { tail -n 40 "$WORK/install-wheel.log" >&2; fail "the README's wheel install failed"; }

step "4. sdist and wheel contents"
"$PYTHON" - "$CLONE/dist" <<'PY'
import sys, tarfile, zipfile
from email.parser import Parser
from pathlib import Path

dist = Path(sys.argv[1])
(sdist,) = dist.glob("*.tar.gz")
(wheel,) = dist.glob("*.whl")
root = sdist.name[: -len(".tar.gz")]
with tarfile.open(sdist) as tar:
    names = {n.removeprefix(root + "/") for n in tar.getnames()}
need = ["LICENSE", "README.md", "pyproject.toml", "PKG-INFO", "airflow_provider_butlr/py.typed",
        "airflow_provider_butlr/testing/__main__.py", "tests/conftest.py", "tests/fixtures/butlr/LICENSE",
        "docs/operators.md", "example_dags/butlr_quickstart.py"]
missing = [n for n in need if n not in names]
stray = sorted(n for n in names if n.startswith((".venv", ".ci/", "benchmarks/results", "scripts/"))
               or "__pycache__" in n or n.endswith(".pyc"))
assert not missing, f"sdist {sdist.name} lacks {missing}"
assert not stray, f"sdist {sdist.name} carries {stray[:5]}"
with zipfile.ZipFile(wheel) as zf:
    wnames = set(zf.namelist())
    info = next(n for n in wnames if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(zf.read(info).decode())
    entry = zf.read(info.replace("METADATA", "entry_points.txt")).decode()
assert "airflow_provider_butlr/py.typed" in wnames, "the wheel lacks py.typed"
assert any(n.endswith(".dist-info/licenses/LICENSE") for n in wnames), "the wheel lacks LICENSE"
assert not any(n.startswith(("tests/", "benchmarks/", "example_dags/")) for n in wnames), "the wheel carries non-package files"
assert meta["License-Expression"] == "Apache-2.0", meta["License-Expression"]
extras = set(meta.get_all("Provides-Extra"))
assert {"emulator", "parquet", "zstd"} <= extras, extras
assert "apache_airflow_provider" in entry and "get_provider_info" in entry, entry
print(f"   {sdist.name}: {len(names)} files; {wheel.name}: {len(wnames)} files; extras {sorted(extras)}")
PY

step "5. the wheel's virtualenv: emulator CLI, providers list, butlr_quickstart"
VENV="$WORK/wheel-venv"
(cd "$WORK" && "$VENV/bin/python" -c '
import airflow_provider_butlr as p
assert "site-packages" in p.__file__, p.__file__
') || fail "the wheel's virtualenv imports the provider from elsewhere"
mkdir -p "$WORK/wheel-run/dags"
cp "$REPO/example_dags/butlr_quickstart.py" "$WORK/wheel-run/dags/"
(
  cd "$WORK/wheel-run"
  export PATH="$VENV/bin:$PATH" AIRFLOW_HOME="$WORK/wheel-run/home" AIRFLOW__CORE__DAGS_FOLDER="$WORK/wheel-run/dags"
  export AIRFLOW__CORE__LOAD_EXAMPLES=False
  python -m airflow_provider_butlr.testing --port 0 --ready-file emulator.url >emulator.log 2>&1 &
  echo $! >emulator.pid
  for _ in $(seq 1 150); do [ -s emulator.url ] && break; sleep 0.2; done
  [ -s emulator.url ] || { cat emulator.log >&2; exit 1; }
  url="$(head -n1 emulator.url)"
  export AIRFLOW_CONN_BUTLR_DEFAULT="{\"conn_type\": \"butlr\", \"host\": \"$url\", \"login\": \"emulator-client-id\", \"password\": \"emulator-client-secret-do-not-use\"}"
  airflow db migrate >migrate.log 2>&1 || { tail -n 30 migrate.log >&2; exit 1; }
  airflow providers list 2>/dev/null | grep -q "airflow-provider-butlr" || { echo "airflow providers list lacks the provider" >&2; exit 1; }
  airflow dags test butlr_quickstart 2025-03-10 >quickstart.log 2>&1 || { tail -n 40 quickstart.log >&2; exit 1; }
  grep -q "state=success\|DagRun Finished.*success\|state: success" quickstart.log || { tail -n 40 quickstart.log >&2; exit 1; }
  stop_pid_file emulator.pid
) || fail "the wheel's virtualenv did not run the emulator and butlr_quickstart"

step "6. README: your first DAG, word for word (the clone's virtualenv)"
(
  cd "$CLONE"
  . .venv/bin/activate
  bash -c "$(readme_block "2. start the emulator" | for_ci)" >"$WORK/walkthrough-emulator.log" 2>&1 &
  echo $! >"$WORK/walkthrough-emulator.pid"
  "$PYTHON" - "$PORT" <<'PY'
import socket, sys, time
for _ in range(150):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit("the README's emulator command did not start listening")
PY
  readme_block "3. point Airflow at it" | for_ci >"$WORK/step3.sh"
  . "$WORK/step3.sh" >"$WORK/step3.log" 2>&1 || { tail -n 30 "$WORK/step3.log" >&2; exit 1; }
  readme_block "dags/my_first_butlr_dag.py" | for_ci >dags/my_first_butlr_dag.py
  bash -e -c "$(readme_block "5. run it" | for_ci)" >"$WORK/step5.log" 2>&1 || { tail -n 40 "$WORK/step5.log" >&2; exit 1; }
  tail -n 3 "$WORK/step5.log"
) || fail "the README walkthrough failed"
stop_pid_file "$WORK/walkthrough-emulator.pid"
stored="$(ls "$OUT")"
[ "$stored" = "2025-03-09.csv.gz" ] || fail "the walkthrough stored '$stored', not 2025-03-09.csv.gz"
lines="$(gzip -dc "$OUT/2025-03-09.csv.gz" | wc -l)"
[ "$lines" -eq 737 ] || fail "the walkthrough's file has $lines lines, the README promises 736 rows and a header"
grep -q "^time,local_time,measurement," "$WORK/step5.log" || fail "the README's look at the file did not show the header"
step "done: the README's installs, the wheel and sdist, and the walkthrough work"
