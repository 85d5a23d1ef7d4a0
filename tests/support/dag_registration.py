"""Write a DAG folder and its assets to the metadata DB, as the DAG processor does.

Airflow 3.0's ``dag.test()`` does not: a task with an ``Asset`` outlet then fails with
``AirflowInactiveAssetInInletOrOutletException``. 3.1+ syncs the bundle itself; doing it here
too is harmless.
"""

from __future__ import annotations

from pathlib import Path


def register_dags(folder: str | Path, bundle_name: str = "dags-folder") -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    DagBundlesManager().sync_bundles_to_db()
    try:  # Airflow 3.2+
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

        try:  # 3.1
            from airflow.models.dagbag import sync_bag_to_db  # type: ignore[no-redef]
        except ImportError:  # 3.0
            DagBag(dag_folder=str(folder)).sync_to_db(bundle_name, None)
            return
    sync_bag_to_db(DagBag(dag_folder=str(folder)), bundle_name, None)
