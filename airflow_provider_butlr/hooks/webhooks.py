"""Webhook subscriptions through the hook: list, create, update, delete, and reconcile as code.

A mixin of :class:`~airflow_provider_butlr.hooks.butlr.ButlrHook` (it uses the hook's ``graphql``).
What to change is decided in :mod:`airflow_provider_butlr.push.subscriptions` (pure); here the
GraphQL calls are made, in an order Butlr's one-subscription-per-event-type rule accepts: deletions,
then every update in one batch (an event type can move between subscriptions), then creations.

Secrets: the receiver's key or password (from its connection) and any credential Butlr's ``webhooks``
answer holds are registered with Airflow's masker and the provider's scrubber as soon as they are
read, so no log line or error message can show them; results hold names, ids and field names only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

from airflow_provider_butlr.client.tokens.cache import mask_token
from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrDataError
from airflow_provider_butlr.hooks.connection_lookup import connection_not_found
from airflow_provider_butlr.push.receiver import DEFAULT_CONN_ID, ReceiverSettings
from airflow_provider_butlr.push.subscriptions import (
    CREATE_MUTATION,
    DELETE_MUTATION,
    UPDATE_MUTATION,
    WEBHOOKS_QUERY,
    Plan,
    RemoteSubscription,
    SubscriptionSpec,
    create_input,
    needs_follow_up,
    org_ids,
    plan_reconciliation,
    update_input,
)

log = logging.getLogger(__name__)


def receiver_settings(conn_id: str = DEFAULT_CONN_ID) -> ReceiverSettings:
    """The webhook receiver's connection, validated; its secret is masked at once."""
    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as err:
        raise connection_not_found(conn_id, err) from err
    if conn.password:
        mask_token(conn.password)
    return ReceiverSettings.from_fields(
        conn_id, host=conn.host, login=conn.login, password=conn.password, extra=conn.extra_dejson
    )


class ButlrWebhooksMixin:
    """``list_webhooks``, ``create_webhooks``, ``update_webhooks``, ``delete_webhooks``, ``reconcile_webhooks``."""

    if TYPE_CHECKING:  # ButlrHook's

        def graphql(
            self, query: str, variables: dict[str, Any] | None = None, operation_name: str | None = None
        ) -> Any: ...

    def list_webhooks(self) -> list[RemoteSubscription]:
        """Every webhook subscription of the account (credentials kept out of ``repr`` and masked)."""
        data = self.graphql(WEBHOOKS_QUERY)
        items = (data or {}).get("webhooks")
        if not isinstance(items, list):
            raise ButlrDataError("Butlr's webhooks query answered without a list of webhooks")
        remote = [RemoteSubscription.from_graphql(item) for item in items]
        for item in remote:
            if item.secret:
                mask_token(item.secret)
        return remote

    def create_webhooks(
        self, specs: Sequence[SubscriptionSpec], receiver: ReceiverSettings
    ) -> list[dict[str, Any]]:
        """Create ``specs`` (one batch); set what creation does not take (filters, ``send_on_value_change``)
        with an update; ``[{"id", "name", "org_id"}]`` of the new ones, in order."""
        if not specs:
            return []
        data = self.graphql(CREATE_MUTATION, {"input": [create_input(s, receiver) for s in specs]})
        created = (data or {}).get("createWebhooks") or []
        if len(created) != len(specs) or not all(isinstance(c, Mapping) and c.get("id") for c in created):
            raise ButlrDataError("Butlr's createWebhooks answered without an id for each created webhook")
        ids = [str(c["id"]) for c in created]
        follow = [
            update_input(i, s, receiver, ["filters", "send_on_value_change"])
            for i, s in zip(ids, specs, strict=True)
            if needs_follow_up(s)
        ]
        if follow:
            self.graphql(UPDATE_MUTATION, {"input": follow})
        return [
            {"id": i, "name": s.name, "org_id": c.get("org_id")}
            for i, s, c in zip(ids, specs, created, strict=True)
        ]

    def update_webhooks(
        self, updates: Sequence[tuple[str, SubscriptionSpec, Iterable[str]]], receiver: ReceiverSettings
    ) -> None:
        """Update ``(webhook id, declaration, changed fields)`` in one batch."""
        if updates:
            items = [update_input(i, spec, receiver, changed) for i, spec, changed in updates]
            self.graphql(UPDATE_MUTATION, {"input": items})

    def delete_webhooks(self, ids: Sequence[str]) -> None:
        if ids:
            data = self.graphql(DELETE_MUTATION, {"ids": list(ids)})
            if (data or {}).get("deleteWebhooks") is not True:
                raise ButlrDataError(f"Butlr did not confirm deleting webhooks {list(ids)}")

    def plan_webhooks(
        self,
        subscriptions: Iterable[SubscriptionSpec | Mapping[str, Any]],
        receiver: ReceiverSettings,
        *,
        delete_undeclared: bool = False,
    ) -> tuple[Plan, list[RemoteSubscription]]:
        """The reconciliation plan against what Butlr has now (one read, nothing changed)."""
        specs = [SubscriptionSpec.from_json(s, f"subscriptions[{i}]") for i, s in enumerate(subscriptions)]
        remote = self.list_webhooks()
        return plan_reconciliation(specs, receiver, remote, delete_undeclared=delete_undeclared), remote

    def reconcile_webhooks(
        self,
        subscriptions: Iterable[SubscriptionSpec | Mapping[str, Any]],
        receiver: ReceiverSettings,
        *,
        delete_undeclared: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Make Butlr's subscriptions the declared ones; idempotent (nothing changed: one read only).

        Returns the plan's summary (names, ids, changed field names; never a credential), with the
        organisation ids Butlr reports and whether it was a dry run.
        """
        plan, remote = self.plan_webhooks(subscriptions, receiver, delete_undeclared=delete_undeclared)
        orgs = org_ids(remote)
        _check_organisation(orgs, receiver)
        if not dry_run and plan.changes:
            self.delete_webhooks([r.id for r in plan.delete])
            self.update_webhooks([(r.id, s, c) for r, s, c in plan.update], receiver)
            created = self.create_webhooks(plan.create, receiver)
            orgs = sorted({*orgs, *(str(c["org_id"]) for c in created if c.get("org_id"))})
            _check_organisation(orgs, receiver)
        summary = {**plan.summary(), "dry_run": dry_run, "org_ids": orgs, "receiver": receiver.url}
        log.info(
            "Butlr webhooks%s: %d created, %d updated, %d deleted, %d unchanged, %d undeclared kept.",
            " (dry run)" if dry_run else "",
            len(plan.create),
            len(plan.update),
            len(plan.delete),
            len(plan.unchanged),
            len(plan.undeclared),
        )
        return summary


def _check_organisation(orgs: Iterable[str], receiver: ReceiverSettings) -> None:
    """The receiver refuses other organisations' events: say so now rather than answer 403 to Butlr."""
    foreign = sorted(o for o in orgs if o != receiver.org_id)
    if foreign:
        raise ButlrConfigurationError(
            f"Butlr reports webhooks of organisation {', '.join(foreign)}, but the receiver (connection "
            f"{receiver.conn_id!r}, extra.org_id) accepts only {receiver.org_id}: it would refuse their events"
        )
