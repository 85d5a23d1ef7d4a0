"""A reporting answer read in two steps: its envelope where it arrives, its rows where they are used.

An export's worker only needs to know whether an answer has data and what its ``page_info`` says
before it sends the next request; decoding tens of MB of rows there would put that CPU time
between two requests. So the envelope is decoded alone and ``data`` is kept as raw JSON
(``msgspec.Raw``, a view of the body, validated but not built) until :meth:`ReportingAnswer.data`
is called, typically by the thread that writes the rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from airflow_provider_butlr.common.jsondecode import JSONTooDeep, decode_json
from airflow_provider_butlr.exceptions import ButlrDataError
from airflow_provider_butlr.reporting.rows import response_data

_EMPTY_JSON = re.compile(rb"\s*(?:null|\[\s*\]|\{\s*\})\s*\Z")
SMALL_ANSWER = 64 * 1024  # below: one plain decode is cheaper than two steps


class ReportingAnswer:
    """``data`` (decoded on first use, then kept) and ``page_info`` of one reporting answer."""

    __slots__ = ("_data", "_raw", "page_info")

    def __init__(self, page_info: Any, *, data: Any = None, raw: Any = None) -> None:
        self.page_info = _counts(page_info)
        self._raw = raw  # raw JSON of "data" (bytes-like), or None once decoded / when given decoded
        self._data = data

    @classmethod
    def from_payload(cls, payload: Any) -> ReportingAnswer:
        """From a decoded answer (a JSON object with ``data``); refuses any other shape."""
        if isinstance(payload, ReportingAnswer):
            return payload
        data = response_data(payload)  # refuses a payload that is no object with "data"
        return cls(payload.get("page_info"), data=data)

    @property
    def empty(self) -> bool:
        """Whether ``data`` holds nothing (null, [] or {}), without decoding a large one."""
        if self._raw is not None:
            return _EMPTY_JSON.match(self._raw) is not None
        return not self._data

    @property
    def raw_data(self) -> Any:
        """``data`` as raw JSON (bytes-like) while it has not been decoded; None otherwise."""
        return self._raw

    def data(self) -> list[Any] | Mapping[str, Any]:
        """The decoded ``data`` (a list of rows or a nested object; ``[]`` for null)."""
        if self._raw is not None:
            raw, self._raw = self._raw, None
            try:
                data = decode_json(raw)
            except JSONTooDeep as err:
                raise ButlrDataError(f"reporting 'data' is {err}") from None
            except ValueError as err:
                raise ButlrDataError(f"reporting 'data' is not valid JSON: {err}") from None
            self._data = response_data({"data": data})
        return self._data

    def same_data_as(self, other: ReportingAnswer) -> bool:
        """Whether two answers carry the same ``data`` (a server ignoring ``paginate``)."""
        if self._raw is not None and other._raw is not None:
            return bool(self._raw == other._raw)
        return self.data() == other.data()


def _counts(info: Any) -> dict[str, int]:
    if not isinstance(info, Mapping):
        return {}
    return {
        k: int(v)
        for k, v in info.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


class _Envelope(msgspec.Struct):
    data: msgspec.Raw = msgspec.Raw(b"")
    page_info: msgspec.Raw = msgspec.Raw(b"null")  # depth-checked like every other part


_ENVELOPE = msgspec.json.Decoder(_Envelope)


def decode_reporting_answer(body: bytes) -> ReportingAnswer:
    """A reporting answer from its body: ValueError for malformed JSON (retried by the hooks),
    :class:`ButlrDataError` for JSON of the wrong shape."""
    if len(body) > SMALL_ANSWER:
        try:
            envelope = _ENVELOPE.decode(body)
        except msgspec.ValidationError:
            envelope = None  # not a JSON object: the full decode below says what it is
        except RecursionError as err:
            raise JSONTooDeep() from err
        except msgspec.DecodeError as err:
            raise ValueError(str(err)) from err
        if envelope is not None and len(envelope.data):  # an empty Raw: no "data" member
            return ReportingAnswer(decode_json(envelope.page_info), raw=envelope.data)
    return ReportingAnswer.from_payload(decode_json(body))
