"""What a final answer means: a payload, a retryable failure (with ``Retry-After``) or a typed error."""

from __future__ import annotations

from typing import Any

from airflow_provider_butlr.client.graphql import is_unauthenticated
from airflow_provider_butlr.client.messages import Answer, Call, Outcome
from airflow_provider_butlr.client.retry import (
    NO_CONTENT_STATUSES,
    RETRYABLE_STATUSES,
    TransientDataError,
    TransientHTTPError,
    parse_retry_after,
    status_error,
)
from airflow_provider_butlr.client.scrub import error_text, safe_prefix, scrub
from airflow_provider_butlr.client.settings import ButlrSettings
from airflow_provider_butlr.common.jsondecode import BOM, JSONTooDeep, decode_json, without_bom


def readable_text(answer: Answer) -> str:
    """The body as text for error messages; a placeholder when it is JSON too deep to walk safely."""
    try:
        decode_json(answer.body)
    except JSONTooDeep as err:
        return f"(an answer with {err})"
    except ValueError:
        pass
    return answer.text


def body_summary(answer: Answer, settings: ButlrSettings) -> str:
    """What an answer's body actually was, for messages: its content type, size and a safe start
    (``text/html, 38 bytes: an HTML page``); never a credential."""
    secrets = (settings.secret,)
    kind = " ".join(scrub(answer.headers.get("Content-Type") or "", secrets).split())[:60]
    body = answer.body
    bom = body.startswith(BOM)
    text = body[len(BOM) : 2048].decode("utf-8", errors="replace") if bom else answer.text[:2048]
    start = text.lstrip()
    if not start:
        what = "an empty body"
    elif start.startswith("<"):
        what = "an HTML page" if "html" in start[:200].lower() or "html" in kind else "markup"
    else:
        what = safe_prefix(start, secrets)
    after_bom = ", after a UTF-8 byte-order mark" if bom else ""
    return f"{kind or 'no content type'}, {len(body)} bytes{after_bom}: {what}"


def _try_json(body: bytes) -> Any:
    try:
        return decode_json(body) if body else None
    except ValueError:
        return None


def token_refused(call: Call, answer: Answer) -> bool:
    """HTTP 401, or GraphQL's HTTP 200 with an ``UNAUTHENTICATED`` error: both mean "log in again"."""
    if answer.status == 401:
        return True
    if answer.status != 200 or not call.is_graphql:
        return False
    payload = _try_json(answer.body)
    return isinstance(payload, dict) and is_unauthenticated(payload.get("errors"))


def answer_detail(answer: Answer, settings: ButlrSettings) -> str:
    """Butlr's error text from an answer: scrubbed, short, one line."""
    return error_text(readable_text(answer), (settings.secret,))


def classify(call: Call, answer: Answer, settings: ButlrSettings) -> Outcome:
    """The outcome of a final answer, or the exception that describes it (retryable or typed)."""
    status = answer.status
    if status in RETRYABLE_STATUSES:
        raise TransientHTTPError(
            status,
            retry_after=parse_retry_after(answer.headers.get("Retry-After")),
            detail=answer_detail(answer, settings),
        )
    if status >= 400:
        raise status_error(
            status, answer_detail(answer, settings), method=call.method, endpoint=call.endpoint
        )
    if 300 <= status < 400:
        raise call.error(f"answered HTTP {status} without a usable Location", status)
    if status in NO_CONTENT_STATUSES or not call.parse_json:
        return Outcome(answer)
    try:
        return Outcome(answer, (call.decode or decode_json)(without_bom(answer.body)))
    except JSONTooDeep as err:
        raise TransientDataError(f"{err} in a {status} answer") from None
    except ValueError:
        raise TransientDataError(
            f"malformed JSON in a {status} answer ({body_summary(answer, settings)})"
        ) from None
