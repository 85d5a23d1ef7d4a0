"""What ButlrTrigger's events look like and its default budgets, shared with the sensors.

A module of its own so that a DAG file importing the sensors does not import the trigger (and with
it Airflow's trigger base and the async client): the DAG processor parses DAG files often.
"""

from __future__ import annotations

EVENT_STATUSES = ("success", "error", "timeout")
DEFAULT_MAX_CONSECUTIVE_FAILURES = 5
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024
MAX_POLL_INTERVAL = 86_400.0  # a day between polls at the most (absurd values are refused by name)
