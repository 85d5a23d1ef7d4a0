"""The receiver's side of the metadata database: declared assets, stream state, asset events.

* **Which assets exist.** Airflow records an asset event only for an asset some DAG declares (its REST
  API answers 404 otherwise). :class:`AssetRegistry` reads the active ``butlr://<asset_host>/...``
  assets every few seconds (one query, cached per process) and maps each to a Butlr entity: the
  streams (``.../rooms/<id>/occupancy``, ``occupancy_realtime``, ``traffic``) and the state assets whose
  extra holds a ``butlr_condition`` (``.../rooms/<id>/empty`` with ``{"op": "<=", "threshold": 0,
  "for_minutes": 15}``). An event about an entity nothing declares touches no table.
* **What a stream remembers** (:class:`~airflow_provider_butlr.push.streams.StreamState`, a few KB of
  JSON) is an Airflow Variable ``butlr_webhook:<event type>:<entity id>``, read and written in the same
  transaction as the asset events, with the row locked first (a no-op ``UPDATE``: a row lock on
  PostgreSQL and MySQL, the database write lock on SQLite), so api-server replicas and workers
  serialise on it and a duplicate landing on two replicas at once is recorded once.
* **Asset events** are recorded with ``AssetManager.register_asset_change(asset=, extra=, session=)``:
  the call Airflow's own triggerer makes for asset watchers in 3.0 to 3.3 (``models/trigger.py``), in
  the receiver's transaction. It queues the asset-scheduled DAG runs as every asset event does.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.push.events import STREAMS, WebhookEvent
from airflow_provider_butlr.push.streams import (
    CONDITION_EXTRA_KEY,
    Applied,
    Condition,
    StreamState,
    apply_event,
    horizon_minutes,
)

log = logging.getLogger(__name__)

REGISTRY_TTL_SECONDS = 5.0
STATE_KEY_PREFIX = "butlr_webhook:"
STATE_DESCRIPTION = "Butlr webhook receiver: what this stream has seen (managed by the receiver; do not edit)"
LOCK_STRIPES = 64
RETRIES = 5


@dataclass(frozen=True)
class DeclaredAsset:
    """An active ``butlr://`` asset and what it stands for."""

    id: int
    name: str
    uri: str
    kind: str
    asset_id: str
    state: str
    condition: Condition | None


def parse_asset(asset_id: int, name: str, uri: str, extra: Any, host: str) -> DeclaredAsset | None:
    """The declared asset behind ``uri`` (``butlr://<host>/<kind>/<id>/<state>``), None if it is not one
    the receiver feeds. A state other than a stream needs a valid ``butlr_condition`` in its extra."""
    parts = urlsplit(uri)
    segments = parts.path.strip("/").split("/")
    if parts.scheme != "butlr" or parts.netloc.lower() != host or len(segments) != 3:
        return None
    kind, entity, state = segments[0], unquote(segments[1]), unquote(segments[2])
    if kind not in ("rooms", "zones", "floors") or not entity or not state:
        return None
    raw = extra.get(CONDITION_EXTRA_KEY) if isinstance(extra, Mapping) else None
    if state in STREAMS:
        return DeclaredAsset(asset_id, name, uri, kind, entity, state, None)
    if raw is None:
        return None
    try:
        condition = Condition.from_json(raw, f"asset {name!r}")
    except ButlrConfigurationError as err:
        log.warning("Butlr webhook receiver: %s; the asset is not fed.", err)
        return None
    return DeclaredAsset(asset_id, name, uri, kind, entity, state, condition)


class AssetRegistry:
    """Active ``butlr://<host>/`` assets by (kind, entity id), refreshed every ``ttl`` seconds."""

    def __init__(self, ttl: float = REGISTRY_TTL_SECONDS) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._loaded: dict[str, tuple[float, dict[tuple[str, str], list[DeclaredAsset]]]] = {}

    def lookup(self, host: str, kind: str, entity: str) -> list[DeclaredAsset]:
        with self._lock:
            loaded = self._loaded.get(host)
            if loaded is None or time.monotonic() - loaded[0] > self.ttl:
                loaded = (time.monotonic(), self._load(host))
                self._loaded[host] = loaded
        return loaded[1].get((kind, entity), [])

    def clear(self) -> None:
        with self._lock:
            self._loaded.clear()

    @staticmethod
    def _load(host: str) -> dict[tuple[str, str], list[DeclaredAsset]]:
        from airflow.models.asset import AssetActive, AssetModel
        from airflow.utils.session import create_session
        from sqlalchemy import and_, select

        found: dict[tuple[str, str], list[DeclaredAsset]] = {}
        query = (
            select(AssetModel.id, AssetModel.name, AssetModel.uri, AssetModel.extra)
            .join(AssetActive, and_(AssetActive.name == AssetModel.name, AssetActive.uri == AssetModel.uri))
            .where(AssetModel.uri.like(f"butlr://{host}/%"))
        )
        with create_session() as session:
            for asset_id, name, uri, extra in session.execute(query):
                declared = parse_asset(asset_id, name, uri, extra, host)
                if declared is not None:
                    found.setdefault((declared.kind, declared.asset_id), []).append(declared)
        return found


_stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]


def _lock_for(stream_key: str) -> threading.Lock:
    """The in-process lock of a stream's transaction: one per stream (stripes) where the database
    locks rows, the same for all on SQLite, whose one writer at a time would otherwise make threads
    wait in its busy handler's sleeps (the answer time's tail) instead of in a queue."""
    from airflow import settings

    engine = getattr(settings, "engine", None)
    if engine is not None and engine.dialect.name == "sqlite":
        return _stripes[0]
    return _stripes[hash(stream_key) % LOCK_STRIPES]


def record_event(event: WebhookEvent, declared: list[DeclaredAsset]) -> dict[str, Any]:
    """Apply ``event`` to its stream and record the asset events it causes; the receiver's answer.

    Retried (a few times) when two transactions collide on the stream's row.
    """
    from sqlalchemy.exc import IntegrityError, OperationalError

    streams = [a for a in declared if a.state == event.spec.stream]
    conditions: dict[str, Condition] = {}
    if event.spec.minute_aligned:
        conditions = {a.state: a.condition for a in declared if a.condition is not None}
    if not streams and not conditions:
        return {"status": "ignored", "reason": f"no asset declared for {event.kind}/{event.asset_id}"}
    with _lock_for(event.stream_key):  # threads of this process queue here
        for attempt in range(RETRIES):
            try:
                return _record(event, streams, declared, conditions)
            except (IntegrityError, OperationalError) as err:  # a concurrent first insert, or SQLite busy
                if attempt == RETRIES - 1:
                    raise
                log.info("Butlr webhook receiver: retrying after %s", type(err).__name__)
                time.sleep(0.01 * 2**attempt)
    raise AssertionError("unreachable")


def _record(
    event: WebhookEvent,
    streams: list[DeclaredAsset],
    declared: list[DeclaredAsset],
    conditions: dict[str, Condition],
) -> dict[str, Any]:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    key = STATE_KEY_PREFIX + event.stream_key
    with create_session() as session:
        # lock the stream's row before reading it (no-op write): replicas serialise here
        session.execute(update(Variable).where(Variable.key == key).values(description=Variable.description))
        row = session.scalar(select(Variable).where(Variable.key == key))
        state = StreamState.from_json(_loads(row.val) if row is not None else None)
        applied = apply_event(state, event, conditions, horizon_minutes(conditions))
        if applied.dirty:
            text = json.dumps(state.to_json(), separators=(",", ":"))
            if row is None:
                session.add(Variable(key=key, val=text, description=STATE_DESCRIPTION))
            else:
                row.val = text
            session.flush()
        recorded: list[str] = []
        crossings: list[str] = []
        if applied.changed:
            for asset in streams:
                recorded += _register(session, asset, stream_extra(event, applied))
        for state_name, crossing in applied.crossings:
            for asset in declared:
                if asset.state == state_name and asset.condition is not None:
                    payload = {
                        **crossing.to_payload(
                            asset.kind,
                            asset.condition.op,
                            asset.condition.threshold,
                            asset.condition.for_minutes,
                        ),
                        "source": "butlr_webhook",
                        "event_id": event.event_id,
                        "metadata": dict(event.metadata),
                    }
                    crossings += _register(session, asset, {"from_webhook": True, "payload": payload})
    return {"status": applied.outcome, "asset_events": recorded + crossings, "crossings": crossings}


def _loads(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def stream_extra(event: WebhookEvent, applied: Applied) -> dict[str, Any]:
    """A stream asset event's extra: the event (ids, names, value, time) and whether it revised one."""
    payload = {**event.summary(), "revision": applied.outcome == "revision"}
    if applied.outcome == "revision":
        payload["previous_value"] = applied.previous
    return {"from_webhook": True, "payload": payload}


def _register(session: Any, asset: DeclaredAsset, extra: dict[str, Any]) -> list[str]:
    from airflow.assets.manager import asset_manager
    from airflow.models.asset import AssetModel

    model = session.get(AssetModel, asset.id)
    if model is None:  # removed since the registry was read
        return []
    event = asset_manager.register_asset_change(asset=model, extra=extra, session=session)
    return [asset.uri] if event is not None else []
