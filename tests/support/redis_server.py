"""A real ``redis-server`` for the tests of the Redis backend, on a free loopback port.

Started by the tests themselves (``redis-server`` from Debian: ``apt-get install redis-server``),
with a random password, no persistence and ``bind 127.0.0.1``. A test that needs it is skipped,
naming the reason, only when the binary is missing or the server does not start.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REDIS_SERVER = "redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process; :meth:`restart` keeps its port and password (a broker restart)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = shutil.which(REDIS_SERVER)
        if binary is None:
            pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--requirepass", self.password,
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.skip(f"redis-server exited at start (code {self.process.returncode})")
            try:
                if self.client().ping():
                    return self
            except Exception:  # not listening yet
                time.sleep(0.05)
        self.stop()
        pytest.skip("redis-server did not answer PING within 10 s")
        raise AssertionError("unreachable")

    def client(self, db: int = 0) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, db=db, socket_timeout=2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def connection_json(self, db: int = 1) -> str:
        """The server as an Airflow ``redis`` connection (``AIRFLOW_CONN_<ID>``)."""
        return json.dumps(
            {
                "conn_type": "redis",
                "host": "127.0.0.1",
                "port": self.port,
                "password": self.password,
                "extra": {"db": db},
            }
        )


@contextmanager
def running_redis(workdir: Path) -> Iterator[RedisServer]:
    pytest.importorskip("redis", reason="the redis client (airflow-provider-butlr[redis]) is not installed")
    server = RedisServer(workdir).start()
    try:
        yield server
    finally:
        server.stop()
