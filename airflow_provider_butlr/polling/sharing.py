"""Polls of many triggers shared (pure): when they happen, which requests merge, what each one gets.

Many deferred sensors in one triggerer (200 mapped sensors on the rooms of a few sites) would
otherwise send one request each per poke interval. Three rules make their polls shareable:

* **A clock grid** (:func:`aligned_wait`): a trigger polls at ``GRID_OFFSET + k * interval``
  (Unix time), at least a quarter interval after its previous poll ended. Every trigger with the same interval
  (or a multiple of it: exponential backoff doubles it) polls at the same moments. The offset keeps
  the ticks off whole minutes, where relative windows (``lookback_seconds``) are cut: triggers that
  wake a millisecond apart still render the same window.
* **Merging** (:func:`share_of`, :func:`pack`): a reporting request that says how many ids it may
  share a request with (``PollRequest.max_ids``, set by the sensors from Butlr's batch guidance) and
  filters one asset kind merges with every request whose body is the same except for the ids; the
  union is cut into requests of at most ``max_ids`` ids, a member's ids never split. Any other
  request is shared only with identical ones.
* **Splitting** (:func:`answer_for`): each member gets the answer its own request would have had:
  the rows of its own ids.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_provider_butlr.exceptions import ButlrAPIError, ButlrAuthError
from airflow_provider_butlr.polling.plans import PollRequest
from airflow_provider_butlr.reporting.catalogue import (
    ASSET_KINDS,
    OCCUPANCY_MEASUREMENTS,
    REPORTING_PATH,
)

GRID_OFFSET = 0.25  # seconds after each multiple of the interval (never on a whole minute)


# 4xx answers that may heal by themselves; any other 4xx means the request itself is wrong.
HEALING_CLIENT_STATUSES = frozenset({401, 403, 408, 409, 425, 429})


# Reporting filter key -> the row column naming the asset (floors are filtered as ``spaces``).
ROW_KEY_OF_FILTER = {
    ASSET_KINDS[kind][0]: row_key for kind, (row_key, _, _) in OCCUPANCY_MEASUREMENTS.items()
}
ID_FILTERS = tuple(key for key, _ in ASSET_KINDS.values())
UNSPLITTABLE = object()  # what answer_for returns for a merged answer it cannot cut per asset


def aligned_wait(now: float, interval: float, previous: float | None = None) -> float:
    """Seconds from ``now`` to the next tick of ``interval``'s grid, at least a quarter interval
    away and, when ``previous`` (the start of the previous poll) is given, three quarters of an
    interval after it.

    Polls made on ticks are therefore at least one interval apart (never faster than asked, errors
    included); after a poll shorter than three quarters of an interval the next one is exactly one
    interval later, and after a doubled interval (exponential backoff) one to 1.5 new intervals
    later. A first wait (after the worker's own check) is a quarter to 1.25 intervals.
    """
    offset = GRID_OFFSET % interval
    earliest = now + interval / 4
    if previous is not None:
        earliest = max(earliest, previous + 0.75 * interval)
    tick = math.ceil((earliest - offset) / interval) * interval + offset
    return max(tick - now, interval / 4)


def is_request_fault(exc: BaseException) -> bool:
    """A 4xx caused by the request itself (not 401/403/408/409/425/429, which may heal)."""
    if isinstance(exc, ButlrAPIError) and not isinstance(exc, ButlrAuthError):
        status = exc.status
        return status is not None and 400 <= status < 500 and status not in HEALING_CLIENT_STATUSES
    return False


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Share:
    """What a request contributes to a shared poll: its group and, when mergeable, its ids."""

    request: PollRequest
    key: str  # requests with equal keys are sent as one (the ids aside, when mergeable)
    filter_key: str | None = None  # the reporting filter holding the ids; None = identical only
    ids: tuple[str, ...] = ()
    max_ids: int = 1

    @property
    def mergeable(self) -> bool:
        return self.filter_key is not None


def _id_filter(body: Mapping[str, Any]) -> tuple[str, tuple[str, ...]] | None:
    """The one asset-id filter of a flat reporting body, or None when it has no single one."""
    if "group_by" in body or "paginate" in body:  # nested or paged answers are not split per asset
        return None
    flt = body.get("filter")
    if not isinstance(flt, Mapping):
        return None
    keys = [k for k in ID_FILTERS if k in flt]
    if len(keys) != 1 or keys[0] not in ROW_KEY_OF_FILTER:
        return None
    eq = flt[keys[0]]
    if not isinstance(eq, Mapping) or set(eq) != {"eq"} or not isinstance(eq["eq"], list):
        return None
    ids = eq["eq"]
    if not ids or not all(isinstance(i, str) and i for i in ids):
        return None
    return keys[0], tuple(dict.fromkeys(ids))


def share_of(request: PollRequest) -> Share:
    """The request's group: identical requests share one; mergeable ones differ only in their ids."""
    whole = {"endpoint": request.endpoint, "method": request.method.upper(), "params": request.params}
    if (
        request.max_ids is not None
        and request.endpoint.rstrip("/") == REPORTING_PATH
        and whole["method"] == "POST"
        and isinstance(request.json, Mapping)
    ):
        found = _id_filter(request.json)
        if found is not None:
            filter_key, ids = found
            body = {**request.json, "filter": {**request.json["filter"], filter_key: None}}
            key = _canonical({**whole, "json": body, "merge": filter_key, "max_ids": request.max_ids})
            return Share(request, key, filter_key, ids, request.max_ids)
    return Share(request, _canonical({**whole, "json": request.json}))


@dataclass
class Batch:
    """One request sent for ``members`` (indexes into the shares given to :func:`pack`)."""

    request: PollRequest
    members: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    id_set: set[str] = field(default_factory=set)

    def add(self, member: int, ids: Sequence[str]) -> None:
        self.members.append(member)
        for i in ids:
            if i not in self.id_set:
                self.id_set.add(i)
                self.ids.append(i)

    def distinct(self, shares: Sequence[Share]) -> int:
        """How many different requests the batch stands for (1: nothing was merged)."""
        return len({shares[i].ids if shares[i].mergeable else shares[i].key for i in self.members})


def pack(shares: Sequence[Share]) -> list[Batch]:
    """The requests to send for ``shares``, in arrival order of their groups.

    Identical requests: one batch. Mergeable ones: each member goes to the batch of its group that
    needs the fewest new ids for it (none when its ids are already asked) while the union stays
    within ``max_ids``, else to a new batch; a member's ids are never split, so every member's
    answer comes from exactly one request.
    """
    groups: dict[str, list[Batch]] = {}
    for index, share in enumerate(shares):
        batches = groups.setdefault(share.key, [])
        if not share.mergeable:
            if not batches:
                batches.append(Batch(share.request))
            batches[0].members.append(index)
            continue
        best: tuple[int, Batch] | None = None
        for batch in batches:
            new = sum(1 for i in share.ids if i not in batch.id_set)
            if len(batch.ids) + new <= share.max_ids and (best is None or new < best[0]):
                best = (new, batch)
        if best is None:
            best = (len(share.ids), Batch(share.request))
            batches.append(best[1])
        best[1].add(index, share.ids)
    out = []
    for group in groups.values():
        for batch in group:
            first = shares[batch.members[0]]
            if first.mergeable and batch.distinct(shares) > 1:
                batch.request = _with_ids(first, batch.ids)
            out.append(batch)
    return out


def _with_ids(share: Share, ids: list[str]) -> PollRequest:
    body = dict(share.request.json)
    body["filter"] = {**body["filter"], share.filter_key: {"eq": list(ids)}}
    return replace(share.request, json=body)


def answer_for(share: Share, batch_ids: Sequence[str], payload: Any) -> Any:
    """The answer ``share``'s own request would have had, from the answer of a merged request.

    Rows of other ids are left out; everything else is kept. For an answer that is not a flat list
    of rows (nor empty), :data:`UNSPLITTABLE`: the members are then asked one by one.
    """
    if not share.mergeable or set(batch_ids) <= set(share.ids):
        return payload
    data = payload.get("data") if isinstance(payload, Mapping) else None
    if isinstance(data, Mapping) and not data:
        return payload  # Butlr's "nothing" (or its silent truncation): the same for every member
    if not isinstance(data, list):
        return UNSPLITTABLE
    column = ROW_KEY_OF_FILTER[share.filter_key or ""]
    wanted = set(share.ids)
    return {
        **payload,
        "data": [row for row in data if isinstance(row, Mapping) and row.get(column) in wanted],
    }
