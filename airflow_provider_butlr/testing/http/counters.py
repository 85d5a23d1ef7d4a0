"""Request counters and the request log, recorded before any fault is applied."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

LOGIN_PATHS = frozenset({"/api/v2/clients/login", "/api/v2/login"})


@dataclass
class RequestRecord:
    """One request as the emulator saw it; ``status`` is None when the connection was dropped."""

    method: str
    path: str
    body_json: Any
    has_authorization: bool
    timestamp: float
    status: int | None = None
    fault: str | None = None

    @property
    def auth_header_present(self) -> bool:
        return self.has_authorization


class Counters:
    """Thread-safe per-path counts and a full request log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._per_path: Counter[str] = Counter()
        self._log: list[RequestRecord] = []

    def record(self, record: RequestRecord) -> RequestRecord:
        with self._lock:
            self._per_path[record.path] += 1
            self._log.append(record)
        return record

    def requests(self, path: str | None = None) -> int:
        """Requests to exactly ``path`` (query string excluded); all requests when None."""
        with self._lock:
            return self.total_unlocked() if path is None else self._per_path[path]

    def total_unlocked(self) -> int:
        return sum(self._per_path.values())

    @property
    def total(self) -> int:
        with self._lock:
            return self.total_unlocked()

    @property
    def logins(self) -> int:
        """Login attempts on both grants (any outcome)."""
        with self._lock:
            return sum(self._per_path[p] for p in LOGIN_PATHS)

    @property
    def successful_logins(self) -> int:
        with self._lock:
            return sum(1 for r in self._log if r.path in LOGIN_PATHS and r.status == 200)

    @property
    def per_path(self) -> dict[str, int]:
        with self._lock:
            return dict(self._per_path)

    @property
    def log(self) -> list[RequestRecord]:
        """A snapshot copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def reset(self) -> None:
        with self._lock:
            self._per_path.clear()
            self._log.clear()
