"""Quickstart: check the Butlr connection and list the sites it can see.

Works against the real Butlr API (configure the ``butlr_default`` connection) or the bundled
emulator (``./scripts/demo.sh``).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="butlr_quickstart",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["butlr", "example"],
)
def butlr_quickstart() -> None:
    @task
    def list_sites() -> list[dict[str, str | None]]:
        """Log in (client credentials) and list every site with its timezone."""
        from airflow_provider_butlr.hooks.butlr import ButlrHook

        with ButlrHook() as hook:
            data = hook.graphql("query Sites { sites { data { id name timezone } } }")
        sites = data["sites"]["data"] or []
        for site in sites:
            print(f"site {site['id']}: {site['name']} ({site['timezone'] or 'no timezone'})")
        if not sites:
            raise ValueError("the Butlr connection works but sees no site")
        return sites

    list_sites()


butlr_quickstart()
