"""Apache Airflow provider for the Butlr occupancy-sensing API.

This module must stay cheap to import: Airflow calls :func:`get_provider_info` during provider
discovery, so nothing here may import the hook, requests or the emulator.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

DEFAULT_BASE_URL = "https://api.butlr.io"
DEFAULT_AUDIENCE = "https://butlrauth/"
DEFAULT_TIMEOUT = 30
DEFAULT_MAX_RETRIES = 5
DEFAULT_MAX_RATE_LIMIT_WAIT = 600  # seconds a request may wait out the server's rate limit (429s)
# (least, largest) of each numeric connection extra: refused by name outside (client/settings.py),
# and the form's minimum/maximum below.
EXTRA_BOUNDS: dict[str, tuple[int, int]] = {
    "timeout": (1, 3600),
    "max_retries": (0, 50),
    "max_requests_per_minute": (1, 10_000),
    "max_response_bytes": (1024 * 1024, 4 * 1024**3),
    "max_rate_limit_wait": (0, 86_400),
}
AUTH_TYPES = ("client_credentials", "password")

HOOK_CLASS = "airflow_provider_butlr.hooks.butlr.ButlrHook"
# The webhook receiver (docs/webhooks.md); also the ``airflow.plugins`` entry point, which Airflow loads
# by default (provider-info plugins only with ``[core] lazy_discover_providers = False``).
PLUGIN_NAME = "butlr_webhooks"
PLUGIN_CLASS = "airflow_provider_butlr.webhooks.plugin.ButlrWebhooksPlugin"

DEFAULT_PORT = 443  # of DEFAULT_BASE_URL

# Shared by the declarative form (Airflow >= 3.2) and the legacy hook methods (3.0/3.1).
# The port is shown: Airflow 3.3.2's Test button sends ``port: 0`` for a connection saved without
# one, and the API refuses that as "differs from the stored connection" (the UI shows a bare "Bad
# Request"; apache/airflow#73298). A stored port makes the two agree. Airflow has no default value
# for a standard field and a bare "443" placeholder would read as filled in: it says to type it.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema"],
    # "Port": Airflow 3.0/3.1 would label it "port" (3.2+ says "Port" anyway).
    "relabeling": {"login": "Client ID", "password": "Client Secret", "host": "API base URL", "port": "Port"},
    "placeholders": {
        "host": DEFAULT_BASE_URL,
        "port": f"{DEFAULT_PORT} (type it: the Test button needs a port)",
        "login": "Butlr API client ID (or username for the password grant)",
        "password": "Butlr API client secret (or password)",
    },
}

CONN_FIELDS: dict[str, Any] = {
    "audience": {
        "label": "Audience",
        "description": "OAuth2 audience sent with the client-credentials login.",
        "schema": {"type": ["string", "null"], "default": DEFAULT_AUDIENCE},
    },
    "auth_type": {
        "label": "Grant type",
        "description": "client_credentials (API token: Client ID/Secret) or password "
        "(Client ID/Secret hold a Butlr username and password).",
        "schema": {"type": ["string", "null"], "default": "client_credentials", "enum": list(AUTH_TYPES)},
    },
    "timeout": {
        "label": "Timeout (s)",
        "description": "Per-request HTTP timeout in seconds.",
        "schema": {
            "type": ["integer", "null"],
            "default": DEFAULT_TIMEOUT,
            "minimum": EXTRA_BOUNDS["timeout"][0],
            "maximum": EXTRA_BOUNDS["timeout"][1],
        },
    },
    "max_retries": {
        "label": "Max retries",
        "description": "Retries for 429, 5xx, timeouts and network errors.",
        "schema": {
            "type": ["integer", "null"],
            "default": DEFAULT_MAX_RETRIES,
            "minimum": EXTRA_BOUNDS["max_retries"][0],
            "maximum": EXTRA_BOUNDS["max_retries"][1],
        },
    },
    "max_requests_per_minute": {
        "label": "Max requests per minute",
        "description": "Client-side rate limit shared by every task process and the triggerer of a "
        "host, and by every host with a Redis connection id; empty: off. Butlr does not publish its "
        "limits (about 50/min for REST is the working estimate).",
        "schema": {
            "type": ["integer", "null"],
            "default": None,
            "minimum": EXTRA_BOUNDS["max_requests_per_minute"][0],
            "maximum": EXTRA_BOUNDS["max_requests_per_minute"][1],
        },
    },
    "max_rate_limit_wait": {
        "label": "Max rate-limit wait (s)",
        "description": "How long one request may wait out the server's rate limit (answers 429, "
        "honouring Retry-After) before it fails; 429s never use up the retries. Bounded by the "
        "task's execution_timeout.",
        "schema": {
            "type": ["integer", "null"],
            "default": DEFAULT_MAX_RATE_LIMIT_WAIT,
            "minimum": EXTRA_BOUNDS["max_rate_limit_wait"][0],
            "maximum": EXTRA_BOUNDS["max_rate_limit_wait"][1],
        },
    },
    "redis_conn_id": {
        "label": "Redis connection id",
        "description": "An Airflow Redis connection every host can reach (e.g. the Celery broker's "
        "server): the rate limit and the login lock then hold for the whole deployment. "
        "Needs airflow-provider-butlr[redis].",
        "schema": {"type": ["string", "null"], "default": None},
    },
}


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-provider-butlr",
        "name": "Butlr",
        "description": "Butlr occupancy-sensing API: reporting, stats, assets, device health and webhooks.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Butlr",
                "external-doc-url": "https://docs.butlr.io/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Butlr", "python-modules": ["airflow_provider_butlr.hooks.butlr"]}],
        "operators": [
            {"integration-name": "Butlr", "python-modules": ["airflow_provider_butlr.operators.butlr"]}
        ],
        "sensors": [
            {"integration-name": "Butlr", "python-modules": ["airflow_provider_butlr.sensors.butlr"]}
        ],
        "triggers": [
            {
                "integration-name": "Butlr",
                "python-modules": [
                    "airflow_provider_butlr.triggers.butlr",
                    "airflow_provider_butlr.triggers.occupancy_events",
                ],
            }
        ],
        "plugins": [{"name": PLUGIN_NAME, "plugin-class": PLUGIN_CLASS}],
        "connection-types": [
            {
                "connection-type": "butlr",
                "hook-class-name": HOOK_CLASS,
                "hook-name": "Butlr",
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": CONN_FIELDS,
            }
        ],
    }
