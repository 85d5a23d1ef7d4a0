"""The alternatives a user has today, written the way users write them.

* raw ``requests``: one ``Session``, a token fetched once up front, ``Authorization`` set by hand.
  No retries, no refresh, no masking: the practical speed limit of a Python client.
* ``HttpHook`` (apache-airflow-providers-http): a login call per task, then ``HttpHook.run()``
  with a bearer header. ``run()`` builds a new ``requests.Session`` and looks the connection up
  again on every call (provider notes section 6.1).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from benchmarks.common import HTTP_CONN_ID

LOGIN_PATH = "/api/v2/clients/login"
REPORTING_PATH = "/api/v3/reporting"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def small_reporting_body(room_id: str, start: datetime, hours: int = 1) -> dict[str, Any]:
    """One room, one hour, one 1-hour window: a reporting call whose cost is mostly overhead."""
    return {
        "filter": {
            "measurements": ["room_occupancy"],
            "rooms": {"eq": [room_id]},
            "start": rfc3339(start),
            "stop": rfc3339(start + timedelta(hours=hours)),
            "value": {"gte": 0},
        },
        "window": {"every": "1h", "function": "mean", "timezone": "UTC", "create_empty": True},
    }


def login_body(client_id: str, client_secret: str, audience: str) -> dict[str, str]:
    return {
        "client_id": client_id,
        "client_secret": client_secret,
        "audience": audience,
        "grant_type": "client_credentials",
    }


def raw_login(session: requests.Session, url: str, body: dict[str, str]) -> str:
    """The token a raw-requests user fetches once, before the timed calls."""
    response = session.post(url + LOGIN_PATH, json=body, timeout=30)
    response.raise_for_status()
    return str(response.json()["access_token"])


def raw_reporting(session: requests.Session, url: str, token: str, body: dict[str, Any]) -> Any:
    response = session.post(
        url + REPORTING_PATH, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    response.raise_for_status()
    return response.json()


class HttpHookClient:
    """One task's worth of ``HttpHook`` use: log in through the hook, then call with a bearer header."""

    def __init__(self, login: dict[str, str]) -> None:
        from airflow.providers.http.hooks.http import HttpHook

        self._hook = HttpHook(method="POST", http_conn_id=HTTP_CONN_ID)
        self._login = login
        self._token: str | None = None

    def log_in(self) -> str:
        response = self._hook.run(LOGIN_PATH, json=self._login)
        self._token = str(response.json()["access_token"])
        return self._token

    def reporting(self, body: dict[str, Any]) -> Any:
        token = self._token or self.log_in()
        return self._hook.run(REPORTING_PATH, json=body, headers={"Authorization": f"Bearer {token}"}).json()
