"""The Airflow plugin that mounts the webhook receiver on the api-server at ``/butlr`` (Airflow >= 3.0).

Registered twice, as Airflow's own providers do (OpenLineage): the ``airflow.plugins`` entry point,
which Airflow 3.0 to 3.3 always load, and the provider info's ``plugins`` list, which they load only
with ``[core] lazy_discover_providers = False`` (then the name is already registered and skipped).

Every Airflow process loads plugins (scheduler, workers, DAG processor); only the api-server mounts
``fastapi_apps``. The app is therefore an ASGI callable that builds the FastAPI app on its first
request: elsewhere, loading the plugin imports neither FastAPI nor the receiver.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow.providers.common.compat.sdk import AirflowPlugin

URL_PREFIX = "/butlr"  # the receiver answers POST /butlr/webhooks


class LazyReceiverApp:
    """An ASGI app that builds :func:`~airflow_provider_butlr.webhooks.receiver.create_app` when first called."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def _build(self) -> Any:
        with self._lock:
            if self._app is None:
                from airflow_provider_butlr.webhooks.receiver import create_app

                self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self._app or self._build()
        await app(scope, receive, send)


class ButlrWebhooksPlugin(AirflowPlugin):
    """The Butlr webhook receiver (docs/webhooks.md)."""

    name = "butlr_webhooks"
    fastapi_apps = [{"app": LazyReceiverApp(), "url_prefix": URL_PREFIX, "name": "Butlr webhook receiver"}]
