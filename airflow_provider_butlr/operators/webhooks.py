"""ButlrWebhookSubscriptionOperator: Butlr's webhook subscriptions as code, reconciled on every run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.hooks.base import ButlrBaseHook
from airflow_provider_butlr.operators.common import ensure_json, new_hook
from airflow_provider_butlr.push.receiver import DEFAULT_CONN_ID
from airflow_provider_butlr.push.subscriptions import SubscriptionSpec, check_declarations
from airflow_provider_butlr.reporting.arguments import Check, run_checks

if TYPE_CHECKING:
    from airflow.sdk import Context


class ButlrWebhookSubscriptionOperator(BaseOperator):
    """Make Butlr's webhook subscriptions the declared ones: create what is missing, update what
    differs, and with ``delete_undeclared`` delete every other subscription of the account.

    Idempotent: when nothing differs, the run reads Butlr's subscriptions once and changes nothing.
    Subscriptions are matched by name. The receiver's URL and authentication come from the receiver's
    connection (``receiver_conn_id``; docs/webhooks.md), the same one the receiver checks requests
    against, so a rotated key is pushed to Butlr by the next run.

    :param subscriptions: ``[{"name", "event_types", "filters", "send_on_value_change",
        "http_timeout"}]``; ``filters`` keys: ``org_ids``, ``site_ids``, ``building_ids``, ``floor_ids``,
        ``room_ids``, ``zone_ids``, ``mac_addresses``. One subscription per event type (Butlr's rule).
    :param receiver_conn_id: the receiver's connection (default ``butlr_webhook_default``).
    :param delete_undeclared: delete the account's subscriptions that are not declared here.
    :param plan_only: only compute and return the plan (a dry run; nothing is changed).
    :return: (XCom) ``{"created", "updated", "deleted", "unchanged", "undeclared_kept", "dry_run",
        "org_ids", "receiver"}``: names, ids and changed field names, never a credential.
    """

    template_fields: Sequence[str] = ("butlr_conn_id", "receiver_conn_id", "subscriptions")
    template_fields_renderers = {"subscriptions": "json"}
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        subscriptions: Sequence[Mapping[str, Any]],
        receiver_conn_id: str = DEFAULT_CONN_ID,
        delete_undeclared: bool = False,
        plan_only: bool = False,
        butlr_conn_id: str = ButlrBaseHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subscriptions = subscriptions
        self.receiver_conn_id = receiver_conn_id
        self.delete_undeclared = delete_undeclared
        self.plan_only = plan_only
        self.butlr_conn_id = butlr_conn_id
        run_checks(self, self.checks, final=False)

    @staticmethod
    def _check_subscriptions(subscriptions: Any) -> None:
        if isinstance(subscriptions, (str, bytes)) or not isinstance(subscriptions, Sequence):
            raise ButlrConfigurationError("subscriptions must be a list of subscription mappings")
        check_declarations(
            [SubscriptionSpec.from_json(s, f"subscriptions[{i}]") for i, s in enumerate(subscriptions)]
        )

    checks: Sequence[Check] = (Check("subscriptions", ("subscriptions",), _check_subscriptions),)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_butlr.hooks.webhooks import receiver_settings

        run_checks(self, self.checks, final=True)
        receiver = receiver_settings(self.receiver_conn_id)
        with new_hook(self.butlr_conn_id) as hook:
            summary = hook.reconcile_webhooks(
                self.subscriptions, receiver, delete_undeclared=self.delete_undeclared, dry_run=self.plan_only
            )
        return dict(ensure_json(summary, "the reconciliation summary"))
