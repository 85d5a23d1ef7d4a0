"""``EmulatorAdminClient``: drive a running emulator's admin API (``/_emulator/``) from another process.

client = EmulatorAdminClient("http://127.0.0.1:8765")
client.set_clock("-2h", frozen=True)
client.add_fault("kind=status,status=503,times=2")
assert client.counters()["logins"] == 1
hook = client.subscribe("http://127.0.0.1:9000/butlr", ["ROOM_OCCUPANCY_1MIN"], api_key={"key": "X-Key", "value": "k"})
client.advance(300)
records = client.deliver_now()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

ADMIN_PREFIX = "/_emulator"
REPORTING_PATH = "/api/v3/reporting"


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

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        response = self._session.request(
            method, f"{self.url}{ADMIN_PREFIX}{path}", json=body, params=params, timeout=self.timeout
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

    def requests(self, path: str) -> int:
        """Requests to exactly ``path`` so far, e.g. ``"/api/v3/reporting"`` (see :meth:`reporting_requests`)."""
        return int(self.counters()["per_path"].get(path, 0))

    def reporting_requests(self) -> int:
        """Reporting API requests (``POST /api/v3/reporting``) so far, by every process."""
        return self.requests(REPORTING_PATH)

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
        """Counters, faults, webhooks (and their deliveries) and rate limit cleared; clock back to real time."""
        self._call("POST", "/reset")

    # --- webhooks ----------------------------------------------------------------------------------
    def webhooks(self) -> list[dict[str, Any]]:
        """Every subscription with its stream position and delivery totals (no secret values)."""
        return list(self._call("GET", "/webhooks")["webhooks"])

    def subscribe(self, url: str, event_types: Sequence[str] | None = None, **options: Any) -> dict[str, Any]:
        """Subscribe ``url`` (loopback unless the emulator allows remote hosts); returns it, with ``id``.

        ``options``: ``name``, ``api_key={"key": header, "value": ...}``, ``basic_auth={"username",
        "password"}``, ``http_timeout`` (seconds), ``filters={"room_ids": [...]}``, ``send_on_value_change``.
        Default event types: the three ``*_OCCUPANCY_1MIN``.
        """
        body: dict[str, Any] = {"url": url, **options}
        if event_types is not None:
            body["event_types"] = list(event_types)
        return dict(self._call("POST", "/webhooks", body))

    def unsubscribe(self, webhook_id: str) -> None:
        self._call("DELETE", f"/webhooks/{webhook_id}")

    def deliveries(
        self,
        webhook_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        *,
        payload: bool = True,
    ) -> list[dict[str, Any]]:
        """Delivery records, oldest first: status (pending/delivered/failed/blocked), status_code, error,
        attempts, event id/type, asset, minute, revision, duplicate, url, and the payload (unless False)."""
        params = {
            "webhook_id": webhook_id,
            "status": status,
            "limit": limit,
            "payload": None if payload else 0,
        }
        answer = self._call(
            "GET", "/webhooks/deliveries", params={k: v for k, v in params.items() if v is not None}
        )
        return list(answer["deliveries"])

    def clear_deliveries(self) -> int:
        return int(self._call("DELETE", "/webhooks/deliveries")["cleared"])

    def deliver_now(self, webhook_id: str | None = None, resend_minutes: int = 0) -> list[dict[str, Any]]:
        """Deliver the completed minutes and every pending retry now; the records of this pass."""
        body: dict[str, Any] = {"resend_minutes": resend_minutes}
        if webhook_id is not None:
            body["webhook_id"] = webhook_id
        return list(self._call("POST", "/webhooks/deliver", body)["deliveries"])
