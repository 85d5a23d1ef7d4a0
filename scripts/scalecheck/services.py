"""The deployment's Redis broker and PostgreSQL metadata database: installed from Debian's packages
when missing, run by the harness in its work directory on free loopback ports, each a
:class:`~deploycheck.processes.Component` (its own session, stopped by process group).

PostgreSQL refuses to run as root: when the harness is root, the cluster belongs to the ``postgres``
user (Debian's package creates it) and runs under ``setpriv``, which executes it directly (no
intermediate process that could outlive a signal).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from deploycheck.processes import Component, free_port

# Debian's redis.conf defaults for snapshots: a graceful restart (SIGTERM) saves the data first.
REDIS_SAVE = "3600 1 300 100 60 10000"


def apt_install(*packages: str) -> None:
    """``apt-get install`` (root only): what a fresh Debian machine lacks."""
    if os.geteuid() != 0:
        raise RuntimeError(
            f"missing {', '.join(packages)}: install them (apt-get install {' '.join(packages)})"
        )
    print(f">> apt-get install -y {' '.join(packages)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *packages], check=True, env=env, stdout=subprocess.DEVNULL
    )


def redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None:
        apt_install("redis-server")
        found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server is still missing after apt-get install redis-server")
    return found


def postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` (Debian's layout), installed when absent."""

    def newest() -> Path | None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
        return Path(found[-1]).parent if found else None

    found = newest()
    if found is None:
        apt_install("postgresql")
        # Debian's package creates and starts a cluster "main": this check does not use it.
        for cluster in subprocess.run(
            ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False
        ).stdout.splitlines():
            version, name = cluster.split()[:2]
            subprocess.run(["pg_ctlcluster", version, name, "stop"], check=False)
        found = newest()
    if found is None:
        raise RuntimeError("no PostgreSQL under /usr/lib/postgresql/*/bin after apt-get install postgresql")
    return found


class Redis:
    """A Redis server with a password, snapshots on shutdown, uncompressed (scannable) dumps."""

    def __init__(self, folder: Path, logs: Path, env: Mapping[str, str], cwd: Path) -> None:
        self.folder, self.logs, self.env, self.cwd = folder, logs, dict(env), cwd
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = secrets.token_urlsafe(24)
        self.starts = 0
        self.component: Component | None = None
        self.conf = folder / "redis.conf"
        self.conf.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    "protected-mode yes",
                    "daemonize no",
                    'logfile ""',
                    f"dir {folder}",
                    "dbfilename dump.rdb",
                    f"save {REDIS_SAVE}",
                    "rdbcompression no",  # the secret scan reads the dump's bytes
                    f"requirepass {self.password}",
                    "",
                ]
            )
        )
        self.conf.chmod(0o600)

    def url(self, db: int = 0) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    def start(self) -> Component:
        self.starts += 1
        name = "redis" if self.starts == 1 else f"redis-{self.starts}"
        self.component = Component(
            name, [redis_server(), str(self.conf)], self.logs / f"{name}.log", self.env, self.cwd
        )
        self.component.start()
        self.wait_ready()
        return self.component

    def client(self):  # type: ignore[no-untyped-def]  # redis.Redis (the package has no stubs here)
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.client().ping():
                    return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis on port {self.port} not ready after {timeout:.0f} s: {exc}"
                    ) from exc
            if self.component is not None and not self.component.running():
                raise RuntimeError(f"redis exited:\n{self.component.tail(20)}")
            time.sleep(0.2)

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM: Redis saves its snapshot and exits (its graceful shutdown)."""
        if self.component is not None:
            self.component.stop(grace)

    def restart(self) -> float:
        """A graceful restart on the same port and data; answers the seconds it was down."""
        started = time.monotonic()
        self.stop()
        self.start()
        return time.monotonic() - started

    def dump(self) -> Path:
        """A fresh snapshot of every key (``SAVE``), for the secret scan."""
        self.client().save()
        return self.folder / "dump.rdb"


class Postgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1 with one password-protected database."""

    def __init__(self, folder: Path, logs: Path, env: Mapping[str, str], cwd: Path) -> None:
        self.folder, self.logs, self.env, self.cwd = folder, logs, dict(env), cwd
        self.bin = postgres_bin()
        self.port = free_port()
        self.user = self.database = "airflow"
        self.password = secrets.token_urlsafe(24)
        self.data = folder / "data"
        self.component: Component | None = None
        self.run_as = "postgres" if os.geteuid() == 0 else None

    def _as_owner(self, *argv: str) -> list[str]:
        if self.run_as is None:
            return list(argv)
        return ["setpriv", f"--reuid={self.run_as}", f"--regid={self.run_as}", "--init-groups", *argv]

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        password_file = self.folder / "pwfile"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        if self.run_as is not None:
            owner = pwd.getpwnam(self.run_as)
            for path in (self.folder, password_file):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            self.folder.chmod(0o700)
            parent = self.folder.parent  # the owner must reach its folder through the work dir
            parent.chmod(parent.stat().st_mode | 0o111)
        log = self.logs / "postgres-initdb.log"
        with open(log, "wb") as out:
            code = subprocess.call(
                self._as_owner(
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    self.user,
                    "--auth=scram-sha-256",
                    f"--pwfile={password_file}",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd="/",
            )
        password_file.unlink()
        if code != 0:
            raise RuntimeError(f"initdb failed ({code}): see {log}")

    def start(self) -> Component:
        argv = self._as_owner(
            str(self.bin / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.folder}",
            "-c",
            "max_connections=300",
            "-c",
            "fsync=off",  # a throw-away cluster: no durability needed, less disk wait
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        )
        self.component = Component("postgres", argv, self.logs / "postgres.log", self.env, Path("/"))
        self.component.start()
        self.wait_ready()
        self.create_database()
        return self.component

    def url(self, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def connect(self, dbname: str | None = None):  # type: ignore[no-untyped-def]  # psycopg.Connection
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname or self.database,
            autocommit=True,
            connect_timeout=5,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.connect("postgres").close()
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres on port {self.port} not ready after {timeout:.0f} s: {exc}"
                    ) from exc
            if self.component is not None and not self.component.running():
                raise RuntimeError(f"postgres exited:\n{self.component.tail(20)}")
            time.sleep(0.3)

    def create_database(self) -> None:
        with self.connect("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def dump(self, target: Path) -> Path:
        """``pg_dump`` of the metadata database (plain SQL), for the secret scan."""
        env = {**self.env, "PGPASSWORD": self.password}
        with open(target, "wb") as out:
            subprocess.run(
                [
                    str(self.bin / "pg_dump"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    self.user,
                    "--no-owner",
                    self.database,
                ],
                stdout=out,
                check=True,
                env=env,
            )
        return target

    def stop(self, grace: float = 30.0) -> None:
        """SIGINT: PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave)."""
        component = self.component
        if component is None or component.process is None:
            return
        if component.members():
            component.send(signal.SIGINT)
            if not component.wait_gone(grace):
                component.kill(signal.SIGKILL, wait=10.0)
        component.stop(grace=5.0)
