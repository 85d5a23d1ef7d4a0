"""What conditions read and say: rows in any reporting answer shape, comparisons, verdicts (pure)."""

from __future__ import annotations

import itertools
import operator
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from airflow_provider_butlr.common.jsondecode import MAX_JSON_DEPTH, JSONTooDeep
from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrDataError
from airflow_provider_butlr.reporting.times import parse_instant

COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
}


QUANTIFIERS = ("all", "any")


ASSET_KEYS = ("space_id", "room_id", "zone_id", "sensor_id", "tag_id", "building_id")


MAX_LISTED = 10  # how many offending assets/windows a message or summary names


@dataclass(frozen=True)
class Verdict:
    """The outcome of one evaluation; ``details`` is small JSON (it travels in trigger events)."""

    met: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"met": self.met, "message": self.message, "details": self.details}


def iter_rows(payload: Any) -> Iterator[dict[str, Any]]:
    """Every reporting row in a response of shape A (flat list) or C (nested, raw leaves).

    Shape B (nested statistics) carries no rows and yields nothing.
    """
    node = payload.get("data") if isinstance(payload, Mapping) and "data" in payload else payload
    yield from _walk_rows(node)


def _walk_rows(node: Any) -> Iterator[dict[str, Any]]:
    """Rows (objects with ``value`` or ``time`` inside a list) in document order, without recursion;
    an answer nested deeper than ``MAX_JSON_DEPTH`` is a :class:`ButlrDataError` (malformed)."""
    stack: list[Iterator[tuple[bool, Any]]] = [iter([(False, node)])]
    while stack:
        for in_list, item in stack[-1]:
            if in_list and isinstance(item, dict) and ("value" in item or "time" in item):
                yield item
            elif isinstance(item, (list, Mapping)):
                if len(stack) > MAX_JSON_DEPTH:
                    raise ButlrDataError(f"a poll answer is {JSONTooDeep()}")
                children = item if isinstance(item, list) else list(item.values())
                stack.append(zip(itertools.repeat(isinstance(item, list)), children, strict=False))
                break
        else:
            stack.pop()


def row_time(row: Mapping[str, Any]) -> float | None:
    try:
        return parse_instant(row.get("time"))
    except ButlrConfigurationError:
        return None


_FLOAT_MAX = int(sys.float_info.max)


def is_number(value: Any) -> TypeGuard[float]:
    """A JSON number that works as a float (an integer past float64, e.g. 10**400 from a hostile
    answer, is not: ``float()`` of it would raise)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -_FLOAT_MAX <= value <= _FLOAT_MAX
    return isinstance(value, float)
