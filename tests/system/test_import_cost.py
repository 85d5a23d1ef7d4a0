"""A DAG file that imports the operators and sensors stays cheap to parse (benchmarks/ scenario 5).

The DAG processor re-parses every file often; the provider must not pull in ``requests``, the
emulator, httpx's async client paths or form libraries at import time. Fresh interpreters, so
nothing imported by other tests hides a regression.
"""

from __future__ import annotations

from tests.unit.test_registration import run_python

DAG_IMPORTS_PROBE = """
import json, sys
import airflow.sdk  # loaded in the DAG processor already: only what the provider adds counts
before = set(sys.modules)
import airflow_provider_butlr.operators.butlr
import airflow_provider_butlr.sensors.butlr
print(json.dumps(sorted(set(sys.modules) - before)))
"""
NOT_AT_PARSE_TIME = (
    "requests",
    "urllib3",
    "airflow_provider_butlr.testing",  # the emulator
    "airflow_provider_butlr.triggers.butlr",  # the trigger: imported when a sensor defers
    "airflow_provider_butlr.hooks.butlr_async",
    "airflow_provider_butlr.hooks.butlr",  # the hook: imported in execute / poke, not at parse time
    "airflow_provider_butlr.client.flow",
    "airflow_provider_butlr.client.tokens.stores",
    "airflow.triggers.base",
    "graphql",
    "wtforms",
    "flask",
)


def test_operators_and_sensors_import_no_http_client_emulator_or_forms() -> None:
    loaded = run_python(DAG_IMPORTS_PROBE)
    assert "airflow_provider_butlr.operators.butlr" in loaded  # the probe did import the provider
    unwanted = [m for m in loaded if any(m == n or m.startswith(n + ".") for n in NOT_AT_PARSE_TIME)]
    assert unwanted == []
