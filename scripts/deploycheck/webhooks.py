"""The deployment check's webhook step (issue 24): the emulator pushes to the api-server's receiver.

The receiver (``POST /butlr/webhooks``, the provider's plugin on the real api-server) gets the
emulator's ``ROOM_OCCUPANCY_1MIN`` events for one room around a crossing found in the emulator's ground
truth (occupied, then empty for long enough). The check drives the emulator's clock minute by minute and
asserts:

1. the subscription DAG creates the subscription, and a second run changes nothing;
2. the minute that completes the crossing gives exactly one run of ``butlr_room_empty_webhooks``, and
   the time from that event's delivery to the run's creation (emulator record -> ``dag_run.created_at``);
3. duplicates (every event POSTed twice), revisions (half the provisional values off by one) and a
   re-send of the last 5 minutes give no other run;
4. a subscription with a wrong key gets 401 for every event, and bad requests (no key, oversized,
   another organisation, an unknown type) a 4xx: no asset event is recorded for any of them;
5. no Reporting API request during the step (the emulator's counter), the polling twin paused first.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests

SUBSCRIPTIONS_DAG = "butlr_webhook_subscriptions"
PUSH_DAG = "butlr_room_empty_webhooks"
POLLING_DAG = "butlr_room_empty_events"
HOLD_MINUTES = 5  # longer than Butlr's 4-minute look-back: a provisional break is revised before it counts
HEADER = "X-Butlr-Webhook-Key"
LATENCY_TARGET = 5.0
T = TypeVar("T")


class StepFailed(AssertionError):
    """The webhook step did not do what the check expects."""


@dataclass(frozen=True)
class Scenario:
    """A room of the emulator's seed 42 that is occupied from ``occupied`` and empty from ``empty`` on."""

    room: str
    floor: str
    occupied: dt.datetime
    empty: dt.datetime
    empty_minutes: int


def find_scenario(
    day: dt.date,
    seed: int = 42,
    occupied: int = 6,
    empty: int = HOLD_MINUTES + 20,
    exclude: tuple[str, ...] = (),
) -> Scenario:
    """The first room with ``occupied`` occupied minutes then ``empty`` empty ones on ``day`` (ground
    truth, computed here: no request to the emulator), other than the rooms in ``exclude``.

    Exclude the polling twin's room: both twins name their asset ``butlr://<host>/rooms/<id>/empty``,
    and Airflow activates one asset per URI (the DAG parsed first wins), so on a shared room the
    receiver might not see the push twin's condition at all."""
    from airflow_provider_butlr.testing.org.seed import build_org
    from airflow_provider_butlr.testing.timeseries.series import minute_values, series_assets

    org = build_org(seed)
    start = dt.datetime.combine(day, dt.time(8), dt.UTC)
    for room in series_assets(org, "room_occupancy", seed):
        if room in exclude:
            continue
        values = minute_values(org, "room_occupancy", room, start, start + dt.timedelta(hours=12), seed)
        for i in range(occupied, len(values) - empty):
            if (
                min(v for _, v in values[i - occupied : i]) >= 1
                and max(v for _, v in values[i : i + empty]) == 0
            ):
                floor = org.rooms_by_id[room].floor_id
                return Scenario(room, floor, values[i - occupied][0], values[i][0], empty)
    raise StepFailed(f"no room of seed {seed} is occupied {occupied} minutes then empty {empty} on {day}")


def organisation_id(seed: int = 42) -> str:
    from airflow_provider_butlr.testing.org.seed import build_org

    return build_org(seed).id


@dataclass
class Receiver:
    """The receiver's connection in the deployment: the api-server's URL and a fresh shared key."""

    url: str
    org_id: str
    key: str = field(default_factory=lambda: "whk-" + secrets.token_urlsafe(24))

    def env(self, scenario: Scenario) -> dict[str, str]:
        connection = {
            "conn_type": "generic",
            "host": self.url,
            "password": self.key,
            "extra": {"org_id": self.org_id},
        }
        return {
            "AIRFLOW_CONN_BUTLR_WEBHOOK_DEFAULT": json.dumps(connection),
            "BUTLR_WEBHOOK_ROOMS": scenario.room,
            "BUTLR_WEBHOOK_EMPTY_MINUTES": str(HOLD_MINUTES),
            "BUTLR_WEBHOOK_SUBSCRIPTIONS_SCHEDULE": "",  # runs only when the check triggers them
        }


@dataclass
class WebhookReport:
    runs: list[str] = field(default_factory=list)
    delivered_to_event_ms: float = 0.0
    event_to_run_ms: float = 0.0
    delivered: int = 0
    duplicates: int = 0
    revisions: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    reporting_requests: int = -1
    second_reconcile: dict[str, Any] = field(default_factory=dict)

    @property
    def latency_s(self) -> float:
        return (self.delivered_to_event_ms + self.event_to_run_ms) / 1000

    def lines(self) -> list[str]:
        return [
            f"webhooks: {self.delivered} events delivered ({self.duplicates} duplicates, {self.revisions} revisions): "
            f"{len(self.runs)} run of {PUSH_DAG} ({', '.join(self.runs)})",
            f"  event -> run: {self.latency_s:.2f} s (emulator's POST -> asset event {self.delivered_to_event_ms:.0f} ms, "
            f"asset event -> DAG run created {self.event_to_run_ms:.0f} ms; target < {LATENCY_TARGET:.0f} s)",
            f"  refused: {self.refused}; Reporting API requests during the step: {self.reporting_requests}",
            f"  second reconciliation: {self.second_reconcile}",
        ]


def _when(text: str) -> dt.datetime:
    """A UTC time from the emulator's records (``...Z``) or SQLite (``YYYY-MM-DD HH:MM:SS.ffffff[+00:00]``)."""
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class WebhookStep:
    """Drives the step; ``dep`` is the deployment check's ``Deployment``."""

    def __init__(
        self,
        dep: Any,
        scenario: Scenario,
        receiver: Receiver,
        alive: Callable[[], None],
        wait_run: Callable[[str, str], None],
    ) -> None:
        self.dep, self.scenario, self.receiver = dep, scenario, receiver
        self.alive, self.wait_run = alive, wait_run
        self.report = WebhookReport()

    def wait(self, what: str, probe: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
        deadline = time.monotonic() + timeout
        while True:
            result = probe()
            if result:
                return result
            self.alive()
            if time.monotonic() > deadline:
                raise StepFailed(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(interval)

    # --- database (read-only) -----------------------------------------------------------------
    def push_runs(self) -> list[tuple[str, str, str]]:
        rows = self.dep.db.rows(
            "SELECT run_id, state, created_at FROM dag_run WHERE dag_id = ? ORDER BY id", PUSH_DAG
        )
        return [(str(r), str(s), str(c)) for r, s, c in rows]

    def asset_events(self) -> list[tuple[str, str]]:
        rows = self.dep.db.rows(
            "SELECT a.uri, e.timestamp FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri LIKE 'butlr://%' ORDER BY e.id"
        )
        return [(str(u), str(t)) for u, t in rows]

    def reporting_requests(self) -> int:
        return int(self.dep.admin.counters().get("per_path", {}).get("/api/v3/reporting", 0))

    # --- the step -----------------------------------------------------------------------------
    def run(self) -> WebhookReport:
        self.quiet_polling_twin()
        reporting_before = self.reporting_requests()
        admin = self.dep.admin
        admin.set_config(webhook_auto_delivery=False, webhook_revision_rate=0.0, webhook_duplicate_rate=0.0)
        admin.set_clock(
            (self.scenario.occupied + dt.timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ"), frozen=True
        )
        self.reconcile_twice()
        runs_before = {r for r, _, _ in self.push_runs()}
        self.through_the_crossing(runs_before)
        self.untidy_minutes()
        self.refusals()
        self.report.reporting_requests = self.reporting_requests() - reporting_before
        if self.report.reporting_requests:
            raise StepFailed(
                f"{self.report.reporting_requests} Reporting API requests during the webhook step"
            )
        runs = [r for r, _, _ in self.push_runs() if r not in runs_before]
        if len(runs) != 1:
            raise StepFailed(f"{PUSH_DAG}: {len(runs)} runs for one crossing: {runs}")
        self.report.runs = runs
        return self.report

    def quiet_polling_twin(self) -> None:
        """Pause the polling twin; wait until its watcher stopped polling (10 s without a request)."""
        if POLLING_DAG in self.dep.db.dag_ids():
            self.dep.api.pause(POLLING_DAG)
        last = [self.reporting_requests(), time.monotonic()]

        def quiet() -> bool:
            now = self.reporting_requests()
            if now != last[0]:
                last[:] = [now, time.monotonic()]
            return time.monotonic() - last[1] >= 10

        self.wait("the polling twin's watcher to stop polling", quiet, 180, interval=1.0)

    def reconcile_twice(self) -> None:
        api, db = self.dep.api, self.dep.db
        api.unpause(SUBSCRIPTIONS_DAG)
        summaries = []
        for attempt in (1, 2):
            run_id = api.trigger(SUBSCRIPTIONS_DAG, None, f"deploycheck__webhook_subscriptions_{attempt}")
            self.wait(
                f"{SUBSCRIPTIONS_DAG} {run_id}",
                lambda run_id=run_id: self._final(db.run_state(SUBSCRIPTIONS_DAG, run_id), run_id),
                180,
                interval=0.5,
            )
            summaries.append(db.return_value(SUBSCRIPTIONS_DAG, run_id, "reconcile_subscriptions") or {})
        first, second = summaries
        if first.get("created") != ["airflow-room-occupancy"] or second.get("unchanged") != [
            "airflow-room-occupancy"
        ]:
            raise StepFailed(f"reconciliation: first run {first}, second run {second}")
        if second.get("created") or second.get("updated") or second.get("deleted"):
            raise StepFailed(f"the second reconciliation changed something: {second}")
        self.report.second_reconcile = {k: second[k] for k in ("created", "updated", "deleted", "unchanged")}

    def _final(self, state: str | None, run_id: str) -> bool:
        if state == "failed":
            raise StepFailed(f"{run_id} failed")
        return state == "success"

    def deliver(self, **kwargs: Any) -> list[dict[str, Any]]:
        self.dep.admin.advance(60)
        records = list(self.dep.admin.deliver_now(**kwargs))
        bad = [(r["minute"], r["status"], r["status_code"]) for r in records if r["status"] != "delivered"]
        if bad and "webhook_id" not in kwargs:
            raise StepFailed(f"deliveries to the receiver failed: {bad}")
        self.report.delivered += len(records)
        return records

    def through_the_crossing(self, runs_before: set[str]) -> None:
        """Tidy minutes up to the crossing's last one: no run before it, one run right after it."""
        occupied = (self.scenario.empty - self.scenario.occupied) // dt.timedelta(minutes=1)
        for _ in range(occupied + HOLD_MINUTES - 1):
            self.deliver()
        if [r for r, _, _ in self.push_runs() if r not in runs_before]:
            raise StepFailed(f"{PUSH_DAG} ran before the room had been empty {HOLD_MINUTES} minutes")
        events_before = len(self.asset_events())
        [record] = self.deliver()  # the minute that completes the crossing
        run = self.wait(
            f"a run of {PUSH_DAG} after the crossing",
            lambda: [r for r in self.push_runs() if r[0] not in runs_before],
            30,
        )[0]
        fired = self.asset_events()[events_before:]
        if len(fired) != 1:
            raise StepFailed(f"the crossing recorded {len(fired)} asset events: {fired}")
        # the record's time is the attempt's end: the POST left the emulator duration_ms before it
        delivered = _when(record["last_attempt_at"]) - dt.timedelta(milliseconds=record["duration_ms"] or 0)
        recorded, created = _when(fired[0][1]), _when(run[2])
        self.report.delivered_to_event_ms = (recorded - delivered).total_seconds() * 1000
        self.report.event_to_run_ms = (created - recorded).total_seconds() * 1000
        if self.report.latency_s > LATENCY_TARGET:
            raise StepFailed(f"event -> run took {self.report.latency_s:.2f} s (target {LATENCY_TARGET} s)")
        self.wait_run(PUSH_DAG, run[0])
        cleaning = self.dep.db.return_value(PUSH_DAG, run[0], "request_cleaning") or [{}]
        empty_since = self.scenario.empty.strftime("%Y-%m-%dT%H:%M:%SZ")
        if cleaning[0].get("room") != self.scenario.room or cleaning[0].get("empty_since") != empty_since:
            raise StepFailed(
                f"{PUSH_DAG} {run[0]} read {cleaning}, not {self.scenario.room} empty since {empty_since}"
            )

    def untidy_minutes(self) -> None:
        """Butlr's untidiness while the room stays empty: duplicates, revisions, a re-send."""
        self.dep.admin.set_config(webhook_duplicate_rate=1.0, webhook_revision_rate=0.5, webhook_shuffle=True)
        records = []
        for _ in range(self.scenario.empty_minutes - HOLD_MINUTES - 6):
            records += self.deliver()
        records += self.deliver(resend_minutes=5)
        self.report.duplicates = sum(bool(r["duplicate"]) for r in records)
        self.report.revisions = sum(r["revision"] > 0 for r in records)
        if not self.report.duplicates or not self.report.revisions:
            raise StepFailed(f"no duplicate or no revision was delivered: {len(records)} records")
        time.sleep(6)  # several scheduler loops: an extra asset event would have become a run by now

    def refusals(self) -> None:
        """A wrong key (through the emulator) and bad requests (straight to the receiver): 4xx, no event."""
        events_before = len(self.asset_events())
        hook = self.dep.admin.subscribe(
            self.receiver.url,
            ["FLOOR_OCCUPANCY_1MIN"],
            name="wrong-key",
            api_key={"key": HEADER, "value": "wrong-" + self.receiver.key[-8:]},
            filters={"floor_ids": [self.scenario.floor]},
        )
        records = self.deliver(webhook_id=hook["id"])
        if not records or {(r["status"], r["status_code"]) for r in records} != {("failed", 401)}:
            raise StepFailed(f"a wrong key was not refused with 401: {records}")
        self.dep.admin.unsubscribe(hook["id"])
        self.report.refused["wrong key (emulator)"] = len(records)
        minute = int(self.scenario.empty.timestamp()) * 1000
        good = {
            "id": "event_deploycheck0000000000000",
            "type": "ROOM_OCCUPANCY_1MIN",
            "timestamp": minute,
            "version": "v1.0.0",
            "metadata": {"org_id": self.receiver.org_id, "room_id": self.scenario.room},
            "data": 3,
        }
        key = {HEADER: self.receiver.key}
        cases = {
            "no key": (good, {}, 401),
            "oversized": ({**good, "pad": "x" * 70_000}, key, 413),
            "another organisation": (
                {**good, "metadata": {"org_id": "org_2other", "room_id": self.scenario.room}},
                key,
                403,
            ),
            "unknown type": ({**good, "type": "ROOM_OCCUPANCY_2MIN"}, key, 422),
        }
        for name, (body, headers, status) in cases.items():
            answer = requests.post(self.receiver.url, json=body, headers=headers, timeout=10)
            if answer.status_code != status or self.receiver.key in answer.text:
                raise StepFailed(
                    f"{name}: answered {answer.status_code} {answer.text[:200]}, expected {status}"
                )
            self.report.refused[name] = 1
        if len(self.asset_events()) != events_before:
            raise StepFailed(f"refused requests recorded asset events: {self.asset_events()[events_before:]}")
