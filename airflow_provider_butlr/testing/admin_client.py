"""``EmulatorAdminClient``: drive a running emulator's admin API (``/_emulator/``) from another process.

client = EmulatorAdminClient("http://127.0.0.1:8765")
client.set_clock("-2h", frozen=True)
client.add_fault("kind=status,status=503,times=2")
assert client.counters()["logins"] == 1
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

ADMIN_PREFIX = "/_emulator"


class EmulatorAdminError(RuntimeError):
    """The admin API refused a request (the message is the emulator's)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"emulator admin API answered HTTP {status}: {message}")
        self.status = status


class EmulatorAdminClient:
    """A thin typed wrapper over the admin API of the emulator at ``url`` (its base URL)."""

    def __init__(self, url: str, timeout: float = 10.0, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        if self.url.endswith(ADMIN_PREFIX):
            self.url = self.url[: -len(ADMIN_PREFIX)]
        self.timeout = timeout
        self._session = session or requests.Session()

    @classmethod
    def from_ready_file(cls, path: str | Path, **kwargs: Any) -> EmulatorAdminClient:
        """The client of an emulator started with ``--ready-file path``."""
        return cls(Path(path).read_text().strip(), **kwargs)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> EmulatorAdminClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        response = self._session.request(
            method, f"{self.url}{ADMIN_PREFIX}{path}", json=body, timeout=self.timeout
        )
        try:
            payload = response.json()
        except ValueError:
            payload = {"message": response.text[:200]}
        if response.status_code != 200:
            message = payload.get("message", "") if isinstance(payload, dict) else str(payload)
            raise EmulatorAdminError(response.status_code, message)
        return payload

    # --- clock -------------------------------------------------------------------------------------
    def clock(self) -> dict[str, Any]:
        """``{"now", "timestamp", "frozen", "offset_seconds"}``."""
        return dict(self._call("GET", "/clock"))

    def set_clock(self, at: str, *, frozen: bool = False) -> dict[str, Any]:
        """Jump to ``at`` (RFC 3339 or an offset such as ``-2h``); keep ticking unless ``frozen``."""
        return dict(self._call("POST", "/clock", {"at": at, "frozen": frozen}))

    def freeze(self, at: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"frozen": True} if at is None else {"at": at, "frozen": True}
        return dict(self._call("POST", "/clock", body))

    def unfreeze(self) -> dict[str, Any]:
        return dict(self._call("POST", "/clock", {"frozen": False}))

    def advance(self, seconds: float) -> dict[str, Any]:
        return dict(self._call("POST", "/clock", {"advance": seconds}))

    def real_time(self) -> dict[str, Any]:
        """Back to following real time."""
        return dict(self._call("POST", "/clock", {"real_time": True}))

    # --- faults ------------------------------------------------------------------------------------
    def add_fault(self, spec: str | Mapping[str, Any] | None = None, **fields: Any) -> int:
        """Add a fault (``"kind=status,status=503"`` or keyword fields); return its id."""
        body: dict[str, Any] = {"spec": spec} if isinstance(spec, str) else {**(spec or {}), **fields}
        return int(self._call("POST", "/faults", body)["id"])

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/faults")["faults"])

    def remove_fault(self, fault_id: int) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    def clear_faults(self) -> int:
        return int(self._call("DELETE", "/faults")["cleared"])

    # --- tokens ------------------------------------------------------------------------------------
    def tokens(self) -> list[dict[str, Any]]:
        """Every issued token with subject, issued_at, expires_at, revoked (oldest first)."""
        return list(self._call("GET", "/tokens")["tokens"])

    def issued_tokens(self) -> list[str]:
        """The issued access tokens themselves (for secret scans)."""
        return [item["token"] for item in self.tokens()]

    def revoke_tokens(self, token: str | None = None) -> None:
        """Revoke ``token``, or every token issued so far when None."""
        self._call("POST", "/tokens/revoke", {} if token is None else {"token": token})

    # --- counters ----------------------------------------------------------------------------------
    def counters(self) -> dict[str, Any]:
        """``{"total", "logins", "successful_logins", "per_path"}`` (admin requests are not counted)."""
        return dict(self._call("GET", "/counters"))

    def logins(self) -> int:
        return int(self.counters()["logins"])

    def reset_counters(self) -> None:
        self._call("DELETE", "/counters")

    # --- config ------------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The live configuration (secrets left out)."""
        return dict(self._call("GET", "/config"))

    def set_config(self, **changes: Any) -> dict[str, Any]:
        """Change live fields (e.g. ``latency``, ``rate_limit_per_minute``, ``data_lag_minutes``)."""
        return dict(self._call("POST", "/config", changes))

    def set_data_lag(self, minutes: int) -> None:
        self.set_config(data_lag_minutes=minutes)

    def reset(self) -> None:
        """Counters, faults, webhooks and rate limit cleared; clock back to real time."""
        self._call("POST", "/reset")
