"""Fixtures for the emulator's own tests: one shared emulator per module, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_butlr.testing import ButlrEmulator

CLIENT_LOGIN = "/api/v2/clients/login"
PASSWORD_LOGIN = "/api/v2/login"
GRAPHQL = "/api/v3/graphql"
REPORTING = "/api/v3/reporting"
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The emulator does not run on Airflow: its tests run once, not per Airflow minor."""
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.airflow_independent)


class Client:
    """A thin requests wrapper that speaks to one emulator (tests assert on raw HTTP answers)."""

    def __init__(self, emu: ButlrEmulator) -> None:
        self.emu = emu
        self.session = requests.Session()
        self._token: str | None = None

    def login_body(self, **changes: Any) -> dict[str, Any]:
        body = {
            "client_id": self.emu.client_id,
            "client_secret": self.emu.client_secret,
            "audience": self.emu.audience,
            "grant_type": "client_credentials",
        }
        body.update(changes)
        return body

    def post(self, path: str, body: Any = None, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        kwargs.setdefault("timeout", 10)
        return self.session.post(self.emu.url + path, json=body, headers=headers, **kwargs)

    def login(self) -> str:
        response = self.post(CLIENT_LOGIN, self.login_body())
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    @property
    def token(self) -> str:
        if self._token is None:
            self._token = self.login()
        return self._token

    def gql(self, query: str, variables: dict[str, Any] | None = None, **kwargs: Any) -> requests.Response:
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        body.update(kwargs)
        return self.post(GRAPHQL, body, token=self.token)

    def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """``data`` of a GraphQL answer that must succeed without errors."""
        response = self.gql(query, variables)
        payload = response.json()
        assert response.status_code == 200 and "errors" not in payload, payload
        return dict(payload["data"])


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[ButlrEmulator]:
    with ButlrEmulator(port=0) as emu:
        yield emu


@pytest.fixture
def emu(shared_emulator: ButlrEmulator) -> Iterator[ButlrEmulator]:
    """The module's emulator with fresh counters, faults, webhooks, clock and config."""
    original = replace(shared_emulator.config)
    shared_emulator.reset()
    yield shared_emulator
    shared_emulator.config = original
    shared_emulator.reset()


@pytest.fixture
def client(emu: ButlrEmulator) -> Iterator[Client]:
    c = Client(emu)
    yield c
    c.session.close()
