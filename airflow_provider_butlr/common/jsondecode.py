"""JSON from the network, decoded with msgspec and refused past a nesting depth (pure, no I/O).

Butlr answers nest a dozen levels. Anything much deeper is malformed: walking it (scrubbing, XCom
serialisation, conditions, error texts) could exhaust Python's recursion limit, so it is refused
here, once, for every answer whatever its size (the check is iterative and counts brackets first).
"""

from __future__ import annotations

from typing import Any

import msgspec

MAX_JSON_DEPTH = 128

_decode = msgspec.json.decode


class JSONTooDeep(ValueError):
    """JSON nested deeper than :data:`MAX_JSON_DEPTH` levels."""

    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def nesting_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether containers nest deeper than ``limit`` levels (iterative: any depth is safe to ask)."""
    if not isinstance(value, (dict, list)):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def check_depth(value: Any, raw: Any) -> Any:
    """``value`` (decoded from ``raw``: text, bytes or any buffer such as ``msgspec.Raw``), or
    :class:`JSONTooDeep` when it nests too deeply."""
    text = (
        raw.encode() if isinstance(raw, str) else raw if isinstance(raw, (bytes, bytearray)) else bytes(raw)
    )
    brackets = text.count(b"[") + text.count(b"{")
    if brackets > MAX_JSON_DEPTH and nesting_exceeds(value):
        raise JSONTooDeep()
    return value


BOM = b"\xef\xbb\xbf"


def without_bom(body: Any) -> Any:
    """``body`` without a leading UTF-8 byte-order mark, which RFC 8259 lets a parser ignore."""
    if isinstance(body, str):
        return body[1:] if body.startswith("\ufeff") else body
    if isinstance(body, (bytes, bytearray)) and body.startswith(BOM):
        return body[len(BOM) :]
    return body


def decode_json(body: Any) -> Any:
    """JSON from a body (text, bytes or a buffer; a leading byte-order mark ignored): ValueError
    for anything that is not JSON, JSONTooDeep past the depth limit."""
    body = without_bom(body)
    try:
        value = _decode(body)
    except RecursionError as err:
        raise JSONTooDeep() from err
    except msgspec.DecodeError as err:
        raise ValueError(str(err)) from err
    return check_depth(value, body)
