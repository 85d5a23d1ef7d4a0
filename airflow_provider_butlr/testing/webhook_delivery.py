"""Webhook delivery: a background thread POSTs the events of every active subscription on the emulator clock.

Each pass emits, per subscription, the minutes completed since its last pass (at most
``webhook_max_catchup_minutes``; a jump back in time emits nothing until time passes again), then
retries failed deliveries that are due. A delivery that fails with a network error, a timeout, 408, 429
or 5xx is retried ``webhook_retries`` times after ``webhook_retry_backoff`` x 2^n real seconds; any other
answer is final. Butlr publishes no retry policy: this one is the emulator's assumption. Every attempt
is recorded (``deliveries()``, the admin API); :meth:`WebhookDeliverer.deliver_now` runs a pass at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from airflow_provider_butlr.testing.clock import EmulatorClock
from airflow_provider_butlr.testing.graphql.webhooks import WebhookStore
from airflow_provider_butlr.testing.org.model import Organization
from airflow_provider_butlr.testing.timeseries.timeutils import MINUTE, format_rfc3339
from airflow_provider_butlr.testing.webhook_events import (
    Event,
    EventCatalog,
    SubscriptionState,
    Untidiness,
    plan_minute,
)
from airflow_provider_butlr.testing.webhook_outbound import Outcome, auth_headers, post_json, shown_url

log = logging.getLogger("airflow_provider_butlr.testing.webhooks")
LOG_SIZE = 20_000  # delivery records kept (oldest dropped first); totals are kept for all


class DeliverySettings(Protocol):
    """The ``webhook_*`` fields of :class:`~airflow_provider_butlr.testing.config.EmulatorConfig`."""

    seed: int
    webhook_auto_delivery: bool
    webhook_allow_remote: bool
    webhook_timeout: float
    webhook_retries: int
    webhook_retry_backoff: float
    webhook_max_catchup_minutes: int
    webhook_lookback_minutes: int
    webhook_revision_rate: float
    webhook_duplicate_rate: float
    webhook_shuffle: bool


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _minute(minute: int) -> str:
    return format_rfc3339(minute * MINUTE)


@dataclass
class _Retry:
    due: float  # time.monotonic()
    record: dict[str, Any]
    payload: Any


class WebhookDeliverer:
    """Delivers the subscriptions of one :class:`WebhookStore`; thread-safe; ``start`` / ``stop``."""

    def __init__(
        self,
        store: WebhookStore,
        org: Organization,
        clock: EmulatorClock,
        settings: Callable[[], DeliverySettings],
    ) -> None:
        self.store = store
        self.org = org
        self.clock = clock
        self.settings = settings
        self._catalog: EventCatalog | None = None
        self._states: dict[str, SubscriptionState] = {}
        self._retries: list[_Retry] = []
        self._records: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
        self._totals: dict[str, Counter[str]] = {}
        self._next_id = 1
        self._pass_lock = threading.Lock()  # one pass at a time (thread or deliver_now)
        self._lock = threading.Lock()  # records and totals
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._abort = threading.Event()  # reset(): the pass under way stops early
        self._thread: threading.Thread | None = None
        clock.add_listener(self._wake.set)

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="butlr-emulator-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        self._wake.set()
        if thread is not None:
            thread.join(timeout)

    def wake(self) -> None:
        """Run a pass soon (a subscription changed, the clock moved)."""
        self._wake.set()

    def reset(self) -> None:
        """Forget streams, pending retries and records (subscriptions live in the store).

        A pass under way stops at its next event instead of finishing (a slow receiver would hold it up).
        """
        self._abort.set()
        try:
            with self._pass_lock, self._lock:
                self._states.clear()
                self._retries.clear()
                self._records.clear()
                self._totals.clear()
        finally:
            self._abort.clear()

    def _aborted(self) -> bool:
        return self._stop.is_set() or self._abort.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._sleep_time())
            self._wake.clear()
            if self._stop.is_set():
                break
            if self.settings().webhook_auto_delivery:
                try:
                    self.run_pass()
                except Exception:  # the thread must survive anything a pass meets
                    log.exception("Butlr emulator: webhook delivery pass failed")

    def _sleep_time(self) -> float:
        """Until the next minute boundary of a ticking clock or the next retry, at most a second."""
        wait = 1.0
        if not self.clock.frozen:
            wait = min(wait, MINUTE - self.clock.timestamp() % MINUTE + 0.01)
        with self._lock:
            if self._retries:
                wait = min(wait, max(0.0, min(r.due for r in self._retries) - time.monotonic()))
        return max(wait, 0.01)

    # --- passes ----------------------------------------------------------------------------------
    def run_pass(self, *, flush_retries: bool = False, webhook_id: str | None = None) -> list[dict[str, Any]]:
        """Emit the minutes completed so far and the due retries (all with ``flush_retries``); the records."""
        with self._pass_lock:
            settings = self.settings()
            touched: list[dict[str, Any]] = []
            now_minute = int(self.clock.timestamp() // MINUTE)
            hooks = {h["id"]: h for h in self.store.all() if h.get("status", True)}
            for stale in set(self._states) - set(hooks):
                del self._states[stale]
            for hook in hooks.values():
                if webhook_id is None or hook["id"] == webhook_id:
                    touched += self._emit(hook, now_minute, settings)
            retried = self._retry(hooks, settings, flush_retries, webhook_id)
            while flush_retries and retried:  # deliver now: every retry at once, until none is left
                touched += retried
                retried = self._retry(hooks, settings, flush_retries, webhook_id)
            touched += retried
            with self._lock:  # each record once, in its final state
                return [dict(r) for r in {r["id"]: r for r in touched}.values()]

    def deliver_now(self, webhook_id: str | None = None, resend_minutes: int = 0) -> list[dict[str, Any]]:
        """A pass now, every pending retry included; ``resend_minutes`` re-emits that many completed minutes."""
        if resend_minutes > 0:
            with self._pass_lock:
                for hook_id, state in self._states.items():
                    if webhook_id is None or hook_id == webhook_id:
                        state.next_minute = max(state.start_minute, state.next_minute - resend_minutes)
                        state.last_data.clear()
        return self.run_pass(flush_retries=True, webhook_id=webhook_id)

    def _state(self, hook: dict[str, Any], now_minute: int) -> SubscriptionState:
        state = self._states.get(hook["id"])
        if state is None:
            created = int(hook.get("_created_at", self.clock.timestamp()) // MINUTE)
            state = self._states[hook["id"]] = SubscriptionState(next_minute=created, start_minute=created)
        if state.next_minute > now_minute:  # the clock went back: wait until time passes again
            state.next_minute = state.start_minute = now_minute
        return state

    def _emit(
        self, hook: dict[str, Any], now_minute: int, settings: DeliverySettings
    ) -> list[dict[str, Any]]:
        state = self._state(hook, now_minute)
        catchup = max(1, settings.webhook_max_catchup_minutes)
        if now_minute - state.next_minute > catchup:
            state.skipped_minutes += now_minute - catchup - state.next_minute
            state.next_minute = state.start_minute = now_minute - catchup
        untidy = Untidiness(
            settings.webhook_lookback_minutes,
            settings.webhook_revision_rate,
            settings.webhook_duplicate_rate,
            settings.webhook_shuffle,
        )
        records: list[dict[str, Any]] = []
        for minute in range(state.next_minute, now_minute):
            sent: list[dict[str, Any]] = []
            for event in plan_minute(self._events(settings.seed), hook, minute, state, untidy):
                if self._aborted():
                    return records + sent
                sent.append(self._send(hook, event, settings))
            state.next_minute = minute + 1
            if sent:
                outcomes = Counter(r["status"] for r in sent)
                log.info(
                    "webhook %s minute %s: %s", hook["id"], _minute(minute), dict(sorted(outcomes.items()))
                )
            records += sent
        return records

    def _events(self, seed: int) -> EventCatalog:
        if self._catalog is None or self._catalog.seed != seed:
            self._catalog = EventCatalog(self.org, seed)
        return self._catalog

    # --- one delivery ----------------------------------------------------------------------------
    def _send(self, hook: dict[str, Any], event: Event, settings: DeliverySettings) -> dict[str, Any]:
        with self._lock:
            record_id, self._next_id = self._next_id, self._next_id + 1
        record: dict[str, Any] = {
            "id": record_id,
            "webhook_id": hook["id"],
            "event_id": event.payload["id"],
            "event_type": event.event_type,
            "asset_id": event.asset_id,
            "minute": _minute(event.minute),
            "revision": event.revision,
            "duplicate": event.duplicate,
            "url": shown_url(hook["endpoint_config"]["url"]),
            "created_at": _iso(self.clock.timestamp()),
            "status": "pending",
            "status_code": None,
            "error": None,
            "attempts": 0,
            "last_attempt_at": None,
            "duration_ms": None,
            "payload": dict(event.payload),
        }
        with self._lock:
            self._records.append(record)
        self._attempt(hook, record, event.payload, settings)
        return record

    def _attempt(
        self, hook: dict[str, Any], record: dict[str, Any], payload: Any, settings: DeliverySettings
    ) -> None:
        endpoint = hook["endpoint_config"]
        timeout = float(endpoint.get("http_timeout") or settings.webhook_timeout)
        outcome = post_json(
            endpoint["url"],
            payload,
            auth_headers(endpoint),
            timeout,
            allow_remote=settings.webhook_allow_remote,
        )
        self._record_outcome(record, outcome, settings)
        if record["status"] == "pending":
            backoff = settings.webhook_retry_backoff * 2 ** (record["attempts"] - 1)
            with self._lock:
                self._retries.append(_Retry(time.monotonic() + backoff, record, payload))

    def _record_outcome(self, record: dict[str, Any], outcome: Outcome, settings: DeliverySettings) -> None:
        with self._lock:
            record["attempts"] += 1
            record["status_code"], record["error"] = outcome.status_code, outcome.error
            record["last_attempt_at"] = _iso(time.time())
            record["duration_ms"] = outcome.duration_ms
            if outcome.ok:
                record["status"] = "delivered"
            elif outcome.blocked:
                record["status"] = "blocked"
            elif outcome.retryable and record["attempts"] <= settings.webhook_retries:
                record["status"] = "pending"
            else:
                record["status"] = "failed"
            if record["status"] != "pending":
                self._totals.setdefault(record["webhook_id"], Counter())[record["status"]] += 1
        log.log(
            logging.DEBUG if record["status"] == "delivered" else logging.INFO,
            "webhook %s %s %s %s attempt %d: %s",
            record["webhook_id"],
            record["event_type"],
            record["url"],
            record["minute"],
            record["attempts"],
            outcome.status_code if outcome.status_code is not None else outcome.error,
        )

    def _retry(
        self,
        hooks: dict[str, dict[str, Any]],
        settings: DeliverySettings,
        flush: bool,
        webhook_id: str | None,
    ) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            due = [
                r
                for r in self._retries
                if (flush or r.due <= now) and (webhook_id is None or r.record["webhook_id"] == webhook_id)
            ]
            self._retries = [r for r in self._retries if r not in due]
        for retry in due:
            if self._aborted():
                break
            hook = hooks.get(retry.record["webhook_id"])
            if hook is None:  # deleted meanwhile: give up without sending
                with self._lock:
                    retry.record["status"], retry.record["error"] = (
                        "failed",
                        "webhook deleted before the retry",
                    )
                    self._totals.setdefault(retry.record["webhook_id"], Counter())["failed"] += 1
                continue
            self._attempt(hook, retry.record, retry.payload, settings)
        return [r.record for r in due]

    # --- observation -----------------------------------------------------------------------------
    def deliveries(
        self, webhook_id: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Delivery records, oldest first (the last ``limit``), optionally of one webhook / status."""
        with self._lock:
            chosen = [
                dict(r)
                for r in self._records
                if (webhook_id is None or r["webhook_id"] == webhook_id)
                and (status is None or r["status"] == status)
            ]
        return chosen[-limit:] if limit else chosen

    def clear_deliveries(self) -> int:
        with self._lock:
            count = len(self._records)
            self._records.clear()
            return count

    def summary(self) -> list[dict[str, Any]]:
        """Per subscription: where its stream stands and how its deliveries went."""
        hooks = self.store.all()
        with self._lock:
            pending = Counter(r.record["webhook_id"] for r in self._retries)
            totals = {k: dict(v) for k, v in self._totals.items()}
        out = []
        for hook in hooks:
            state = self._states.get(hook["id"])
            config = hook["endpoint_config"]
            out.append(
                {
                    "id": hook["id"],
                    "name": hook["name"],
                    "event_types": hook["event_types"],
                    "url": shown_url(config["url"]),
                    "auth": "api_key"
                    if config.get("api_key")
                    else "basic"
                    if config.get("basic_auth")
                    else None,
                    "filters": hook.get("filters"),
                    "send_on_value_change": hook.get("send_on_value_change", False),
                    "next_minute": _minute(state.next_minute) if state else None,
                    "skipped_minutes": state.skipped_minutes if state else 0,
                    "pending": pending.get(hook["id"], 0),
                    **{k: totals.get(hook["id"], {}).get(k, 0) for k in ("delivered", "failed", "blocked")},
                }
            )
        return out
