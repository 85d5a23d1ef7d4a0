"""The cross-host store (``token_cache: variable``) in real Airflow tasks (``dag.test()``): the Variable
holds only the Fernet-encrypted token, and a host with an empty token directory reuses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_provider_butlr.client.tokens.cache import TOKEN_CACHE
from airflow_provider_butlr.client.tokens.stores import VARIABLE_PREFIX
from tests.conftest import TEST_CLIENT_SECRET, connection_json

pytestmark = [
    pytest.mark.dag,
    pytest.mark.skipif(
        __import__("tests.support.airflow_versions", fromlist=["x"]).airflow_version_tuple() < (3, 1, 0),
        reason="Airflow 3.0's dag.test() cannot run a DAG defined outside a DAG file (relative_fileloc)",
    ),
]


def _dag() -> Any:
    from airflow.sdk import DAG, task

    with DAG(
        "butlr_token_variable", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False
    ) as dag:

        @task
        def call_butlr() -> int:
            from airflow_provider_butlr.hooks.butlr import ButlrHook

            data = ButlrHook().graphql("query { sites { data { id } } }")
            return len(data["sites"]["data"])

        call_butlr()
    _serialize(dag)
    return dag


def _serialize(dag: Any) -> None:
    """dag.test() runs only DAGs in the metadata DB; this one is not in a bundle, so write it there."""
    try:  # Airflow 3.2+
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

        try:  # 3.1
            from airflow.models.dagbag import sync_bag_to_db  # type: ignore[no-redef]
        except ImportError:  # 3.0
            sync_bag_to_db = None
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    DagBundlesManager().sync_bundles_to_db()  # the bundle row the DAG refers to
    bag = DagBag(dag_folder="/nonexistent")
    bag.bag_dag(dag)
    if sync_bag_to_db is not None:
        sync_bag_to_db(bag, "dags-folder", None)
    else:
        bag.sync_to_db("dags-folder", None)


def _stored_variables() -> dict[str, str]:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(Variable).filter(Variable.key.startswith(VARIABLE_PREFIX)).all()
        return {row.key: row.val for row in rows}


def test_a_second_host_reuses_the_token_from_the_variable(
    butlr_conn: Any, airflow_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dag = _dag()
    for host in ("host-a", "host-b"):
        TOKEN_CACHE.clear(stores=False)  # a new process on another host: empty memory, empty directory
        conn = connection_json(butlr_conn, token_cache="variable", token_cache_dir=str(tmp_path / host))
        monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", conn)
        dag_run = dag.test(logical_date=pendulum.now("UTC"))
        assert dag_run.state == "success"
    assert butlr_conn.counters.logins == 1
    stored = _stored_variables()
    assert len(stored) == 1
    value = next(iter(stored.values()))
    for token in butlr_conn.issued_tokens:
        assert token[:12] not in value and token.split(".")[1][:12] not in value
    assert TEST_CLIENT_SECRET not in value and butlr_conn.client_id not in value
    assert list((tmp_path / "host-b").glob("*.token"))  # host B keeps its own encrypted copy
