"""The webhook receiver for tests: served by uvicorn on 127.0.0.1 (in a thread, or in another process
as a second replica), its connection, and the metadata-database rows it reads and writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.support.paths import REPO

KEY = "whk-test-key-Vq2Lp8Xr5Tn1Mz6Yc3"  # distinctive: secret scans grep for it
HEADER = "X-Butlr-Webhook-Key"
CONN_ID = "butlr_webhook_default"


def receiver_connection(url: str, org_id: str, **extra: Any) -> str:
    """The receiver's connection as an ``AIRFLOW_CONN_*`` JSON value (API key auth by default)."""
    fields: dict[str, Any] = {
        "conn_type": "generic",
        "host": url,
        "password": extra.pop("password", KEY),
        "extra": {"org_id": org_id, **extra},
    }
    if "login" in extra:
        fields["login"] = fields["extra"].pop("login")
    return json.dumps(fields)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """A receiver being served: ``url`` is its ``POST`` endpoint."""

    url: str
    stop: Any


@contextmanager
def serve_in_thread(app: Any) -> Iterator[Served]:
    """``app`` under uvicorn on a free loopback port, in a background thread."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}/butlr/webhooks", server)
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serve_in_process(env: dict[str, str]) -> Iterator[Served]:
    """A second replica: the receiver in another process, same metadata database and connection."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.webhooks", str(port)],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/butlr/webhooks"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
                assert time.monotonic() < deadline, "the second replica did not start"
                time.sleep(0.05)
        yield Served(url, process)
    finally:
        process.terminate()
        process.wait(10)


def mounted_app() -> Any:
    """The receiver as the api-server mounts it: a FastAPI app with the plugin's app at ``/butlr``."""
    from fastapi import FastAPI

    from airflow_provider_butlr.webhooks.plugin import ButlrWebhooksPlugin

    root = FastAPI()
    [mount] = ButlrWebhooksPlugin.fastapi_apps
    root.mount(mount["url_prefix"], mount["app"])
    return root


def fresh_mounted_app() -> Any:
    """Like :func:`mounted_app`, with a receiver of its own (no cache shared with another)."""
    from fastapi import FastAPI

    from airflow_provider_butlr.webhooks.config import SettingsSource
    from airflow_provider_butlr.webhooks.receiver import create_app
    from airflow_provider_butlr.webhooks.store import AssetRegistry

    root = FastAPI()
    root.mount("/butlr", create_app(SettingsSource(ttl=0.0), AssetRegistry(ttl=0.0)))
    return root


# --- the metadata database ---------------------------------------------------------------------------


def declare_assets(*assets: Any) -> None:
    """Write ``assets`` (``airflow.sdk.Asset``) as active assets, as the DAG processor would."""
    from airflow.models.asset import AssetActive, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        for asset in assets:
            session.add(AssetModel(name=asset.name, uri=asset.uri, group=asset.group, extra=asset.extra))
            session.add(AssetActive(name=asset.name, uri=asset.uri))


def forget_everything() -> None:
    """Remove the assets, their events and the receiver's stream state (each test starts clean)."""
    from airflow.models.asset import AssetActive, AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    quick = {"synchronize_session": False}  # SQLAlchemy 1.4 (Airflow 3.0) cannot evaluate LIKE in Python
    with create_session() as session:
        session.execute(delete(AssetDagRunQueue))
        session.execute(delete(AssetEvent))
        session.execute(
            delete(AssetActive).where(AssetActive.uri.like("butlr://%")).execution_options(**quick)
        )
        session.execute(delete(AssetModel).where(AssetModel.uri.like("butlr://%")).execution_options(**quick))
        session.execute(
            delete(Variable).where(Variable.key.like("butlr_webhook:%")).execution_options(**quick)
        )


def asset_events(uri: str | None = None) -> list[dict[str, Any]]:
    """The recorded asset events (``extra`` of each, oldest first), of one asset or of all."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = select(AssetModel.uri, AssetEvent.extra).join(AssetModel, AssetModel.id == AssetEvent.asset_id)
    if uri is not None:
        query = query.where(AssetModel.uri == uri)
    with create_session() as session:
        return [{"uri": u, **(extra or {})} for u, extra in session.execute(query.order_by(AssetEvent.id))]


def stream_states() -> dict[str, Any]:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(Variable).where(Variable.key.like("butlr_webhook:%"))).all()
        return {row.key: json.loads(row.val) for row in rows}


def event(
    room: str,
    minute: int,
    value: int,
    *,
    org_id: str,
    event_id: str | None = None,
    event_type: str = "ROOM_OCCUPANCY_1MIN",
) -> dict[str, Any]:
    """A Butlr event for ``room`` at ``minute`` (Unix minutes), the emulator's shape."""
    return {
        "id": event_id or f"event_{room[-8:]}{minute}{value}",
        "type": event_type,
        "timestamp": minute * 60_000,
        "version": "v1.0.0",
        "metadata": {
            "org_id": org_id,
            "site_id": "site_2GwebAjANzdYgqmE1JGDwsJeOuS",
            "floor_id": "space_2Gd6QSxsGVBurIdb9lXmW0K1vsp",
            "room_id": room,
            "room_name": "Phone Booth 1.1",
        },
        "data": value,
    }


def _serve_replica(port: int) -> None:
    import uvicorn

    uvicorn.run(fresh_mounted_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    _serve_replica(int(sys.argv[1]))
