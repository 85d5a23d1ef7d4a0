"""Response shapes of ``POST /api/v3/reporting`` (butlr-api.md 3.3) and ``page_info``.

* A, no ``group_by.order``: ``data`` is the flat list of rows.
* B, ``order`` without ``raw``: nested objects keyed by each ``order`` column, leaves are the nine stats
  of the window values in that group.
* C, ``order`` with ``raw: true``: nested the same way, leaves are arrays of rows.
* D, ``raw: true`` without ``order``: nested by asset id, then time; leaves are arrays of rows (the engine
  passes that order; see docs/emulator.md for the evidence).

Group keys are sorted (time keys are UTC RFC3339, so they sort chronologically); rows keep their
series-then-time order. ``page_info`` is zeroed unless ``paginate`` is given; with it, an item is a
row (A, C) or a leaf stats object (B), and the pages partition the items in that stable order.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

Row = dict[str, Any]
T = TypeVar("T")
STAT_KEYS = ("sum", "min", "max", "count", "mean", "median", "stddev", "first", "last")


def js_number(value: float) -> float:
    """``value`` as Butlr's (JavaScript) JSON prints it: integral numbers without ``.0``.

    Counts aggregated by max/min/sum/first/last stay ints; a mean or a median is a float only
    when it has a fraction (``2.5``), as in Butlr's fixtures (``"median": 2``, ``"mean": 1.8``).
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def zero_page_info() -> dict[str, int]:
    """What the real API sends next to rows when the request has no ``paginate``."""
    return {"page": 1, "page_item_count": 0, "total_item_count": 0, "total_pages": 1}


def silent_empty() -> dict[str, Any]:
    """The over-budget answer: HTTP 200, ``"data": {}`` (whatever the shape), zeroed ``page_info``."""
    return {"data": {}, "page_info": zero_page_info()}


def leaf_stats(values: Sequence[float]) -> dict[str, Any]:
    """The nine summary stats of the windowed values in one group (population stddev)."""
    mean = sum(values) / len(values)
    stats = {
        "sum": sum(values),
        "min": min(values),
        "max": max(values),
        "count": len(values),
        "mean": mean,
        "median": statistics.median(values),
        "stddev": math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)),
        "first": values[0],
        "last": values[-1],
    }
    return {key: js_number(value) for key, value in stats.items()}


def _nest(leaves: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for keys, leaf in leaves:
        node = root
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = leaf
    return root


def _page(items: list[Any], page: int | None, limit: int | None) -> tuple[list[Any], dict[str, int]]:
    if page is None or limit is None:
        return items, zero_page_info()
    chosen = items[(page - 1) * limit : page * limit]
    info = {
        "page": page,
        "page_item_count": len(chosen),
        "total_item_count": len(items),
        "total_pages": max(1, math.ceil(len(items) / limit)),
    }
    return chosen, info


def _group(
    items: list[T], order: Sequence[str], key: Callable[[T, str], str]
) -> list[tuple[tuple[str, ...], list[T]]]:
    groups: dict[tuple[str, ...], list[T]] = {}
    for item in items:
        groups.setdefault(tuple(key(item, k) for k in order), []).append(item)
    return sorted(groups.items(), key=lambda group: group[0])


def shape_response(
    items: list[T],
    order: Sequence[str],
    raw: bool,
    page: int | None,
    limit: int | None,
    key: Callable[[T, str], str],
    value: Callable[[T], float],
    row: Callable[[T], Row],
) -> dict[str, Any]:
    """``{"data": ..., "page_info": ...}`` for the query's shape.

    ``items`` are the windowed results in stable order; ``key(item, column)`` gives a group key,
    ``value(item)`` the windowed value and ``row(item)`` the full row, built only for the page returned.
    """
    if not order:
        chosen, info = _page(items, page, limit)
        return {"data": [row(item) for item in chosen], "page_info": info}
    groups = _group(items, order, key)
    if raw:
        ordered = [(keys, item) for keys, members in groups for item in members]
        chosen_items, info = _page(ordered, page, limit)
        leaves: dict[tuple[str, ...], list[Row]] = {}
        for keys, item in chosen_items:
            leaves.setdefault(keys, []).append(row(item))
        return {"data": _nest(list(leaves.items())), "page_info": info}
    stats = [(keys, leaf_stats([value(item) for item in members])) for keys, members in groups]
    chosen_stats, info = _page(stats, page, limit)
    return {"data": _nest(chosen_stats), "page_info": info}
