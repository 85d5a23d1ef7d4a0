"""This provider's side of the comparisons: a hook on the benchmark connection and one reporting call."""

from __future__ import annotations

from typing import Any

from benchmarks.common import BENCH_CONN_ID
from benchmarks.contenders import REPORTING_PATH


def new_hook(**kwargs: Any) -> Any:
    """A fresh ``ButlrHook`` on ``butlr_bench`` (each one resolves the connection lazily, once)."""
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    return ButlrHook(BENCH_CONN_ID, **kwargs)


def reporting(hook: Any, body: dict[str, Any]) -> Any:
    """One reporting call: ``query_reporting`` when the hook has it, else the generic JSON request."""
    query = getattr(hook, "query_reporting", None)
    if query is not None:
        return query(body)
    return hook.request_json("POST", REPORTING_PATH, json=body)


def clear_token_cache() -> None:
    """Forget every cached token: the next hook logs in, as in a fresh worker process."""
    from airflow_provider_butlr.client.tokens.cache import TOKEN_CACHE

    TOKEN_CACHE.clear()
