"""Fixtures: the emulator delivering to the receiver (uvicorn on 127.0.0.1) over a migrated SQLite DB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import TEST_CLIENT_SECRET
from tests.support.webhooks import (
    HEADER,
    KEY,
    Served,
    forget_everything,
    fresh_mounted_app,
    receiver_connection,
    serve_in_thread,
)

DAY = dt.datetime(2025, 11, 11, tzinfo=dt.UTC)
HOLD = 5  # minutes a room must stay empty (longer than Butlr's 4-minute look-back: see test_streams)


@dataclass(frozen=True)
class Crossing:
    """Ground truth around one crossing of a room: occupied from ``occupied``, empty from ``empty``."""

    room: str
    occupied: dt.datetime
    empty: dt.datetime
    values: list[tuple[dt.datetime, int]]


def find_crossing(emu: Any, occupied_minutes: int = 6, empty_minutes: int = HOLD + 15) -> Crossing:
    """The first room of the seeded org that is occupied ``occupied_minutes`` (every minute), then
    empty ``empty_minutes``: the receiver must report exactly one crossing there."""
    from airflow_provider_butlr.testing.timeseries.series import minute_values, series_assets

    for room in series_assets(emu.org, "room_occupancy", emu.config.seed):
        values = minute_values(
            emu.org,
            "room_occupancy",
            room,
            DAY + dt.timedelta(hours=7),
            DAY + dt.timedelta(hours=22),
            emu.config.seed,
        )
        for i in range(occupied_minutes, len(values) - empty_minutes):
            before = [v for _, v in values[i - occupied_minutes : i]]
            after = [v for _, v in values[i : i + empty_minutes]]
            if min(before) >= 1 and max(after) == 0:
                window = values[i - occupied_minutes : i + empty_minutes]
                return Crossing(room, window[0][0], values[i][0], window)
    raise AssertionError("no room with a clean crossing in the seeded day")


@pytest.fixture
def push_emulator() -> Iterator[Any]:
    """An emulator whose deliveries the test drives (``deliver_now``), untidiness switched off."""
    from airflow_provider_butlr.testing import ButlrEmulator

    with ButlrEmulator(
        port=0,
        client_secret=TEST_CLIENT_SECRET,
        webhook_auto_delivery=False,
        webhook_revision_rate=0.0,
        webhook_duplicate_rate=0.0,
        webhook_shuffle=False,
        webhook_retry_backoff=0.0,
    ) as emu:
        yield emu


@dataclass
class Push:
    """The emulator, the receiver it delivers to, and the receiver connection's values."""

    emu: Any
    served: Served
    org_id: str

    @property
    def url(self) -> str:
        return self.served.url

    def subscribe(self, event_types: list[str], room: str | None = None, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("api_key", {"key": HEADER, "value": KEY})
        filters = {"room_ids": [room]} if room else None
        return dict(self.emu.subscribe(self.url, event_types, filters=filters, **kwargs))

    def minutes(self, count: int) -> list[dict[str, Any]]:
        """``count`` emulator minutes pass, each delivered before the next; every delivery record."""
        records = []
        for _ in range(count):
            self.emu.clock.advance(60)
            records += self.emu.deliver_now()
        return records


@pytest.fixture
def push(push_emulator: Any, airflow_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Push]:
    """The receiver (its own caches, no TTL) served on loopback, its connection set, the DB clean."""
    forget_everything()
    with serve_in_thread(fresh_mounted_app()) as served:
        monkeypatch.setenv(
            "AIRFLOW_CONN_BUTLR_WEBHOOK_DEFAULT", receiver_connection(served.url, push_emulator.org.id)
        )
        yield Push(push_emulator, served, push_emulator.org.id)
    forget_everything()
