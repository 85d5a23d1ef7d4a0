"""Airflow assets for Butlr exports: the URI convention and the metadata an export attaches to its event.

Convention (see docs/assets-and-lineage.md): an export's asset is the *storage location of the
dataset*, the folder or prefix its files go to (``file:///data/butlr/room_occupancy``,
``s3://bucket/butlr/room_occupancy``), not one day's file and not the API. The URI stays the same
every day, so ``schedule=[asset]`` works; the file one run wrote is in the event's ``extra["path"]``.
Event-driven assets (a room's state, which no file holds) use ``butlr://<api host>/<kind>/<id>/<state>``.

Pure Python apart from :func:`attach_to_outlets`, which reads Airflow's ``outlet_events``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from airflow_provider_butlr.exceptions import ButlrConfigurationError

# Keys of the asset event extra an export writes (a contract for downstream DAGs; documented).
EXPORT_EXTRA_KEYS = (
    "path",
    "format",
    "rows",
    "day",
    "days",
    "start",
    "stop",
    "sites",
    "selection",
    "measurements",
    "window_every",
    "window_function",
    "assets",
)
ASSET_STATE_KINDS = ("rooms", "floors", "zones")


def export_asset_uri(location: str) -> str:
    """The asset URI of an export location: a local path becomes ``file://<absolute path>``.

    URIs (``s3://``, ``gs://``, ``file://``...) are kept as they are, without a trailing slash.
    """
    if not isinstance(location, str) or not location.strip():
        raise ButlrConfigurationError(f"location must be a non-empty path or URI, got {location!r}")
    text = location.strip()
    if "://" in text:
        return text.rstrip("/") or text
    absolute = os.path.abspath(os.path.expanduser(text))
    return "file://" + quote(absolute.rstrip("/") or "/")


def state_asset_uri(base_url: str, kind: str, asset_id: str, state: str) -> str:
    """``butlr://<host>/<kind>/<id>/<state>``: an event-driven asset such as "room r1 is empty"."""
    if kind not in ASSET_STATE_KINDS:
        raise ButlrConfigurationError(f"kind {kind!r} is not one of {', '.join(ASSET_STATE_KINDS)}")
    for name, value in (("asset_id", asset_id), ("state", state)):
        if not isinstance(value, str) or not value.strip() or "/" in value:
            raise ButlrConfigurationError(f"{name} must be a non-empty string without '/', got {value!r}")
    return f"{lineage_namespace(base_url)}/{kind}/{quote(asset_id)}/{quote(state)}"


def lineage_namespace(base_url: str) -> str:
    """``butlr://<host>[:port]`` for an API base URL (no scheme, path or credentials kept)."""
    parts = urlsplit(base_url if "://" in base_url else f"https://{base_url}")
    host = (parts.hostname or "").lower()
    if not host:
        raise ButlrConfigurationError(f"base URL {base_url!r} names no host")
    return f"butlr://{host}:{parts.port}" if parts.port else f"butlr://{host}"


def export_event_extra(
    summary: Mapping[str, Any],
    *,
    measurements: Sequence[str],
    selection: Mapping[str, Sequence[str]],
    day: str | None,
    days: int,
    window_every: str,
    window_function: str | Sequence[str],
) -> dict[str, Any]:
    """The JSON metadata of one export, for its asset events (no credentials, no rows)."""
    functions = [window_function] if isinstance(window_function, str) else list(window_function)
    return {
        "path": summary.get("path"),
        "format": summary.get("format"),
        "rows": summary.get("rows"),
        "day": day,
        "days": days if day is not None else None,
        "start": summary.get("start"),
        "stop": summary.get("stop"),
        "sites": list(selection.get("sites") or []),
        "selection": {kind: list(ids) for kind, ids in selection.items() if ids},
        "measurements": list(measurements),
        "window_every": window_every,
        "window_function": functions,
        "assets": summary.get("assets"),
    }


def attach_to_outlets(
    context: Mapping[str, Any], outlets: Iterable[Any], extra: Mapping[str, Any]
) -> list[str]:
    """Add ``extra`` to the event of every ``Asset`` in ``outlets``; return their URIs.

    Aliases and other outlet kinds are left alone (an alias needs the user to name the asset).
    """
    from airflow.providers.common.compat.sdk import Asset

    assets = [outlet for outlet in outlets or () if isinstance(outlet, Asset)]
    if not assets:
        return []
    events = context.get("outlet_events") if hasattr(context, "get") else None
    if events is None:
        return []
    for asset in assets:
        events[asset].extra.update(extra)
    return [asset.uri for asset in assets]
