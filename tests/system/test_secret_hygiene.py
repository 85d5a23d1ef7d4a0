"""Secret hygiene, proven on real DAG runs: no client secret, password or access token anywhere.

Every example DAG runs with ``dag.test()`` in a separate Airflow process (its own throw-away
``AIRFLOW_HOME``, the emulator inside that process) with a distinctive client secret; then a
password-grant run, a run whose cached token was revoked, and deliberately failing runs (wrong
secret, a token the API keeps refusing). Afterwards the test scans everything Airflow wrote: captured stdout/stderr (``dag.test()`` task logs go there),
every file under ``AIRFLOW_HOME`` (the metadata DB included, byte for byte), XCom values and
rendered template fields read from the metadata DB. Expected hits: zero. A canary DAG leaks a
harmless decoy through each of those channels, so a blind scan cannot pass.

``dag.test()`` prints task logs through airflow-core's console logging, which (unlike a worker's
supervisor) applies no secrets masker. So the runner also checks, inside the Airflow process, that
every token the emulator issued was registered with Airflow's masker (``mask_secret``), which is
what scrubs the task logs of a real worker.

The same module is the runner: ``python -m tests.system.test_secret_hygiene OUT_DIR`` (with AIRFLOW_HOME
and AIRFLOW__CORE__DAGS_FOLDER set) executes the scenarios and writes ``results.json``.

Also here: TLS verification is on by default and ``extra.ca_bundle`` is honoured, proven against a
real HTTPS server on loopback; a plain ``http://`` base URL for a remote host warns. (That a
redirect to another host carries no ``Authorization`` header is proven in test_hook_redirects.py.)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import sqlite3
import ssl
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.dag_registration import register_dags
from tests.support.paths import REPO

EXAMPLE_DAGS = REPO / "example_dags"

CLIENT_SECRET = "hyg-client-secret-Qx7Wv2Lp9Tz4Nd6"
PASSWORD = "hyg-user-password-Rk3Nb8Jm5Yc1Hs0"
WRONG_SECRET = "hyg-wrong-secret-Ub6Hs0Ke4Fa9Pq2"
WEBHOOK_KEY = "hyg-webhook-key-Tc8Rm3Vz6Jq1Wd5"  # the webhook receiver's shared key (subscription DAG)
CANARY_DAG_ID = "butlr_secret_canary"
RUNNER_TIMEOUT = 420  # seconds for all scenarios together

DECOY = "hyg-decoy-not-a-secret-Lw5Gt8Vn1Xb3"  # leaked on purpose: proves each channel is scanned

CANARY_DAG = f'''
"""Test-only DAG: leaks a harmless decoy through every channel the scan covers."""
import logging

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import dag, task


def _fail(value: str) -> None:
    raise RuntimeError(f"decoy in an exception: {{value}}")


@dag(dag_id="{CANARY_DAG_ID}", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def canary():
    @task
    def leak_decoy() -> str:
        logging.getLogger("airflow.task").info("decoy in a log line: %s", "{DECOY}")
        return "{DECOY}"

    leak_decoy() >> PythonOperator(
        task_id="templated_decoy",
        python_callable=_fail,
        op_kwargs={{"value": "{{{{ params.decoy }}}}"}},
        params={{"decoy": "{DECOY}"}},
    )


canary()
'''


# --- the runner (executed in a child process) ----------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One ``dag.test()`` run: which DAG, with which connection, after which emulator set-up."""

    name: str
    dag_id: str
    expect: str  # "success" or "failed"
    auth_type: str = "client_credentials"
    secret: str | None = None
    setup: str | None = None  # "revoke_all" | "refuse_tokens"


def scenarios(example_dag_ids: list[str]) -> list[Scenario]:
    """Every example DAG, then the runs that exercise the other credentials and failure paths."""
    runs = [Scenario(f"example:{dag_id}", dag_id, "success") for dag_id in example_dag_ids]
    return [
        *runs,
        Scenario("password-grant", "butlr_quickstart", "success", auth_type="password"),
        Scenario("revoked-then-recovered", "butlr_quickstart", "success", setup="revoke_all"),
        Scenario("wrong-secret", "butlr_quickstart", "failed", secret=WRONG_SECRET),
        Scenario("token-refused", "butlr_quickstart", "failed", setup="refuse_tokens"),
        Scenario("canary", CANARY_DAG_ID, "failed"),
    ]


def _load_dags(folder: str) -> dict[str, Any]:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=folder)
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return dict(bag.dags)


def _quiet_debug_records_of_airflow_3_0() -> None:
    """Airflow 3.0's ``dag.test()`` leaves structlog unconfigured, so it prints debug records.

    Among them the in-process supervisor's ``Sending request msg=MaskSecret(value=...)``: the very
    request that registers the secret with the masker (a worker's supervisor logs it with the body
    omitted, and 3.1+ configures logging at INFO). Filter below INFO, as a configured Airflow does.
    """
    from tests.support.airflow_versions import AIRFLOW_V_3_1_PLUS

    if not AIRFLOW_V_3_1_PLUS:
        import logging

        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))


def _run_scenarios(out_dir: Path) -> None:
    from airflow_provider_butlr.testing import ButlrEmulator

    _quiet_debug_records_of_airflow_3_0()
    dags = _load_dags(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    register_dags(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])  # asset outlets need it on Airflow 3.0
    example_ids = sorted(dag_id for dag_id in dags if dag_id != CANARY_DAG_ID)
    results: list[dict[str, Any]] = []
    with ButlrEmulator(port=0, client_secret=CLIENT_SECRET, password=PASSWORD) as emu:
        # the webhook receiver's connection: the subscription DAG sends its key to Butlr, and only there
        os.environ["AIRFLOW_CONN_BUTLR_WEBHOOK_DEFAULT"] = json.dumps(
            {
                "conn_type": "generic",
                "host": "https://airflow.example.com/butlr/webhooks",
                "password": WEBHOOK_KEY,
                "extra": {"org_id": emu.org.id},
            }
        )
        for scenario in scenarios(example_ids):
            emu.faults.clear()
            if scenario.setup == "revoke_all":
                emu.revoke_all_tokens()  # the process-wide cache still holds the old token
            elif scenario.setup == "refuse_tokens":
                emu.faults.add(path="/api/v3/", kind="unauthorized")
            conn = emu.connection_extra(scenario.auth_type, max_retries=1)
            if scenario.secret is not None:
                conn["password"] = scenario.secret
            os.environ["AIRFLOW_CONN_BUTLR_DEFAULT"] = json.dumps(conn)
            logins_before = emu.counters.logins
            print(f"=== scenario {scenario.name}: dag {scenario.dag_id}", flush=True)
            # A day ago: the daily export's day (the one before) is then final in every timezone,
            # so its completeness sensor does not wait for the triggerer's deadline.
            run = dags[scenario.dag_id].test(logical_date=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
            state = str(getattr(run.state, "value", run.state))
            results.append(
                {
                    "name": scenario.name,
                    "dag_id": scenario.dag_id,
                    "expect": scenario.expect,
                    "state": state,
                    "logins": emu.counters.logins - logins_before,
                }
            )
        tokens = emu.issued_tokens
        payload = {"runs": results, "issued_tokens": tokens, "unmasked_tokens": _unmasked(tokens)}
        (out_dir / "results.json").write_text(json.dumps(payload, indent=1))


def _unmasked(values: list[str]) -> list[int]:
    """Indexes of ``values`` that Airflow's secrets masker (task side) would not redact."""
    try:
        from airflow.sdk.log import redact
    except ImportError:  # Airflow 3.0
        from airflow.sdk.execution_time.secrets_masker import redact  # type: ignore[no-redef]
    return [i for i, value in enumerate(values) if redact(value) != "***"]


# --- the scan -------------------------------------------------------------------------------------


def _hits(text: str, needles: dict[str, str]) -> list[str]:
    return [name for name, value in needles.items() if value and value in text]


def _file_hits(root: Path, needles: dict[str, str]) -> dict[str, list[str]]:
    """Byte-level scan of every file under ``root`` (the SQLite DB included)."""
    found: dict[str, list[str]] = {}
    encoded = {name: value.encode() for name, value in needles.items()}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            names = [name for name, value in encoded.items() if value in data]
            if names:
                found[str(path.relative_to(root))] = names
    return found


@dataclass(frozen=True)
class HygieneRun:
    """What the child process left behind."""

    home: Path
    stdout: str
    stderr: str
    runs: list[dict[str, Any]]
    tokens: list[str]
    unmasked_tokens: list[int]

    @property
    def needles(self) -> dict[str, str]:
        named = {
            "client secret": CLIENT_SECRET,
            "password": PASSWORD,
            "wrong secret": WRONG_SECRET,
            "webhook key": WEBHOOK_KEY,
        }
        named.update({f"token #{i}": token for i, token in enumerate(self.tokens)})
        return named

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.home / "airflow.db") as db:
            return db.execute(sql).fetchall()


def _child_env(home: Path, dags: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="True",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    return env


def _dags_folder(target: Path) -> Path:
    """The example DAGs (linked, not copied) plus the canary DAG."""
    target.mkdir()
    for entry in EXAMPLE_DAGS.iterdir():
        if entry.name != "__pycache__":
            (target / entry.name).symlink_to(entry)
    (target / "butlr_secret_canary.py").write_text(CANARY_DAG)
    return target


@pytest.fixture(scope="module")
def hygiene(tmp_path_factory: pytest.TempPathFactory) -> HygieneRun:
    base = tmp_path_factory.mktemp("hygiene")
    home = base / "airflow-home"
    home.mkdir()
    env = _child_env(home, _dags_folder(base / "dags"))
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
    )
    child = subprocess.run(
        [sys.executable, "-m", "tests.system.test_secret_hygiene", str(base)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUNNER_TIMEOUT,
    )
    (base / "stdout.txt").write_text(child.stdout)
    (base / "stderr.txt").write_text(child.stderr)
    assert child.returncode == 0, f"runner failed:\n{child.stdout[-3000:]}\n{child.stderr[-3000:]}"
    payload = json.loads((base / "results.json").read_text())
    return HygieneRun(
        home,
        child.stdout,
        child.stderr,
        payload["runs"],
        payload["issued_tokens"],
        payload["unmasked_tokens"],
    )


def test_every_scenario_ended_as_expected(hygiene: HygieneRun) -> None:
    example_runs = [run for run in hygiene.runs if run["name"].startswith("example:")]
    expected_ids = {path.stem for path in EXAMPLE_DAGS.glob("butlr_*.py")}
    assert {run["dag_id"] for run in example_runs} >= expected_ids
    assert [(run["name"], run["state"]) for run in hygiene.runs] == [
        (run["name"], run["expect"]) for run in hygiene.runs
    ]
    by_name = {run["name"]: run for run in hygiene.runs}
    assert by_name["revoked-then-recovered"]["logins"] == 1  # the revoked token was replaced once
    assert len(hygiene.tokens) >= 4  # several tokens were issued and are part of the scan


def test_scan_sees_the_task_output(hygiene: HygieneRun) -> None:
    """Task logs and the failures' exception texts are in the scanned output."""
    out = " ".join((hygiene.stdout + hygiene.stderr).split())  # Airflow 3.0's rich console wraps lines
    assert "Logged in to Butlr" in out
    assert "ButlrAuthError" in out and "login refused" in out  # the wrong-secret run
    assert "refused the token (HTTP 401) even after a fresh login" in out  # the token-refused run


def test_scan_finds_the_decoy_in_every_channel(hygiene: HygieneRun) -> None:
    """The canary leaked a decoy through logs, an exception, XCom and a rendered field: all found."""
    out = hygiene.stdout + hygiene.stderr  # Airflow 3.1 writes the task's own log lines to stderr
    assert f"decoy in a log line: {DECOY}" in out
    assert f"decoy in an exception: {DECOY}" in out
    xcoms = hygiene.query(f"SELECT value FROM xcom WHERE dag_id = '{CANARY_DAG_ID}'")
    assert any(DECOY in str(value) for (value,) in xcoms)
    rendered = hygiene.query(
        f"SELECT rendered_fields FROM rendered_task_instance_fields WHERE dag_id = '{CANARY_DAG_ID}'"
    )
    assert any(DECOY in str(fields) for (fields,) in rendered)
    assert "airflow.db" in _file_hits(hygiene.home, {"decoy": DECOY})


def test_every_issued_token_is_registered_with_the_masker(hygiene: HygieneRun) -> None:
    assert hygiene.unmasked_tokens == []


def test_no_secret_in_captured_output(hygiene: HygieneRun) -> None:
    assert _hits(hygiene.stdout, hygiene.needles) == []
    assert _hits(hygiene.stderr, hygiene.needles) == []


def test_no_secret_in_any_file_under_airflow_home(hygiene: HygieneRun) -> None:
    assert _file_hits(hygiene.home, hygiene.needles) == {}


def test_no_secret_in_xcom_values(hygiene: HygieneRun) -> None:
    rows = hygiene.query("SELECT dag_id, task_id, value FROM xcom")
    assert {dag_id for dag_id, _, _ in rows} >= {"butlr_quickstart", CANARY_DAG_ID}
    for dag_id, task_id, value in rows:
        assert _hits(str(value), hygiene.needles) == [], f"{dag_id}.{task_id}"


def test_no_secret_in_rendered_template_fields(hygiene: HygieneRun) -> None:
    rows = hygiene.query("SELECT dag_id, task_id, rendered_fields FROM rendered_task_instance_fields")
    assert {dag_id for dag_id, _, _ in rows} >= {"butlr_quickstart", CANARY_DAG_ID}
    for dag_id, task_id, fields in rows:
        assert _hits(str(fields), hygiene.needles) == [], f"{dag_id}.{task_id}"


# --- TLS and plain-http warnings ------------------------------------------------------------------


def test_the_login_body_keeps_the_secret_out_of_its_repr() -> None:
    """Tracebacks that print local variables (rich, on Airflow 3.0's console) show the repr only."""
    from airflow_provider_butlr.client.tokens.grants import LoginBody

    for key in ("client_secret", "password"):
        body = LoginBody(client_id="id", **{key: CLIENT_SECRET})
        assert CLIENT_SECRET not in repr(body) and CLIENT_SECRET not in repr({"body": body})
        assert json.loads(json.dumps(body))[key] == CLIENT_SECRET  # what goes on the wire


def _self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (IP SAN) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "butlr-tls-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class _TLSApi(BaseHTTPRequestHandler):
    """A minimal Butlr over HTTPS: the login and a GraphQL ``sites`` answer."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.endswith("/login"):
            payload: dict[str, Any] = {"access_token": "tls-test-token", "expires_in": 3600}
        else:
            payload = {"data": {"sites": {"data": [{"id": "site_tls"}]}}}
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    cert, key = _self_signed_cert(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TLSApi)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def _tls_hook(monkeypatch: pytest.MonkeyPatch, url: str, **extra: Any) -> Any:
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    conn = {"conn_type": "butlr", "host": url, "login": "id", "password": CLIENT_SECRET, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_TLS", json.dumps(conn))
    return ButlrHook("butlr_tls", max_retries=0)


def test_tls_verification_is_on_by_default(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_butlr.exceptions import ButlrError

    url, _ = tls_server
    with pytest.raises(ButlrError, match="TLS certificate verification failed") as info:
        _tls_hook(monkeypatch, url).get_token()
    assert CLIENT_SECRET not in str(info.value)


def test_ca_bundle_extra_is_honoured(tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    url, cert = tls_server
    hook = _tls_hook(monkeypatch, url, ca_bundle=str(cert))
    assert hook.graphql("{ sites { data { id } } }") == {"sites": {"data": [{"id": "site_tls"}]}}


def test_plain_http_to_a_remote_host_warns_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = _tls_hook(monkeypatch, "http://butlr.invalid")
    with pytest.warns(UserWarning, match="unencrypted"):
        assert hook.settings.base_url == "http://butlr.invalid"


def test_plain_http_to_loopback_does_not_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = _tls_hook(monkeypatch, "http://127.0.0.1:9")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hook.settings.base_url == "http://127.0.0.1:9"


def _main(argv: list[str]) -> int:
    out_dir = Path(argv[0])
    _run_scenarios(out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
