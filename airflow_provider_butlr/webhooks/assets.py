"""The assets the webhook receiver feeds, for DAG files: ``schedule=[room_state_asset(...)]``.

Both follow the provider's convention ``butlr://<host>/<kind>/<id>/<state>``
(:func:`~airflow_provider_butlr.assets.state_asset_uri`); ``host`` must be the receiver connection's
``extra.asset_host`` (default ``api.butlr.io``). The receiver records events only on assets a DAG
declares (docs/webhooks.md).
"""

from __future__ import annotations

from airflow.sdk import Asset

from airflow_provider_butlr.assets import state_asset_uri
from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.push.events import STREAMS
from airflow_provider_butlr.push.receiver import DEFAULT_ASSET_HOST
from airflow_provider_butlr.push.streams import CONDITION_EXTRA_KEY, Condition


def stream_asset(
    kind: str,
    asset_id: str,
    stream: str = "occupancy",
    *,
    host: str = DEFAULT_ASSET_HOST,
    name: str | None = None,
) -> Asset:
    """Every accepted change of a stream: ``occupancy`` (the ``*_OCCUPANCY_1MIN`` minutes, revisions
    included), ``occupancy_realtime`` or ``traffic``. One asset event per new minute or revised value."""
    if stream not in STREAMS:
        raise ButlrConfigurationError(f"stream {stream!r} is not one of {', '.join(STREAMS)}")
    return Asset(
        name=name or f"butlr_webhook_{stream}_{asset_id}", uri=state_asset_uri(host, kind, asset_id, stream)
    )


def room_state_asset(
    kind: str,
    asset_id: str,
    state: str = "empty",
    *,
    op: str = "<=",
    threshold: float = 0,
    for_minutes: int = 15,
    host: str = DEFAULT_ASSET_HOST,
    name: str | None = None,
) -> Asset:
    """A state of a room, zone or floor, fed from its pushed minutes: one asset event per crossing of
    ``occupancy <op> threshold`` held ``for_minutes`` (the polling trigger's condition and rules)."""
    if state in STREAMS:
        raise ButlrConfigurationError(f"state {state!r} is a stream name: use stream_asset()")
    condition = Condition.from_json(
        {"op": op, "threshold": threshold, "for_minutes": for_minutes}, f"state {state!r}"
    )
    return Asset(
        name=name or f"butlr_webhook_{state}_{asset_id}",
        uri=state_asset_uri(host, kind, asset_id, state),
        extra={CONDITION_EXTRA_KEY: condition.to_json()},
    )
