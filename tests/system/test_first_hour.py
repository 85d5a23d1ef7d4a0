"""A new user's first hour (issue 25): finding one's ids, the docs' reference of templated fields,
and an install section that does not send people to a package that is not published.

The install commands and the walkthrough themselves run word for word in CI
(``scripts/package_check.sh``); the README's first DAG also runs in ``test_docs_examples.py``.
"""

from __future__ import annotations

import re
from typing import Any

import pendulum
import pytest

from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.dag
def test_find_my_ids_prints_every_site_building_floor_room_and_zone(
    butlr_conn: Any, airflow_db: str, capfd: pytest.CaptureFixture[str]
) -> None:
    from tests.system.test_example_dags import run

    run("butlr_find_my_ids", pendulum.datetime(2025, 3, 10, tz="UTC"))  # asserts the run succeeded
    out = capfd.readouterr()
    printed = out.out + out.err
    org = butlr_conn.org
    expected = [
        *(f"site {s.id}  {s.name}  ({s.timezone or 'no timezone: UTC'})" for s in org.sites),
        *(f"building {b.id}  {b.name}" for b in org.buildings_by_id.values()),
        *(f"floor {f.id}  {f.name}" for f in org.floors_by_id.values()),
        *(f"room {r.id}  {r.name}" for r in org.rooms_by_id.values()),
        *(f"zone {z.id}  {z.name}" for z in org.zones_by_id.values()),
    ]
    assert len(expected) > 50
    missing = [line for line in expected if line not in printed]
    assert not missing, missing[:5]
    assert butlr_conn.counters.requests("/api/v3/graphql") == 1


def documented_templated_fields(doc: str, heading: str) -> set[str]:
    """The ``Templated fields:`` line of the section ``## <heading>...`` of ``docs/<doc>``."""
    text = (REPO / "docs" / doc).read_text(encoding="utf-8")
    section = re.search(rf"^## {re.escape(heading)}\b.*?(?=^## |\Z)", text, flags=re.S | re.M)
    assert section, f"docs/{doc} has no section for {heading}"
    line = re.search(r"^\*\*Templated fields:\*\* (.*)$", section.group(0), flags=re.M)
    assert line, f"docs/{doc}, {heading}: no 'Templated fields:' line"
    return set(re.findall(r"`([a-z_]+)`", line.group(1)))


def public_classes() -> list[tuple[str, str, Any]]:
    from airflow_provider_butlr.operators import butlr as operators
    from airflow_provider_butlr.sensors import butlr as sensors

    found = []
    for doc, module in (("operators.md", operators), ("sensors.md", sensors)):
        for name in module.__all__:
            cls = getattr(module, name)
            if hasattr(cls, "template_fields") and name.endswith(("Operator", "Sensor")):
                found.append((doc, name, cls))
    return found


@pytest.mark.parametrize(
    ("doc", "name", "cls"), public_classes(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_the_docs_list_each_operators_and_sensors_templated_fields(doc: str, name: str, cls: Any) -> None:
    assert documented_templated_fields(doc, name) == set(cls.template_fields)


def test_every_operator_and_sensor_is_covered() -> None:
    names = {name for _, name, _ in public_classes()}
    assert {"ButlrReportingOperator", "ButlrStatsOperator", "ButlrDataCompleteSensor", "ButlrSensor"} <= names
    assert len(names) == 9


def test_the_readme_marks_the_registry_install_as_not_yet_published() -> None:
    install = README[README.index("## Install\n") : README.index("## The connection\n")]
    assert "not yet published" in install
    assert (
        '```bash title="install from a clone"' in install
        and '```bash title="install from a built wheel"' in install
    )
    registry = [
        line for line in install.splitlines() if line.startswith("pip install airflow-provider-butlr")
    ]
    published = install[install.index("**Once published**") :]
    assert registry and all(line in published for line in registry)
    assert install.index("**Once published**") > install.index("install from a built wheel")


def test_the_s3_example_builds_with_its_output_connection() -> None:
    """docs/operators.md's S3 export (not run: no S3 here) builds in a DAG and renders its key."""
    from airflow.sdk import DAG

    text = (REPO / "docs" / "operators.md").read_text(encoding="utf-8")
    (block,) = re.findall(r'```python title="s3 export"\n(.*?)```', text, flags=re.S)
    with DAG(dag_id="docs_s3", schedule=None, start_date=pendulum.datetime(2025, 3, 10, tz="UTC")) as dag:
        exec(compile(block, "operators.md", "exec"), {})
    task = dag.task_dict["export_to_s3"]
    from airflow.sdk.execution_time import macros

    task.render_template_fields({"ds": "2025-03-10", "macros": macros})
    assert task.output_conn_id == "aws_default"
    assert task.output_path == "s3://my-bucket/butlr/room_occupancy/2025-03-09.jsonl.gz"
    target = task._output_target()  # the ObjectStoragePath the export writes to
    # (Airflow 3.2+ exposes conn_id; 3.0/3.1 keep it in storage_options only)
    assert getattr(target, "conn_id", None) or target.storage_options["conn_id"] == "aws_default"
    assert target.storage_options.get("conn_id", "aws_default") == "aws_default"
