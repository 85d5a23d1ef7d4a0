"""The webhook receiver: a small FastAPI app that Airflow's api-server mounts at ``/butlr``.

``POST /butlr/webhooks`` takes one Butlr event per request (butlr-api.md §5.3), in this order, and
stops at the first refusal without recording anything:

====  ====================================================================================
401   missing or wrong credentials (API-key header or basic auth, compared in constant time);
      the body is not read
413   a body over ``max_body_bytes`` (announced or streamed); 415 not JSON, or content-encoded
400   not JSON (or nested absurdly deep); 422 not a Butlr event, or an unknown event type
403   an event of another organisation than the connection's ``extra.org_id``
503   the receiver's connection is missing or invalid, or the database is unavailable (Butlr retries)
====  ====================================================================================

An accepted event is answered ``200`` once its effect is committed: ``recorded`` (``new`` or
``revision``, with the asset events it caused), ``duplicate``, ``stale``, or ``202 ignored`` when no DAG
declares an asset for it (nothing is written then). The database work (a few milliseconds) runs in
the thread pool, never on the api-server's event loop. Refusals are logged at WARNING at most once a
minute per reason (with a count), never with a header or body value.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from airflow_provider_butlr.common.jsondecode import decode_json
from airflow_provider_butlr.push.events import WebhookRejected, parse_event
from airflow_provider_butlr.push.receiver import ReceiverSettings, authenticate
from airflow_provider_butlr.webhooks.config import SettingsSource
from airflow_provider_butlr.webhooks.store import AssetRegistry, record_event

log = logging.getLogger(__name__)

PATH = "/webhooks"
JSON_TYPES = ("application/json",)
REFUSAL_LOG_INTERVAL = 60.0


class RefusalLog:
    """One WARNING per reason and interval, with how many requests were refused since the last one."""

    def __init__(self, interval: float = REFUSAL_LOG_INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def refused(self, status: int, reason: str) -> None:
        key = f"{status} {reason}"
        now = time.monotonic()
        with self._lock:
            self._count[key] = self._count.get(key, 0) + 1
            if now - self._last.get(key, -self.interval) < self.interval:
                return
            count, self._count[key], self._last[key] = self._count[key], 0, now
        log.warning("Butlr webhook receiver refused %d request(s) with %d: %s", count, status, reason)


def create_app(
    source: SettingsSource | None = None,
    registry: AssetRegistry | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The receiver app (mounted by the plugin at ``/butlr``; tests serve it with uvicorn)."""
    source = source or SettingsSource()
    registry = registry or AssetRegistry()
    refusals = RefusalLog()
    app = FastAPI(title="Butlr webhook receiver", docs_url=None, redoc_url=None, openapi_url=None)

    def answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
        return JSONResponse(body, status_code=status, headers=headers)

    def refuse(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
        refusals.refused(status, reason)
        return answer(status, {"error": reason}, headers)

    def handle(settings: ReceiverSettings, body: bytes) -> Response:
        try:
            payload = decode_json(body)
        except Exception:
            return refuse(400, "the body is not valid JSON")
        try:
            event = parse_event(payload, org_id=settings.org_id, now_ms=int(clock() * 1000))
        except WebhookRejected as err:
            return refuse(err.status, err.message)
        if not event.recorded or event.kind is None or event.asset_id is None:
            return answer(202, {"status": "ignored", "reason": f"{event.event_type} events are not recorded"})
        declared = registry.lookup(settings.asset_host, event.kind, event.asset_id)
        result = record_event(event, declared)
        if result.get("asset_events"):  # INFO for state changes (crossings); stream events at DEBUG
            level = logging.INFO if result.get("crossings") else logging.DEBUG
            log.log(
                level,
                "Butlr webhook %s: asset events %s",
                event.event_type,
                ", ".join(result["asset_events"]),
            )
        return answer(202 if result["status"] == "ignored" else 200, result)

    @app.post(PATH)
    async def receive(request: Request) -> Response:
        cached = source.cached()
        loaded = cached if cached is not None else await run_in_threadpool(source.load)
        settings = loaded.settings
        if settings is None:
            return refuse(
                503, "the receiver is not configured (its Airflow connection is missing or invalid)"
            )
        if not authenticate(settings.auth, request.headers):
            challenge = (
                {"WWW-Authenticate": 'Basic realm="butlr-webhooks"'}
                if settings.auth.kind == "basic"
                else None
            )
            return refuse(401, "missing or wrong credentials", challenge)
        limit = settings.max_body_bytes
        declared_length = request.headers.get("content-length")
        if declared_length is not None and (not declared_length.isdigit() or int(declared_length) > limit):
            return refuse(413, f"the body is larger than {limit} bytes")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if content_type not in JSON_TYPES or encoding != "identity":
            return refuse(415, "the body must be application/json, not content-encoded")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return refuse(413, f"the body is larger than {limit} bytes")
            chunks.append(chunk)
        try:
            return await run_in_threadpool(handle, settings, b"".join(chunks))
        except Exception as err:  # the database is unavailable: Butlr retries a 503
            log.warning(
                "Butlr webhook receiver could not record an event: %s: %.200s", type(err).__name__, err
            )
            return answer(503, {"error": "the event could not be recorded now; retry"})

    return app
