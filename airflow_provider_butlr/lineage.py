"""OpenLineage for the Butlr operators: inputs named after the Butlr API, outputs from the written file.

Naming (docs/assets-and-lineage.md):

* inputs: namespace ``butlr://<API host>[:port]`` (from the connection's host; never its login or
  secret), name ``reporting/<measurement>``, ``stats/<measurement>`` or ``graphql/<operation>``;
* outputs: the export's file, named as OpenLineage names files: a local path -> namespace ``file``,
  name the absolute path; ``s3://bucket/key`` -> namespace ``s3://bucket``, name ``key`` (same for gs,
  hdfs...), with an ``outputStatistics`` facet (``rowCount``, ``size`` when known).

The OpenLineage provider (the ``[openlineage]`` extra) is imported inside these functions only: a
DAG file that imports the operators pays nothing for it, and without the provider nothing runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from airflow_provider_butlr.assets import lineage_namespace

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

OBJECT_STORE_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs", "hdfs": "hdfs", "abfs": "abfs"}
_OPERATION = re.compile(r"^\s*(?:query|mutation|subscription)\s+([A-Za-z_]\w*)", re.MULTILINE)
_FIRST_FIELD = re.compile(r"\{\s*([A-Za-z_]\w*)")


def namespace_for(conn_id: str) -> str:
    """``butlr://<host>`` of the connection (read the same way the hook reads it)."""
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    return lineage_namespace(ButlrHook(conn_id).settings.base_url)


def graphql_dataset_name(query: str, operation_name: str | None = None) -> str:
    """``graphql/<operation>``: the operation name, else the first selected field (``sites``)."""
    name = operation_name
    if not name:
        match = _OPERATION.search(query or "")
        name = match.group(1) if match else None
    if not name:
        field = _FIRST_FIELD.search(query or "")
        name = field.group(1) if field else "query"
    return f"graphql/{name}"


def output_name(path: str) -> tuple[str, str]:
    """(namespace, name) of a written file in OpenLineage's naming for files and object stores."""
    if "://" not in path:
        return "file", os.path.abspath(os.path.expanduser(path))
    parts = urlsplit(path)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return "file", unquote(parts.path) or "/"
    final = OBJECT_STORE_SCHEMES.get(scheme, scheme)
    return f"{final}://{parts.netloc}", parts.path.lstrip("/")


def _file_size(path: str) -> int | None:
    """The written file's size when it is cheap to know (a local file); None otherwise."""
    local = path if "://" not in path else (urlsplit(path).path if path.startswith("file://") else None)
    try:
        return os.path.getsize(unquote(local)) if local else None
    except OSError:
        return None


def build_lineage(
    namespace: str,
    input_names: Iterable[str],
    *,
    output_path: str | None = None,
    rows: int | None = None,
) -> OperatorLineage:
    """OperatorLineage with one input per API dataset and the output file (with statistics if known)."""
    from airflow.providers.common.compat.openlineage.facet import (
        InputDataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    inputs = [InputDataset(namespace=namespace, name=name) for name in dict.fromkeys(input_names)]
    outputs = []
    if output_path:
        out_namespace, out_name = output_name(output_path)
        facets: dict[str, Any] = {}
        if rows is not None:
            facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(
                rowCount=int(rows), size=_file_size(output_path)
            )
        outputs.append(OutputDataset(namespace=out_namespace, name=out_name, outputFacets=facets))
    return OperatorLineage(inputs=inputs, outputs=outputs)
