"""``python -m airflow_provider_butlr.testing``: serves, prints what a user needs, stops on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests


def test_cli_serves_prints_and_stops_on_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "emulator.url"
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_butlr.testing", "--port", "0", "--seed", "7",
         "--token-lifetime", "900", "--ready-file", str(ready)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        url = ready.read_text().strip()
        assert url.startswith("http://127.0.0.1:")
        login = requests.post(
            url + "/api/v2/clients/login",
            json={
                "client_id": "emulator-client-id",
                "client_secret": "emulator-client-secret-do-not-use",
                "audience": "https://butlrauth/",
                "grant_type": "client_credentials",
            },
            timeout=5,
        )
        assert login.status_code == 200 and login.json()["expires_in"] == 900
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert f"listening on {url}" in stdout
    for text in ("emulator-client-id", "emulator-client-secret-do-not-use", "analyst@butlr-emulator.example",
                 "https://butlrauth/", "AIRFLOW_CONN_BUTLR_DEFAULT", "site_", "space_", "room_"):  # fmt: skip
        assert text in stdout
    conn_line = next(line for line in stdout.splitlines() if "AIRFLOW_CONN_BUTLR_DEFAULT=" in line)
    conn = json.loads(conn_line.split("=", 1)[1].strip().strip("'"))
    assert conn["host"] == url and conn["conn_type"] == "butlr"


def test_cli_rejects_an_unknown_size() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_butlr.testing", "--size", "huge"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "invalid choice" in result.stderr
