"""The admin API's webhook endpoints (``/_emulator/webhooks...``): subscriptions, deliveries, deliver now.

Subscriptions made here are the same as ``createWebhooks`` ones (one store, one-per-event-type rule).
Answers never carry API-key values or passwords; delivery records carry the URL without credentials or
query string, the status code or error of the last attempt and the payload sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qs

from airflow_provider_butlr.testing.graphql.webhooks import WebhookStore
from airflow_provider_butlr.testing.http.server import Request
from airflow_provider_butlr.testing.webhook_delivery import WebhookDeliverer

SUBSCRIBE_KEYS = (
    "url",
    "event_types",
    "name",
    "api_key",
    "basic_auth",
    "http_timeout",
    "filters",
    "send_on_value_change",
)
STATUSES = ("pending", "delivered", "failed", "blocked")


class WebhookControls(Protocol):
    deliverer: WebhookDeliverer
    webhooks: WebhookStore

    def subscribe(self, url: str, *args: Any, **kwargs: Any) -> dict[str, Any]: ...


class WebhookAdminError(ValueError):
    """A refused admin request (HTTP 400 unless ``status`` says otherwise)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _params(request: Request) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(request.query).items()}


def _int(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise WebhookAdminError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class WebhookAdmin:
    """Routes of the webhook part of the admin API; ``body(request)`` reads a JSON object body."""

    def __init__(self, controls: WebhookControls, body: Callable[[Request], dict[str, Any]]) -> None:
        self.controls = controls
        self.body = body
        self.routes: dict[tuple[str, str], Callable[[Request], Any]] = {
            ("GET", "/webhooks"): self.list_webhooks,
            ("POST", "/webhooks"): self.subscribe,
            ("GET", "/webhooks/deliveries"): self.deliveries,
            ("DELETE", "/webhooks/deliveries"): self.clear_deliveries,
            ("POST", "/webhooks/deliver"): self.deliver,
        }

    def list_webhooks(self, _request: Request) -> dict[str, Any]:
        return {"webhooks": self.controls.deliverer.summary()}

    def subscribe(self, request: Request) -> dict[str, Any]:
        """``{"url", "event_types", "name", "api_key": {"key", "value"}, "basic_auth", ...}``."""
        body = self.body(request)
        unknown = sorted(set(body) - set(SUBSCRIBE_KEYS))
        if unknown or not isinstance(body.get("url"), str):
            raise WebhookAdminError(
                f"give url (and optionally {', '.join(SUBSCRIBE_KEYS[1:])}); unknown: {unknown}"
            )
        options = {k: body[k] for k in SUBSCRIBE_KEYS[1:] if body.get(k) is not None}
        hook = self.controls.subscribe(body["url"], **options)
        return next(h for h in self.controls.deliverer.summary() if h["id"] == hook["id"])

    def unsubscribe(self, webhook_id: str) -> dict[str, Any]:
        if webhook_id not in {h["id"] for h in self.controls.webhooks.all()}:
            raise WebhookAdminError(f"no webhook with id {webhook_id!r}", 404)
        self.controls.webhooks.delete([webhook_id])
        return {"removed": webhook_id}

    def deliveries(self, request: Request) -> dict[str, Any]:
        """``?webhook_id=&status=&limit=&payload=0``: records oldest first (the last ``limit``)."""
        params = _params(request)
        status = params.get("status")
        if status is not None and status not in STATUSES:
            raise WebhookAdminError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        limit = _int(params["limit"], "limit", 1) if "limit" in params else None
        records = self.controls.deliverer.deliveries(params.get("webhook_id"), status, limit)
        if params.get("payload") in ("0", "false"):
            for record in records:
                record.pop("payload", None)
        return {"count": len(records), "deliveries": records}

    def clear_deliveries(self, _request: Request) -> dict[str, Any]:
        return {"cleared": self.controls.deliverer.clear_deliveries()}

    def deliver(self, request: Request) -> dict[str, Any]:
        """``{"webhook_id": optional, "resend_minutes": optional}``: a delivery pass now, retries included."""
        body = self.body(request)
        unknown = sorted(set(body) - {"webhook_id", "resend_minutes"})
        if unknown:
            raise WebhookAdminError(f"unknown key(s) {unknown}; allowed: webhook_id, resend_minutes")
        resend = _int(body.get("resend_minutes", 0), "resend_minutes")
        records = self.controls.deliverer.deliver_now(body.get("webhook_id"), resend)
        return {"attempted": len(records), "deliveries": records}
