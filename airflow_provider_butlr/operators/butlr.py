"""The Butlr operators (this import path is public: DAG files import them from here).

Thin wrappers that validate arguments, call one ButlrHook method and shape the output. Nothing here
touches the network or a Connection while a DAG file is parsed: hooks are built in ``execute``.
Arguments are validated at construction when they are plain values, and again at the start of
``execute`` after templates were rendered, with errors naming the argument.
"""

from __future__ import annotations

from airflow_provider_butlr.exceptions import ButlrDeviceHealthError
from airflow_provider_butlr.operators.device_health import ButlrDeviceHealthOperator
from airflow_provider_butlr.operators.generic import ButlrOperator
from airflow_provider_butlr.operators.graphql import ButlrGraphQLOperator
from airflow_provider_butlr.operators.reporting import ButlrReportingOperator
from airflow_provider_butlr.operators.stats import ButlrStatsOperator
from airflow_provider_butlr.operators.webhooks import ButlrWebhookSubscriptionOperator

__all__ = [
    "ButlrDeviceHealthError",
    "ButlrDeviceHealthOperator",
    "ButlrGraphQLOperator",
    "ButlrOperator",
    "ButlrReportingOperator",
    "ButlrStatsOperator",
    "ButlrWebhookSubscriptionOperator",
]
