"""ButlrOccupancyEventTrigger: start DAGs when a room, floor or zone crosses an occupancy threshold.

For event-driven scheduling (Airflow >= 3.0)::

    Asset("butlr://api.butlr.io/rooms/room_1/empty",
          watchers=[AssetWatcher(name="room_1_empty",
                                 trigger=ButlrOccupancyEventTrigger(rooms=["room_1"], op="<=", threshold=0,
                                                                    for_minutes=15))])

Every ``poll_interval`` it reads the latest ``window_minutes`` of 1-minute occupancy and fires one
event per *crossing*: a streak of minutes satisfying ``occupancy <op> threshold`` that has lasted
``for_minutes`` (see :mod:`airflow_provider_butlr.polling.occupancy`). While the condition stays
true, the same streak is found again and not fired again; the next crossing needs a minute that
breaks the streak first.

Restarts: the triggerer re-creates the trigger from its kwargs. A crossing is identified by its
first minute *in the data*, and the trigger keeps a ledger per asset (data times): when it first
saw the asset's data ("armed": a condition already met then is no event) and the last crossing it
fired. With Airflow 3.3's asset state store (the triggerer gives event triggers one) the ledger is
stored there: no duplicate across restarts, and a crossing that completed while the triggerer was
down still fires if its first minute is inside the window. Without a store (Airflow < 3.3, or a
trigger shared by several assets) the ledger is in memory: a re-created trigger re-arms on its
first poll, so it never fires a crossing twice, but one completed during the downtime is lost.
The ledger is saved before the event is yielded: at most once.

Several watchers with the same ``site`` (and connection, kind, source, window and interval) share
one poll of that site's assets on Airflow >= 3.3 (``shared_stream_key``); each fires only for its
own ids. Without ``site``, or on older Airflow, each trigger polls its own ids.

No hot loop: the trigger sleeps ``poll_interval`` after every poll, failed ones included; errors
are logged and polling goes on (an event trigger has no task to fail).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Hashable, Mapping, Sequence
from typing import Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.hooks.butlr_async import ButlrAsyncHook
from airflow_provider_butlr.hooks.options import ClientOptions
from airflow_provider_butlr.hooks.shared_polls import Poller, open_poller
from airflow_provider_butlr.polling.answers import COMPARATORS
from airflow_provider_butlr.polling.occupancy import (
    CrossingLedger,
    OccupancyWatch,
    find_crossing,
    ledger_key,
)
from airflow_provider_butlr.polling.plans import PollPlan
from airflow_provider_butlr.polling.sharing import aligned_wait
from airflow_provider_butlr.triggers.events import MAX_POLL_INTERVAL
from airflow_provider_butlr.triggers.failures import describe_failure

try:  # Airflow >= 3.0 (event-driven scheduling); the import guard keeps the module importable
    from airflow.triggers.base import BaseEventTrigger, TriggerEvent
except ImportError:  # pragma: no cover - every supported Airflow has it
    from airflow.triggers.base import BaseTrigger as BaseEventTrigger  # type: ignore[assignment]
    from airflow.triggers.base import TriggerEvent

ASSET_KINDS = ("rooms", "floors", "zones")
TOPOLOGY_REFRESH_SECONDS = 3600.0


def _selected(rooms: Any, floors: Any, zones: Any) -> tuple[str, tuple[str, ...]]:
    given = {k: v for k, v in (("rooms", rooms), ("floors", floors), ("zones", zones)) if v}
    if len(given) != 1:
        raise ButlrConfigurationError(
            f"give exactly one of rooms, floors, zones (got {', '.join(given) or 'none'})"
        )
    kind, ids = next(iter(given.items()))
    values = [ids] if isinstance(ids, str) else list(ids)
    if not all(isinstance(i, str) and i.strip() for i in values):
        raise ButlrConfigurationError(f"{kind} must be a list of Butlr ids, got {ids!r}")
    return kind, tuple(dict.fromkeys(values))


class ButlrOccupancyEventTrigger(BaseEventTrigger):
    """Fire once per crossing of ``occupancy <op> threshold`` lasting ``for_minutes``, per asset.

    :param rooms: room ids; or ``floors``, or ``zones`` (exactly one).
    :param op: ``<``, ``<=``, ``==``, ``!=``, ``>=``, ``>`` (``<=`` with ``threshold=0``: empty).
    :param threshold: the occupancy (people) to compare with.
    :param for_minutes: how long the condition must hold before the event fires.
    :param source: ``presence`` (default), ``traffic`` or ``auto`` (the higher of the two).
    :param window_minutes: minutes of data read per poll; must exceed ``for_minutes`` by at least 5
        (a crossing's first minute must be inside the window) plus Butlr's data delay.
    :param site: the site of the ids: watchers of one site share one poll (Airflow >= 3.3).
    :param poll_interval: seconds between polls (also after a failed one).
    :param butlr_conn_id: the ``butlr`` connection.

    Event payload: ``asset_id``, ``kind``, ``condition``, ``crossed_at`` (first minute of the
    streak), ``qualified_at``, ``last_minute``, ``occupancy`` (in the last minute), ``polls``.
    """

    def __init__(
        self,
        *,
        rooms: Sequence[str] | None = None,
        floors: Sequence[str] | None = None,
        zones: Sequence[str] | None = None,
        op: str = "<=",
        threshold: float = 0,
        for_minutes: int = 15,
        source: str = "presence",
        window_minutes: int = 60,
        site: str | None = None,
        poll_interval: float = 60.0,
        butlr_conn_id: str = ButlrAsyncHook.default_conn_name,
        max_ids_per_request: int | None = None,
        max_retries: int | None = None,
        retry_wait_initial: float = 0.5,
        retry_wait_max: float = 30.0,
    ) -> None:
        super().__init__()
        self.kind, self.ids = _selected(rooms, floors, zones)
        if op not in COMPARATORS:
            raise ButlrConfigurationError(f"op {op!r} is not one of {', '.join(COMPARATORS)}")
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not math.isfinite(threshold)
        ):
            raise ButlrConfigurationError(f"threshold must be a finite number, got {threshold!r}")
        if isinstance(for_minutes, bool) or not isinstance(for_minutes, int) or for_minutes < 1:
            raise ButlrConfigurationError(f"for_minutes must be a whole number >= 1, got {for_minutes!r}")
        self.watch = OccupancyWatch(
            self.kind, self.ids, source, window_minutes, max_ids_per_request
        ).validate()
        if window_minutes < for_minutes + 5:
            raise ButlrConfigurationError(
                f"window_minutes ({window_minutes}) must be at least for_minutes + 5 ({for_minutes + 5}): "
                "a crossing's first minute must be inside the window"
            )
        if (
            isinstance(poll_interval, bool)
            or not isinstance(poll_interval, (int, float))
            or not 0 < poll_interval <= MAX_POLL_INTERVAL
        ):
            raise ButlrConfigurationError(
                f"poll_interval must be above 0 and at most {MAX_POLL_INTERVAL:g} seconds, got {poll_interval!r}"
            )
        if site is not None and (not isinstance(site, str) or not site.strip()):
            raise ButlrConfigurationError(f"site must be a Butlr site id or None, got {site!r}")
        self.op, self.threshold, self.for_minutes = op, float(threshold), for_minutes
        self.source, self.window_minutes, self.site = source, window_minutes, site
        self.poll_interval = float(poll_interval)
        self.butlr_conn_id = butlr_conn_id
        self.max_ids_per_request = max_ids_per_request
        self.max_retries = max_retries
        self.retry_wait_initial, self.retry_wait_max = retry_wait_initial, retry_wait_max
        self.polls = 0
        self._poller: Poller | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                self.kind: list(self.ids),
                "op": self.op,
                "threshold": self.threshold,
                "for_minutes": self.for_minutes,
                "source": self.source,
                "window_minutes": self.window_minutes,
                "site": self.site,
                "poll_interval": self.poll_interval,
                "butlr_conn_id": self.butlr_conn_id,
                "max_ids_per_request": self.max_ids_per_request,
                "max_retries": self.max_retries,
                "retry_wait_initial": self.retry_wait_initial,
                "retry_wait_max": self.retry_wait_max,
            },
        )

    # --- the ledger of fired crossings ---------------------------------------------------------

    @property
    def ledger_key(self) -> str:
        return ledger_key(
            {
                "kind": self.kind,
                "ids": list(self.ids),
                "op": self.op,
                "threshold": self.threshold,
                "for_minutes": self.for_minutes,
                "source": self.source,
            }
        )

    def _state_store(self) -> Any:
        """Airflow 3.3's asset state store of the watched asset, when the triggerer set one."""
        return getattr(self, "asset_state_store", None)

    async def load_ledger(self) -> CrossingLedger:
        """The ledger from the asset state store, else a new (empty) one."""
        store = self._state_store()
        if store is None:
            return CrossingLedger()
        try:
            return CrossingLedger.from_json(await store.aget(self.ledger_key)) or CrossingLedger()
        except Exception as exc:  # e.g. one trigger watched by several assets: no single store
            self.log.warning(
                "Asset state store unusable (%s); the ledger stays in memory.", describe_failure(exc)
            )
            return CrossingLedger()

    async def save_ledger(self, ledger: CrossingLedger) -> None:
        store = self._state_store()
        if store is None:
            return
        try:
            await store.aset(self.ledger_key, ledger.to_json())
        except Exception as exc:
            self.log.warning("Could not save the crossing ledger: %s", describe_failure(exc))

    async def _events(
        self, minutes: Mapping[str, list[tuple[float, float]]], ledger: CrossingLedger
    ) -> AsyncIterator[TriggerEvent]:
        """The events of one poll's data: new crossings only, saved in the ledger before they are yielded."""
        before = ledger.to_json()
        fired = []
        for asset in self.ids:
            series = minutes.get(asset, [])
            crossing = find_crossing(asset, series, self.op, self.threshold, self.for_minutes)
            if ledger.observe(asset, series, crossing) and crossing is not None:
                fired.append(crossing)
        if ledger.to_json() != before:
            await self.save_ledger(ledger)
        for crossing in fired:
            payload = crossing.to_payload(self.kind, self.op, self.threshold, self.for_minutes)
            self.log.info(
                "Butlr occupancy crossing: %s %s since %s.",
                crossing.asset_id,
                payload["condition"],
                payload["crossed_at"],
            )
            yield TriggerEvent({**payload, "polls": self.polls})

    # --- standalone poll loop ------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll this trigger's own ids forever, on the clock grid of ``poll_interval``: its requests
        are shared with the other triggers of this triggerer that poll at the same moments
        (:mod:`~airflow_provider_butlr.hooks.shared_polls`). It sleeps after every poll."""
        ledger = await self.load_ledger()
        plan = PollPlan(self.watch.requests(), [])
        poller: Poller | None = None
        try:
            while True:
                self.polls += 1
                try:
                    if poller is None:
                        poller = self._poller = await open_poller(
                            self.butlr_conn_id, _hook_params(self.serialize()[1])
                        )
                    _, responses = await poller.apoll(plan, time.time())
                except Exception as exc:
                    self.log.warning("Butlr occupancy poll %d failed: %s", self.polls, describe_failure(exc))
                else:
                    async for event in self._events(self.watch.minutes(responses), ledger):
                        yield event
                await asyncio.sleep(aligned_wait(time.time(), self.poll_interval))
        finally:
            self._poller = None
            if poller is not None:
                await poller.aclose()

    async def cleanup(self) -> None:
        """Release the httpx client (or this trigger's part of the shared one) on every exit."""
        poller, self._poller = self._poller, None
        if poller is not None:
            await poller.aclose()

    # --- one poll shared by the watchers of a site (Airflow >= 3.3) ------------------------------

    def shared_stream_key(self) -> Hashable | None:
        """Watchers of the same site, connection, kind, source, window and interval share one poll."""
        if self.site is None:
            return None
        return (
            "butlr-occupancy",
            self.butlr_conn_id,
            self.site,
            self.kind,
            self.source,
            self.window_minutes,
            self.poll_interval,
            self.max_ids_per_request,
        )

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """Poll every ``kind`` asset of the site; yield ``{"minutes", "ids", "error"}`` per poll, forever.

        Errors are yielded (and polling goes on) rather than raised: a raise would end every
        sibling watcher.
        """
        kind = next(k for k in ASSET_KINDS if kwargs.get(k))
        poll_interval = float(kwargs["poll_interval"])
        hook = ButlrAsyncHook(
            kwargs.get("butlr_conn_id", ButlrAsyncHook.default_conn_name), **_hook_params(kwargs)
        )
        watch: OccupancyWatch | None = None
        resolved_at = 0.0
        try:
            while True:
                snapshot: dict[str, Any] = {"minutes": {}, "ids": [], "error": None}
                try:
                    if not hook.is_open:
                        await hook.__aenter__()
                    if watch is None or time.time() - resolved_at > TOPOLOGY_REFRESH_SECONDS:
                        ids = await site_assets(hook, kwargs["site"], kind)
                        watch = OccupancyWatch(
                            kind,
                            tuple(ids),
                            kwargs.get("source", "presence"),
                            int(kwargs.get("window_minutes", 60)),
                            kwargs.get("max_ids_per_request"),
                        ).validate()
                        resolved_at = time.time()
                    _, responses = await hook.apoll(PollPlan(watch.requests(), []), time.time())
                    snapshot = {"minutes": watch.minutes(responses), "ids": list(watch.ids), "error": None}
                except Exception as exc:
                    snapshot["error"] = describe_failure(exc)
                yield snapshot
                await asyncio.sleep(poll_interval)
        finally:
            await hook.aclose()

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """This watcher's crossings in the site's shared polls."""
        ledger = await self.load_ledger()
        warned = False
        async for snapshot in shared_stream:
            self.polls += 1
            if snapshot.get("error"):
                self.log.warning("Butlr shared occupancy poll failed: %s", snapshot["error"])
                continue
            missing = [i for i in self.ids if i not in snapshot.get("ids", [])]
            if missing and not warned:
                warned = True
                self.log.warning(
                    "%s %s are not in site %s: never polled.", self.kind, ", ".join(missing), self.site
                )
            async for event in self._events(snapshot.get("minutes", {}), ledger):
                yield event


def _hook_params(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The async hook's options from the trigger's kwargs (retries and their waits)."""
    return ClientOptions(
        max_retries=kwargs.get("max_retries"),
        retry_wait_initial=kwargs.get("retry_wait_initial", 0.5),
        retry_wait_max=kwargs.get("retry_wait_max", 30.0),
    ).as_hook_params()


async def site_assets(hook: ButlrAsyncHook, site: str, kind: str) -> list[str]:
    """The site's floors, rooms or zones (from the topology), refusing an unknown or empty site."""
    topology = await hook.aget_topology()
    ids = topology.assets_in([site], (kind,))[kind]
    if not ids:
        raise ButlrConfigurationError(f"site {site!r} has no {kind}")
    return ids
