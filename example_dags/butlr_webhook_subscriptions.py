"""Webhook subscriptions as code: make Butlr push room occupancy to this Airflow, checked daily.

Declares one subscription (``ROOM_OCCUPANCY_1MIN`` of the rooms below) and reconciles it with what
Butlr has: created on the first run, updated when the declaration, the receiver's URL or its key
changed, untouched otherwise (a run that changes nothing only reads Butlr's subscriptions once).
The receiver (``POST /butlr/webhooks`` on the api-server, docs/webhooks.md) turns the pushed minutes
into asset events; ``butlr_room_empty_webhooks`` is scheduled on them.

Configuration (read when the file is parsed):

* ``BUTLR_WEBHOOK_ROOMS``: comma-separated room ids (default: a room of the bundled emulator's seed 42);
* ``BUTLR_WEBHOOK_DELETE_UNDECLARED``: ``true`` deletes every other subscription of the account;
* ``BUTLR_WEBHOOK_SUBSCRIPTIONS_SCHEDULE``: the DAG's schedule (default ``@daily``; empty: by hand only).

Connections: ``butlr_default`` (the Butlr API) and ``butlr_webhook_default`` (the receiver: its public
URL in ``host``, the shared key in ``password``, ``extra.org_id``; docs/webhooks.md).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag

from airflow_provider_butlr.operators.butlr import ButlrWebhookSubscriptionOperator

EMULATOR_ROOM = "room_2aVq9x4BafE7tFacPaWvCiEOfIJ"  # a presence-covered room of the emulator's seed 42
ROOMS = [r.strip() for r in os.environ.get("BUTLR_WEBHOOK_ROOMS", EMULATOR_ROOM).split(",") if r.strip()]
DELETE_UNDECLARED = os.environ.get("BUTLR_WEBHOOK_DELETE_UNDECLARED", "false").lower() == "true"
SCHEDULE = os.environ.get("BUTLR_WEBHOOK_SUBSCRIPTIONS_SCHEDULE", "@daily") or None

SUBSCRIPTIONS = [
    {
        "name": "airflow-room-occupancy",
        "event_types": ["ROOM_OCCUPANCY_1MIN"],
        "filters": {"room_ids": ROOMS},
        "http_timeout": 10,
    }
]


@dag(
    dag_id="butlr_webhook_subscriptions",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["butlr", "example", "webhooks"],
    doc_md=__doc__,
)
def butlr_webhook_subscriptions() -> None:
    ButlrWebhookSubscriptionOperator(
        task_id="reconcile_subscriptions",
        subscriptions=SUBSCRIPTIONS,
        delete_undeclared=DELETE_UNDECLARED,
    )


butlr_webhook_subscriptions()
