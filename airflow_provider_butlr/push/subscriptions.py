"""Webhook subscriptions as code: what you declare, what Butlr has, and the difference (pure).

:func:`plan_reconciliation` compares the declared :class:`SubscriptionSpec` list (plus the receiver's
URL and authentication, one :class:`~airflow_provider_butlr.push.receiver.ReceiverSettings`) with
Butlr's ``webhooks`` (:class:`RemoteSubscription`, parsed from the GraphQL answer) and says what to
create, update and (optionally) delete. Subscriptions are matched by name. Butlr allows one
subscription per event type per account (butlr-api.md §5.1): the plan checks it before anything is
sent, across the declared ones and those it keeps.

Butlr's ``webhooks`` query returns the receiver's API key or password. They are held here only to
compare (in constant time) and never appear in a plan's :meth:`Plan.summary`, a ``repr`` or an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrDataError
from airflow_provider_butlr.push.events import EVENT_TYPES, ID_PATTERN
from airflow_provider_butlr.push.receiver import ReceiverSettings

FILTER_KEYS = ("org_ids", "site_ids", "building_ids", "floor_ids", "room_ids", "zone_ids", "mac_addresses")
SPEC_KEYS = ("name", "event_types", "filters", "send_on_value_change", "http_timeout")
MAX_NAME = 100
MAX_HTTP_TIMEOUT = 60  # seconds ([GUESS] on the unit: butlr-api.md §5.1)

WEBHOOKS_QUERY = """query ButlrWebhooks {
  webhooks { id name org_id status event_types filters send_on_value_change
    endpoint_config { url http_timeout api_key { key value } basic_auth { username password } } }
}"""
CREATE_MUTATION = """mutation ButlrCreateWebhooks($input: [WebhookCreateInput!]!) {
  createWebhooks(input: $input) { id name org_id event_types }
}"""
UPDATE_MUTATION = """mutation ButlrUpdateWebhooks($input: [WebhookUpdateInput!]!) {
  updateWebhooks(input: $input) { id name event_types }
}"""
DELETE_MUTATION = """mutation ButlrDeleteWebhooks($ids: [ID!]!) { deleteWebhooks(ids: $ids) }"""


def _filters(value: Any, where: str) -> dict[str, list[str]] | None:
    """Filters normalised: known keys, sorted unique ids; ``None`` for none."""
    if value is None or value == {}:
        return None
    if not isinstance(value, Mapping):
        raise ButlrConfigurationError(
            f"{where}: filters must be a mapping with keys from {', '.join(FILTER_KEYS)}"
        )
    unknown = sorted(set(value) - set(FILTER_KEYS))
    if unknown:
        raise ButlrConfigurationError(
            f"{where}: unknown filter key(s) {unknown}; known: {', '.join(FILTER_KEYS)}"
        )
    normalised = {}
    for key, ids in sorted(value.items()):
        if isinstance(ids, str) or not isinstance(ids, Iterable):
            raise ButlrConfigurationError(f"{where}: filters.{key} must be a list of ids")
        ids = list(ids)
        if not ids or not all(isinstance(i, str) and ID_PATTERN.match(i) for i in ids):
            raise ButlrConfigurationError(f"{where}: filters.{key} must be a non-empty list of Butlr ids")
        normalised[key] = sorted(set(ids))
    return normalised


@dataclass(frozen=True)
class SubscriptionSpec:
    """One declared subscription (its URL and authentication come from the receiver's connection)."""

    name: str
    event_types: tuple[str, ...]
    filters: dict[str, list[str]] | None = None
    send_on_value_change: bool = False
    http_timeout: int | None = None

    @classmethod
    def from_json(cls, value: Any, where: str = "subscription") -> SubscriptionSpec:
        if isinstance(value, SubscriptionSpec):
            return value
        if not isinstance(value, Mapping):
            raise ButlrConfigurationError(f"{where} must be a mapping with keys from {', '.join(SPEC_KEYS)}")
        unknown = sorted(set(value) - set(SPEC_KEYS))
        if unknown:
            raise ButlrConfigurationError(f"{where}: unknown key(s) {unknown}; known: {', '.join(SPEC_KEYS)}")
        name = value.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            raise ButlrConfigurationError(
                f"{where}: name must be a non-empty text of at most {MAX_NAME} characters"
            )
        where = f"subscription {name!r}"
        types = value.get("event_types")
        if isinstance(types, str) or not isinstance(types, Iterable) or not list(types):
            raise ButlrConfigurationError(f"{where}: event_types must be a non-empty list")
        types = list(dict.fromkeys(types))
        unknown_types = [t for t in types if t not in EVENT_TYPES]
        if unknown_types:
            raise ButlrConfigurationError(
                f"{where}: unknown event type(s) {unknown_types}; known: {', '.join(EVENT_TYPES)}"
            )
        on_change = value.get("send_on_value_change", False)
        if not isinstance(on_change, bool):
            raise ButlrConfigurationError(f"{where}: send_on_value_change must be true or false")
        timeout = value.get("http_timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= MAX_HTTP_TIMEOUT
        ):
            raise ButlrConfigurationError(
                f"{where}: http_timeout must be whole seconds from 1 to {MAX_HTTP_TIMEOUT}"
            )
        return cls(
            name.strip(), tuple(sorted(types)), _filters(value.get("filters"), where), on_change, timeout
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "event_types": list(self.event_types),
            "filters": self.filters,
            "send_on_value_change": self.send_on_value_change,
            "http_timeout": self.http_timeout,
        }


@dataclass(frozen=True)
class RemoteSubscription:
    """One of Butlr's ``webhooks``; the receiver's secret it holds is kept out of ``repr``."""

    id: str
    name: str
    event_types: tuple[str, ...]
    url: str
    http_timeout: int | None
    auth_kind: str | None  # "api_key", "basic" or None
    auth_label: str  # the API key's header or the basic-auth user name
    filters: dict[str, list[str]] | None
    send_on_value_change: bool
    org_id: str | None
    secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_graphql(cls, item: Any) -> RemoteSubscription:
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            raise ButlrDataError("Butlr's webhooks answer holds an entry without an id")
        endpoint = item.get("endpoint_config") or {}
        api_key, basic = endpoint.get("api_key") or {}, endpoint.get("basic_auth") or {}
        kind, label, secret = None, "", None
        if api_key.get("key"):
            kind, label, secret = "api_key", str(api_key["key"]), api_key.get("value")
        elif basic.get("username"):
            kind, label, secret = "basic", str(basic["username"]), basic.get("password")
        try:
            filters = _filters(item.get("filters"), f"webhook {item['id']}")
        except ButlrConfigurationError:
            filters = {"unreadable": []}  # differs from every declared filter: updated if declared
        return cls(
            id=item["id"],
            name=str(item.get("name") or ""),
            event_types=tuple(sorted(str(t) for t in item.get("event_types") or [])),
            url=str(endpoint.get("url") or ""),
            http_timeout=endpoint.get("http_timeout"),
            auth_kind=kind,
            auth_label=label,
            filters=filters,
            send_on_value_change=bool(item.get("send_on_value_change")),
            org_id=item.get("org_id"),
            secret=secret if isinstance(secret, str) else None,
        )

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "event_types": list(self.event_types), "url": self.url}


def differences(remote: RemoteSubscription, spec: SubscriptionSpec, receiver: ReceiverSettings) -> list[str]:
    """The fields of ``remote`` that differ from the declaration (``auth`` never says how)."""
    auth = receiver.auth
    changed = []
    if set(remote.event_types) != set(spec.event_types):
        changed.append("event_types")
    if remote.url != receiver.url:
        changed.append("url")
    if remote.http_timeout != spec.http_timeout:
        changed.append("http_timeout")
    label = auth.header if auth.kind == "api_key" else auth.username
    if remote.auth_kind != auth.kind or remote.auth_label != label or not auth.same_secret(remote.secret):
        changed.append("auth")
    if (remote.filters or None) != spec.filters:
        changed.append("filters")
    if remote.send_on_value_change != spec.send_on_value_change:
        changed.append("send_on_value_change")
    return changed


@dataclass
class Plan:
    """What reconciling does: creates, updates (with the fields that differ), deletes, unchanged."""

    create: list[SubscriptionSpec] = field(default_factory=list)
    update: list[tuple[RemoteSubscription, SubscriptionSpec, list[str]]] = field(default_factory=list)
    delete: list[RemoteSubscription] = field(default_factory=list)
    unchanged: list[RemoteSubscription] = field(default_factory=list)
    undeclared: list[RemoteSubscription] = field(default_factory=list)  # kept (delete_undeclared off)

    @property
    def changes(self) -> int:
        return len(self.create) + len(self.update) + len(self.delete)

    def summary(self) -> dict[str, Any]:
        """JSON for logs and XCom: names, ids and field names only, never a credential."""
        return {
            "created": [spec.name for spec in self.create],
            "updated": [{"name": s.name, "id": r.id, "changed": c} for r, s, c in self.update],
            "deleted": [r.describe() for r in self.delete],
            "unchanged": [r.name for r in self.unchanged],
            "undeclared_kept": [r.describe() for r in self.undeclared],
        }


def check_declarations(specs: Sequence[SubscriptionSpec]) -> None:
    """Unique names, and each event type in at most one declared subscription (Butlr's rule)."""
    names: set[str] = set()
    owners: dict[str, str] = {}
    for spec in specs:
        if spec.name in names:
            raise ButlrConfigurationError(f"subscription {spec.name!r} is declared twice")
        names.add(spec.name)
        for event_type in spec.event_types:
            if event_type in owners:
                raise ButlrConfigurationError(
                    f"event type {event_type} is declared in subscriptions {owners[event_type]!r} and "
                    f"{spec.name!r}: Butlr allows one subscription per event type per account"
                )
            owners[event_type] = spec.name


def plan_reconciliation(
    specs: Sequence[SubscriptionSpec],
    receiver: ReceiverSettings,
    remote: Sequence[RemoteSubscription],
    *,
    delete_undeclared: bool = False,
) -> Plan:
    """What to change so that Butlr has exactly the declared subscriptions (and, with
    ``delete_undeclared``, nothing else); raises before any change when Butlr's one-subscription-per-
    event-type rule would refuse the result."""
    if receiver.url is None:
        raise ButlrConfigurationError(
            f"host (the receiver's public URL, what Butlr POSTs to) is not set (connection {receiver.conn_id!r})"
        )
    check_declarations(specs)
    by_name: dict[str, RemoteSubscription] = {}
    plan = Plan()
    for item in remote:
        if item.name in by_name and any(s.name == item.name for s in specs):
            raise ButlrConfigurationError(
                f"Butlr has two webhooks named {item.name!r} ({by_name[item.name].id}, {item.id}): "
                "delete one, or rename it, before reconciling"
            )
        by_name.setdefault(item.name, item)
    declared = {spec.name for spec in specs}
    for item in remote:
        if item.name not in declared:
            (plan.delete if delete_undeclared else plan.undeclared).append(item)
    for spec in specs:
        current = by_name.get(spec.name)
        if current is None:
            plan.create.append(spec)
            continue
        changed = differences(current, spec, receiver)
        if changed:
            plan.update.append((current, spec, changed))
        else:
            plan.unchanged.append(current)
    for kept in plan.undeclared:
        taken = sorted(set(kept.event_types) & {t for s in specs for t in s.event_types})
        if taken:
            raise ButlrConfigurationError(
                f"event type(s) {', '.join(taken)} already belong to Butlr webhook {kept.name!r} ({kept.id}), "
                "which is not declared: Butlr allows one subscription per event type per account. Declare "
                "it, delete it, or reconcile with delete_undeclared=True"
            )
    return plan


def endpoint_input(spec: SubscriptionSpec, receiver: ReceiverSettings) -> dict[str, Any]:
    """Butlr's ``EndpointConfigInput`` (camelCase, butlr-api.md §5.1 [GUESS]); holds the secret."""
    endpoint: dict[str, Any] = {"url": receiver.url, **receiver.auth.endpoint_auth()}
    if spec.http_timeout is not None:
        endpoint["httpTimeout"] = spec.http_timeout
    return endpoint


def create_input(spec: SubscriptionSpec, receiver: ReceiverSettings) -> dict[str, Any]:
    """``WebhookCreateInput``: the documented fields only (filters follow in an update)."""
    return {
        "name": spec.name,
        "eventTypes": list(spec.event_types),
        "endpointConfig": endpoint_input(spec, receiver),
    }


def needs_follow_up(spec: SubscriptionSpec) -> bool:
    """Whether a created subscription needs an update for what creation does not take."""
    return spec.filters is not None or spec.send_on_value_change


def update_input(
    webhook_id: str, spec: SubscriptionSpec, receiver: ReceiverSettings, changed: Iterable[str]
) -> dict[str, Any]:
    """``WebhookUpdateInput`` with the changed fields (``filters`` is ``null`` to clear them)."""
    changed = set(changed)
    item: dict[str, Any] = {"id": webhook_id}
    if "event_types" in changed:
        item["eventTypes"] = list(spec.event_types)
    if changed & {"url", "http_timeout", "auth"}:
        item["endpointConfig"] = endpoint_input(spec, receiver)
    if "filters" in changed:
        item["filters"] = spec.filters
    if "send_on_value_change" in changed:
        item["send_on_value_change"] = spec.send_on_value_change
    if "name" in changed:
        item["name"] = spec.name
    return item


def org_ids(remote: Iterable[RemoteSubscription]) -> list[str]:
    return sorted({r.org_id for r in remote if r.org_id})
