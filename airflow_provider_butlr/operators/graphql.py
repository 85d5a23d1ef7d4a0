"""ButlrGraphQLOperator: run a GraphQL query and return ``data`` (any ``errors`` entry fails the task)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.hooks.base import ButlrBaseHook
from airflow_provider_butlr.operators.common import ensure_json, new_hook
from airflow_provider_butlr.reporting.arguments import Check, run_checks

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context


class ButlrGraphQLOperator(BaseOperator):
    """Run a GraphQL query (``query`` and ``variables`` templated; ``.graphql`` files allowed); return ``data``.

    Any ``errors`` entry fails the task, even with partial data.
    """

    template_fields: Sequence[str] = ("butlr_conn_id", "query", "variables", "operation_name")
    template_ext: Sequence[str] = (".graphql", ".gql")
    template_fields_renderers = {"query": "graphql", "variables": "json"}
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        query: str,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
        butlr_conn_id: str = ButlrBaseHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.query = query
        self.variables = variables
        self.operation_name = operation_name
        self.butlr_conn_id = butlr_conn_id
        run_checks(self, self.checks, final=False)

    @staticmethod
    def _check_query(query: Any) -> None:
        if not isinstance(query, str) or not query.strip():
            raise ButlrConfigurationError(f"query must be a non-empty GraphQL document, got {query!r}")

    @staticmethod
    def _check_variables(variables: Any) -> None:
        if variables is not None and not isinstance(variables, dict):
            raise ButlrConfigurationError(f"variables must be a dict, got {type(variables).__name__}")

    checks: Sequence[Check] = (
        Check("query", ("query",), _check_query),
        Check("variables", ("variables",), _check_variables),
    )

    def execute(self, context: Context) -> Any:
        run_checks(self, self.checks, final=True)
        with new_hook(self.butlr_conn_id) as hook:
            data = hook.graphql(self.query, self.variables, self.operation_name)
        return ensure_json(data, "the GraphQL data")

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """Input ``butlr://<host>`` ``graphql/<operation name or first field>``; XCom only (no output)."""
        from airflow_provider_butlr.lineage import build_lineage, graphql_dataset_name, namespace_for

        name = graphql_dataset_name(self.query, self.operation_name)
        return build_lineage(namespace_for(self.butlr_conn_id), [name])

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        return self.get_openlineage_facets_on_start()
