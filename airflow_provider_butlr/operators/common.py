"""What the Butlr operators share: the hook they build in ``execute``, asset selection, XCom checks."""

from __future__ import annotations

import json as jsonlib
from typing import TYPE_CHECKING, Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrDataError

if TYPE_CHECKING:
    from airflow_provider_butlr.hooks.butlr import ButlrHook


def new_hook(conn_id: str) -> ButlrHook:
    """The hook for ``execute``; imported here, so a DAG file that only builds operators does not
    load the HTTP stack (the DAG processor parses DAG files constantly)."""
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    return ButlrHook(conn_id)


CONTAINER_KINDS = ("sites", "buildings")


SELECTION_KINDS = ("sites", "buildings", "floors", "rooms", "zones", "tags")


DEFAULT_MAX_XCOM_ROWS = 1000


def ensure_json(value: Any, what: str) -> Any:
    """Refuse a value that cannot go to XCom as JSON (with a hint)."""
    try:
        jsonlib.dumps(value)
    except (TypeError, ValueError) as err:
        raise ButlrDataError(
            f"{what} is not JSON-serialisable ({err}); return plain dicts, lists, strings and numbers"
        ) from err
    return value


def require_assets(*values: Any) -> None:
    if not any(values):
        raise ButlrConfigurationError(
            "select assets with at least one of sites, buildings, floors, rooms, zones, tags"
        )
