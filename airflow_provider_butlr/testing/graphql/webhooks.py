"""In-memory webhook subscriptions with Butlr's one-subscription-per-event-type rule.

Each subscription also remembers (as ``_created_at``, not in the GraphQL type) the emulator time it was
created at: its deliveries start with the minute in progress then (``testing/webhook_delivery.py``).
"""

from __future__ import annotations

import copy
import random
import string
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from graphql import GraphQLError, GraphQLResolveInfo

from airflow_provider_butlr.testing.webhook_events import filter_problem

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def _bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def _endpoint_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Output shape from the input (camelCase or snake_case spellings accepted)."""
    url = raw.get("url") or ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _bad_input(f"endpointConfig.url must be an absolute http(s) URL, got {url!r}")
    api_key = raw.get("apiKey") or raw.get("api_key")
    basic = raw.get("basicAuth") or raw.get("basic_auth")
    timeout = raw.get("httpTimeout", raw.get("http_timeout"))
    for name, value, keys in (
        ("apiKey", api_key, ("key", "value")),
        ("basicAuth", basic, ("username", "password")),
    ):
        if value and not (isinstance(value, dict) and all(isinstance(value.get(k), str) for k in keys)):
            raise _bad_input(f"endpointConfig.{name} needs the strings {' and '.join(keys)}")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1):
        raise _bad_input(
            f"endpointConfig.httpTimeout must be a whole number of seconds >= 1, got {timeout!r}"
        )
    return {
        "url": url,
        "http_timeout": timeout,
        "api_key": dict(api_key) if api_key else None,
        "basic_auth": dict(basic) if basic else None,
    }


def _check_filters(filters: Any, label: str) -> None:
    problem = filter_problem(filters)
    if problem is not None:
        raise _bad_input(f"{label}: {problem}")


class WebhookStore:
    """Webhooks keyed by id; every mutation validates the whole batch before changing anything."""

    def __init__(self, org_id: str, seed: int = 0, now: Callable[[], float] = time.time) -> None:
        self.org_id = org_id
        self._rng = random.Random(f"webhooks-{seed}")
        self._now = now
        self._lock = threading.Lock()
        self._hooks: dict[str, dict[str, Any]] = {}
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every change (the deliverer wakes up)."""
        self._listeners.append(callback)

    def _changed(self) -> None:
        for callback in list(self._listeners):
            callback()

    def _new_id(self) -> str:
        return "webhook_2" + "".join(self._rng.choices(BASE62, k=26))

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._hooks.values()))

    def clear(self) -> None:
        with self._lock:
            self._hooks.clear()
        self._changed()

    def _owner_of(self, event_type: str, ignore: set[str]) -> str | None:
        return next(
            (
                h["id"]
                for h in self._hooks.values()
                if h["id"] not in ignore and event_type in h["event_types"]
            ),
            None,
        )

    def _check_event_types(
        self, event_types: list[str], claimed: dict[str, str], ignore: set[str], label: str
    ) -> None:
        """One subscription per event type, across stored webhooks and this batch."""
        if not event_types:
            raise _bad_input(f"{label}: eventTypes must not be empty")
        for event_type in event_types:
            owner = claimed.get(event_type) or self._owner_of(event_type, ignore)
            if owner is not None:
                raise _bad_input(
                    f"{label}: event type {event_type} already has a webhook subscription ({owner}); "
                    "only one webhook per event type is allowed"
                )
            claimed[event_type] = label

    def create(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            claimed: dict[str, str] = {}
            created = []
            for position, item in enumerate(inputs):
                label = f"input[{position}]"
                if not item["name"].strip():
                    raise _bad_input(f"{label}: name must not be empty")
                _check_filters(item.get("filters"), label)
                self._check_event_types(list(dict.fromkeys(item["eventTypes"])), claimed, set(), label)
                created.append(
                    {
                        "id": self._new_id(),
                        "org_id": self.org_id,
                        "name": item["name"],
                        "event_types": list(dict.fromkeys(item["eventTypes"])),
                        "endpoint_config": _endpoint_config(item["endpointConfig"]),
                        "status": True,
                        "filters": item.get("filters"),
                        "send_on_value_change": bool(item.get("send_on_value_change") or False),
                        "_created_at": self._now(),
                    }
                )
            for hook in created:
                self._hooks[hook["id"]] = hook
            answer = copy.deepcopy(created)
        self._changed()
        return answer

    def update(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            ids = [item["id"] for item in inputs]
            unknown = [i for i in ids if i not in self._hooks]
            if unknown:
                raise GraphQLError(
                    f"webhook not found: {', '.join(unknown)}", extensions={"code": "NOT_FOUND"}
                )
            updated = {i: copy.deepcopy(self._hooks[i]) for i in ids}
            claimed: dict[str, str] = {}
            for position, item in enumerate(inputs):
                hook = updated[item["id"]]
                if item.get("name") is not None:
                    hook["name"] = item["name"]
                if item.get("eventTypes") is not None:
                    hook["event_types"] = list(dict.fromkeys(item["eventTypes"]))
                if item.get("endpointConfig") is not None:
                    hook["endpoint_config"] = _endpoint_config(item["endpointConfig"])
                if "filters" in item:
                    _check_filters(item["filters"], f"input[{position}]")
                    hook["filters"] = item["filters"]
                if item.get("send_on_value_change") is not None:
                    hook["send_on_value_change"] = bool(item["send_on_value_change"])
                self._check_event_types(hook["event_types"], claimed, set(ids), f"input[{position}]")
            self._hooks.update(updated)
            answer = copy.deepcopy([updated[i] for i in ids])
        self._changed()
        return answer

    def delete(self, ids: list[str]) -> bool:
        with self._lock:
            unknown = [i for i in ids if i not in self._hooks]
            if unknown:
                raise GraphQLError(
                    f"webhook not found: {', '.join(unknown)}", extensions={"code": "NOT_FOUND"}
                )
            for webhook_id in ids:
                del self._hooks[webhook_id]
        self._changed()
        return True

    @staticmethod
    def resolver(mutation: str) -> Callable[..., Any]:
        """The graphql-core resolver for ``createWebhooks`` / ``updateWebhooks`` / ``deleteWebhooks``."""

        def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
            store: WebhookStore = info.context["webhooks"]
            if mutation == "createWebhooks":
                return store.create(args["input"])
            if mutation == "updateWebhooks":
                return store.update(args["input"])
            return store.delete(args["ids"])

        return resolve
