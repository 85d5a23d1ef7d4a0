"""The scale check's deployment (issue 27): the emulator, PostgreSQL, Redis and Airflow 3.3 with the
CeleryExecutor: api-server, scheduler, dag-processor and triggerer on a "control host", and N Celery
workers, each standing in for a host of its own (its own ``AIRFLOW_HOME``, token directory and log
server port). Everything listens on 127.0.0.1; every process is a
:class:`~deploycheck.processes.Component` (own session, stopped by process group).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploycheck.airflow_state import AirflowAPI
from deploycheck.processes import Component, free_port
from deployment_check import CheckFailed, fernet_key, tail, wait_for

from scalecheck.metadata import PostgresMetadataDB
from scalecheck.services import Postgres, Redis

REPO = Path(__file__).resolve().parents[2]
SETTINGS_DIR = Path(__file__).resolve().parent / "airflow_settings"  # airflow_local_settings.py
# The emulator's documented default credentials (docs/emulator.md).
CLIENT_ID = "emulator-client-id"
CLIENT_SECRET = "emulator-client-secret-do-not-use"
EXPORT = "butlr_daily_occupancy_export"
REDIS_CONN_ID = "butlr_scale_redis"  # an Airflow Redis connection to the deployment's Redis (db 1)


@dataclass
class Options:
    """What the deployment is given (``scripts/scale_check.py``'s command line)."""

    runs: int
    limit: int  # the server's limit and the connection's max_requests_per_minute
    workers: int = 3
    concurrency: int = 2
    seed: int = 42
    retries: int = 3
    retry_delay: int = 60
    heartbeat_timeout: int = 60
    max_active_runs: int = 0  # 0: as many as runs
    token_cache: str = "host"
    conn_extra: dict[str, Any] = field(default_factory=dict)
    client_limit: bool = True  # the connection's max_requests_per_minute = limit


@dataclass
class Host:
    """A Celery worker standing in for a host: its home, token directory and log server port."""

    name: str
    root: Path
    log_port: int
    starts: int = 0
    component: Component | None = None

    @property
    def home(self) -> Path:
        return self.root / "airflow-home"

    @property
    def token_dir(self) -> Path:
        return self.root / "butlr-tokens"


class ScaleDeployment:
    def __init__(self, work: Path, options: Options) -> None:
        self.work, self.options = work, options
        self.logs = work / "logs"
        self.control = Host("control", work / "control", free_port())  # api-server, scheduler, ...
        self.trigger_log_port = free_port()
        self.exports = work / "exports"
        for folder in (self.logs, self.control.home, self.exports):
            folder.mkdir(parents=True, exist_ok=True)
        self.hosts = [
            Host(f"worker-{i}", work / f"worker-{i}", free_port()) for i in range(1, options.workers + 1)
        ]
        for host in self.hosts:
            host.home.mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.api = AirflowAPI(f"http://127.0.0.1:{self.api_port}")
        self.components: dict[str, Component] = {}
        self.base_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))
        }
        self.postgres = Postgres(work / "postgres", self.logs, self.base_env, REPO)
        self.redis = Redis(work / "redis", self.logs, self.base_env, REPO)
        self.db = PostgresMetadataDB(self.postgres.connect)
        self.emulator_url = ""
        self.admin: Any = None
        self.jwt_secret = secrets.token_urlsafe(64)
        self.fernet_key = fernet_key()

    # --- services ---------------------------------------------------------------------------------
    def start_services(self) -> None:
        self.postgres.init()
        self.components["postgres"] = self.postgres.start()
        self.components["redis"] = self.redis.start()

    def restart_redis(self) -> float:
        down = self.redis.restart()
        assert self.redis.component is not None
        self.components[self.redis.component.name] = self.redis.component
        return down

    def start_emulator(self) -> None:
        ready = self.work / "emulator.url"
        self.start(
            "emulator",
            [
                sys.executable,
                "-m",
                "airflow_provider_butlr.testing",
                "--port",
                "0",
                "--ready-file",
                str(ready),
                "--seed",
                str(self.options.seed),
                "--rate-limit-per-minute",
                str(self.options.limit),
            ],
            self.base_env,
        )
        emulator = self.components["emulator"]
        wait_for(
            "the emulator's ready file", lambda: ready.exists() and ready.read_text().strip(), 30, [emulator]
        )
        self.emulator_url = ready.read_text().strip().splitlines()[0]
        from airflow_provider_butlr.testing import EmulatorAdminClient

        self.admin = EmulatorAdminClient(self.emulator_url)

    # --- environment ------------------------------------------------------------------------------
    def connection(self) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "audience": "https://butlrauth/",
            "auth_type": "client_credentials",
            "token_cache": self.options.token_cache,
        }
        if self.options.client_limit:
            extra["max_requests_per_minute"] = self.options.limit
        extra.update(self.options.conn_extra)
        return {
            "conn_type": "butlr",
            "host": self.emulator_url,
            "login": CLIENT_ID,
            "password": CLIENT_SECRET,
            "extra": extra,
        }

    def env_for(self, host: Host) -> dict[str, str]:
        """Every component's environment: shared settings plus the host's home, tokens and log port."""
        pg = self.postgres
        redis_conn = {
            "conn_type": "redis",
            "host": "127.0.0.1",
            "port": self.redis.port,
            "password": self.redis.password,
            "extra": {"db": 1},
        }
        python_path = os.pathsep.join(
            p for p in (str(SETTINGS_DIR), self.base_env.get("PYTHONPATH", "")) if p
        )
        return {
            **self.base_env,
            "AIRFLOW_HOME": str(host.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            # What a team sets for its tasks (the example DAG sets none): retries, a minute apart.
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": str(self.options.retries),
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": str(self.options.retry_delay),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url(),
            "AIRFLOW__CELERY__BROKER_URL": self.redis.url(0),
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + pg.url("postgresql"),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.options.concurrency),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(host.log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            # A dead worker's tries are failed (and retried) after a minute, not Airflow's 5.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(self.options.heartbeat_timeout),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW_CONN_BUTLR_DEFAULT": json.dumps(self.connection()),
            f"AIRFLOW_CONN_{REDIS_CONN_ID.upper()}": json.dumps(redis_conn),
            "BUTLR_TOKEN_CACHE_DIR": str(host.token_dir),
            "BUTLR_EXPORT_BASE_PATH": str(self.exports),
            "BUTLR_COMPLETENESS_POKE_SECONDS": "5",
            "BUTLR_SCALE_MAX_ACTIVE_RUNS": str(self.options.max_active_runs or self.options.runs),
            "PYTHONPATH": python_path,
            "PYTHONUNBUFFERED": "1",
        }

    # --- components -------------------------------------------------------------------------------
    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Component:
        component = Component(name, argv, self.logs / f"{name}.log", env, REPO)
        self.components[name] = component.start()
        return component

    @staticmethod
    def airflow(*args: str) -> list[str]:
        return [sys.executable, "-m", "airflow", *args]

    def migrate(self) -> None:
        log = self.logs / "db-migrate.log"
        with open(log, "wb") as out:
            code = subprocess.call(
                self.airflow("db", "migrate"),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env_for(self.control),
            )
        if code != 0:
            raise CheckFailed(f"airflow db migrate failed ({code}):\n{tail(log)}")

    def start_airflow(self) -> None:
        env = self.env_for(self.control)
        api = ("--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1")
        self.start("api-server", self.airflow("api-server", *api), env)
        self.start("scheduler", self.airflow("scheduler"), env)
        self.start("dag-processor", self.airflow("dag-processor"), env)
        self.start("triggerer", self.airflow("triggerer"), env)
        for host in self.hosts:
            self.start_worker(host)

    def start_worker(self, host: Host) -> Component:
        host.starts += 1
        name = host.name if host.starts == 1 else f"{host.name}-start{host.starts}"
        argv = self.airflow(
            "celery",
            "worker",
            "--concurrency",
            str(self.options.concurrency),
            "--celery-hostname",
            f"{host.name}@%h",
        )
        host.component = self.start(name, argv, self.env_for(host))
        return host.component

    def control_components(self) -> list[Component]:
        return [self.components[n] for n in ("api-server", "scheduler", "dag-processor", "triggerer")]

    def airflow_components(self) -> list[Component]:
        """The live Airflow components (a killed worker is left out until it runs again)."""
        return self.control_components() + [
            h.component for h in self.hosts if h.component and h.component.running()
        ]

    def worker_of(self, pid: int | None) -> Host | None:
        """The host whose worker session holds ``pid`` (a task process)."""
        for host in self.hosts:
            if pid is not None and host.component is not None and pid in host.component.members():
                return host
        return None

    # --- stopping ---------------------------------------------------------------------------------
    def stop_components(self, names: list[str], grace: float = 20.0) -> list[str]:
        """SIGTERM to each at once, SIGKILL to any session left after ``grace``; answers failures."""
        started = [self.components[n] for n in names if n in self.components]
        started = [c for c in started if c.process is not None and c.members()]
        for component in started:
            component.send(signal.SIGTERM)
        deadline = time.monotonic() + grace
        failures = []
        for component in started:
            if component.wait_gone(max(deadline - time.monotonic(), 0.0)):
                continue
            left = component.kill(signal.SIGKILL, wait=10.0)
            print(f">> {component.name}: SIGKILL to pids {left} (still running after SIGTERM)", flush=True)
            if component.members():
                failures.append(f"{component.name}: pids {component.members()} survived SIGKILL")
        return failures

    def stop_airflow(self) -> list[str]:
        services = {"postgres", "emulator"} | {n for n in self.components if n.startswith("redis")}
        return self.stop_components([n for n in self.components if n not in services])

    def stop_all(self) -> None:
        """Airflow first (it needs its database to stop cleanly), then the emulator, Redis, PostgreSQL."""
        failures = self.stop_airflow()
        failures += self.stop_components(["emulator"])
        try:
            self.redis.stop()
        except RuntimeError as exc:
            failures.append(str(exc))
        try:
            self.postgres.stop()
        except RuntimeError as exc:
            failures.append(str(exc))
        if failures:
            raise CheckFailed("could not stop: " + "; ".join(failures))

    def tails(self, lines: int = 15) -> str:
        """The last lines of every log, the client secret masked (the emulator prints it at start)."""
        text = "\n".join(
            f"--- last {lines} lines of {c.log}\n{c.tail(lines)}" for c in self.components.values()
        )
        return text.replace(CLIENT_SECRET, "***")
