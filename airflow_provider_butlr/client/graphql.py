"""The one GraphQL error path: a body, and ``errors`` (even beside partial data) as a typed error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_butlr.client.scrub import error_text, scrub_json
from airflow_provider_butlr.client.settings import ButlrSettings
from airflow_provider_butlr.exceptions import ButlrDataError, ButlrGraphQLError

GRAPHQL_PATH = "/api/v3/graphql"


def is_unauthenticated(errors: Any) -> bool:
    """GraphQL ``errors`` that say the token was refused."""
    return isinstance(errors, list) and any(
        isinstance(err, dict)
        and isinstance(err.get("extensions"), dict)
        and err["extensions"].get("code") == "UNAUTHENTICATED"
        for err in errors
    )


def graphql_body(
    query: str, variables: Mapping[str, Any] | None, operation_name: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"query": query}
    if variables:
        body["variables"] = dict(variables)
    if operation_name:
        body["operationName"] = operation_name
    return body


def summarise_graphql_errors(errors: list[Any], settings: ButlrSettings | None = None, limit: int = 3) -> str:
    """A short, scrubbed summary of GraphQL ``errors`` for messages and events."""
    messages = []
    for err in errors[:limit]:
        if isinstance(err, dict):
            extensions = err.get("extensions")
            code = extensions.get("code") if isinstance(extensions, dict) else None
            path_parts = err.get("path")
            path = ".".join(str(p) for p in path_parts) if isinstance(path_parts, list) else ""
            text = str(err.get("message", "")).strip()
            messages.append(
                " ".join(x for x in (f"[{code}]" if code else "", path + ":" if path else "", text) if x)
            )
        else:
            messages.append(str(err))
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    secret = (settings.secret,) if settings is not None else ()
    return error_text("; ".join(messages), secret) + more


def graphql_data(payload: Any, settings: ButlrSettings) -> Any:
    """``data`` of a GraphQL answer; any ``errors`` entry (even beside partial data) raises."""
    if not isinstance(payload, dict):
        raise ButlrDataError(f"Butlr GraphQL answered a {type(payload).__name__}, not a JSON object")
    errors = payload.get("errors")
    if errors:
        errors = errors if isinstance(errors, list) else [errors]
        raise ButlrGraphQLError(
            "Butlr GraphQL returned errors: " + summarise_graphql_errors(errors, settings),
            errors=scrub_json(errors, (settings.secret,)),
            data=scrub_json(payload.get("data"), (settings.secret,)),
            method="POST",
            endpoint=GRAPHQL_PATH,
        )
    return payload.get("data")
