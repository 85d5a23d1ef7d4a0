"""Declarative sensor conditions and poll plans (public import path; they live in :mod:`.polling`)."""

from __future__ import annotations

from airflow_provider_butlr.polling.answers import Verdict
from airflow_provider_butlr.polling.conditions import (
    CONDITION_TYPES,
    Condition,
    DataComplete,
    Occupancy,
    RowsComplete,
    ValueAt,
    condition_from_dict,
)
from airflow_provider_butlr.polling.plans import PollPlan, PollRequest

__all__ = [
    "CONDITION_TYPES",
    "Condition",
    "DataComplete",
    "Occupancy",
    "PollPlan",
    "PollRequest",
    "RowsComplete",
    "ValueAt",
    "Verdict",
    "condition_from_dict",
]
