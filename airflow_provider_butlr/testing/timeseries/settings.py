"""The time-series engine's knobs, read from ``EmulatorConfig`` (``reporting_*`` / ``stats_*`` fields)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

WINDOW_ALIGNMENTS = ("clock", "start", "auto")
TIME_LABELS = ("start", "stop")


@dataclass(frozen=True)
class EngineSettings:
    """Defaults follow the Butlr docs where they say something, else the guesses noted per field."""

    seed: int = 42
    # The silent-empty processing budget (docs/emulator.md, "The processing budget"): 200 + empty data when
    # (ids in the id filters, at least 1) x (windows: range / window.every, rounded up) is above this. It
    # scales with the work: Butlr's own client got 127 assets over 5 minutes answered (butlr-api.md §12).
    reporting_max_id_windows: int | None = 60_000
    # Ids per request for ranges of ``reporting_long_range_hours`` or more (SUP zone article: <= 10).
    reporting_max_ids_long: int = 10
    reporting_long_range_hours: int = 24
    # A fixed id cap for shorter ranges; None (default): none, only the id x window budget. (30 was the
    # emulator's default before Butlr's recorded 127-asset answer showed the cap is not fixed.)
    reporting_max_ids: int | None = None
    # Guard for the emulator itself: series x minutes above this also returns the silent empty result.
    reporting_max_series_minutes: int = 20_000_000
    # The revision window: windows with a minute in the last N minutes before now carry data_incomplete: true
    # (their values may still change). Butlr revises data for about 5 minutes (butlr-api.md §6 "Freshness").
    reporting_incomplete_minutes: int = 5
    # Data lag: the last N minutes before now have no data at all (nor has the future). Butlr's fixtures
    # were recorded with data 1-2 minutes old (butlr-api.md §11), so "now - 5 min .. now" has data.
    data_lag_minutes: int = 2
    # "clock": windows aligned to `every` in window.timezone (local midnight for 1d); "start": aligned to
    # the query start; "auto": start-aligned only for group_by with order + raw (as the MCP fixture shows).
    reporting_window_alignment: str = "clock"
    # Whether a row's `time` is its window's start (default, [GUESS]) or stop (Flux's default).
    reporting_time_label: str = "start"
    # Reject unknown keys in the request body (typos) instead of ignoring them as a lenient server would.
    reporting_strict_keys: bool = True
    # Processing budget in ids x range: (number of ids) x (range in minutes) above this -> the silent
    # empty answer, so clients must split the time range too. None: no such budget (ids only).
    reporting_max_id_minutes: int | None = None
    # Stats: more than this many item-days (items x days in range) -> 504.
    stats_max_item_days: int = 500

    @classmethod
    def from_config(cls, config: Any) -> EngineSettings:
        """Pick the known fields off any config object (missing ones keep their defaults)."""
        values = {f.name: getattr(config, f.name) for f in fields(cls) if hasattr(config, f.name)}
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ValueError naming the field and the allowed values."""
        if self.reporting_window_alignment not in WINDOW_ALIGNMENTS:
            raise ValueError(
                f"reporting_window_alignment={self.reporting_window_alignment!r}; allowed: {WINDOW_ALIGNMENTS}"
            )
        if self.reporting_time_label not in TIME_LABELS:
            raise ValueError(f"reporting_time_label={self.reporting_time_label!r}; allowed: {TIME_LABELS}")
        for name in (
            "reporting_incomplete_minutes",
            "data_lag_minutes",
            "reporting_max_ids_long",
            "stats_max_item_days",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.reporting_max_ids is not None and self.reporting_max_ids < 0:
            raise ValueError(f"reporting_max_ids must be >= 0 or None, got {self.reporting_max_ids}")
        for name in ("reporting_max_id_minutes", "reporting_max_id_windows"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
