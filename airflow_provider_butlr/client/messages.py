"""What the exchange's flows and the hooks' drivers hand each other (plain values, no transport)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from airflow_provider_butlr.client.graphql import GRAPHQL_PATH
from airflow_provider_butlr.exceptions import ButlrAPIError

T = TypeVar("T")


class NeedToken:
    """The flow asks the driver for a valid access token."""

    def __repr__(self) -> str:
        return "NEED_TOKEN"


NEED_TOKEN = NeedToken()


@dataclass(frozen=True)
class DropToken:
    """The flow tells the driver that Butlr refused this token: forget it (only if still cached)."""

    token: str = field(repr=False)


@dataclass(frozen=True)
class Outgoing:
    """One HTTP request for the driver to send (redirects are never followed by the transport)."""

    method: str
    url: str
    json: Any = None
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float | None = None


@dataclass(frozen=True)
class Answer:
    """What the driver got back: status, headers, the whole body, the URL, the transport's response."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    raw: Any = field(default=None, repr=False, compare=False)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


Step = NeedToken | DropToken | Outgoing
Flow = Generator[Step, Any, T]


@dataclass(frozen=True)
class Call:
    """A request to the Butlr API as the caller describes it (before tokens and redirects)."""

    method: str
    url: str
    endpoint: str
    json: Any = None
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    parse_json: bool = True
    decode: Callable[[bytes], Any] | None = None  # how a 2xx body becomes the payload (None: JSON)

    @property
    def is_graphql(self) -> bool:
        return self.endpoint.rstrip("/").endswith(GRAPHQL_PATH)

    def error(
        self, what: str, status: int, kind: type[ButlrAPIError] = ButlrAPIError, **extra: Any
    ) -> ButlrAPIError:
        """A typed error about this call: ``Butlr POST /api/v3/reporting <what>``."""
        return kind(
            f"Butlr {self.method} {self.endpoint} {what}",
            status=status,
            method=self.method,
            endpoint=self.endpoint,
            **extra,
        )

    def outgoing(self, token: str | None, url: str | None = None, method: str | None = None) -> Outgoing:
        headers = dict(self.headers)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        same_method = method is None or method == self.method
        return Outgoing(
            method=method or self.method,
            url=url or self.url,
            json=self.json if same_method else None,
            params=self.params if url is None else None,
            headers=headers,
            timeout=self.timeout,
        )


@dataclass(frozen=True)
class Outcome:
    """A successful exchange: the final answer and its decoded JSON (None for 204 or when not parsed)."""

    answer: Answer
    payload: Any = None
