"""The total deadline of a sync request relies only on urllib3's public extension points."""

from __future__ import annotations

from typing import Any

from airflow_provider_butlr.client.deadline import POOL_CLASSES, DeadlineAdapter, deadline

SITES = {"query": "{ sites { data { id } } }"}


def test_every_pool_and_connection_of_the_session_reports_to_the_deadline(
    butlr_conn: Any, fast_hook: Any
) -> None:
    hook = fast_hook()
    session = hook.get_conn()
    adapter = session.get_adapter(butlr_conn.url)
    assert isinstance(adapter, DeadlineAdapter)
    pool = adapter.poolmanager.connection_from_url(butlr_conn.url)
    assert type(pool) is POOL_CLASSES["http"]  # urllib3 still builds pools from pool_classes_by_scheme
    with deadline(5.0) as guard:
        response = session.post(hook.url_for("/api/v3/graphql"), json=SITES, timeout=5)
    assert response.status_code == 200
    # the connection that carried the request told its deadline which socket to shut
    assert isinstance(guard.connection, pool.ConnectionCls)
    assert guard.connection.sock is not None or not guard.fired
