"""The one scrubber: every text that leaves the exchange passes through it.

It replaces the connection secrets and every access token this process has seen (and their
percent-encoded and JSON-escaped forms) with ``***``, before any truncation or whitespace folding,
so that no prefix, collapsed or encoded form of a secret survives.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from airflow_provider_butlr.common.jsondecode import MAX_JSON_DEPTH, JSONTooDeep, decode_json
from airflow_provider_butlr.exceptions import ButlrDataError

REDACTED = "***"
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words (Airflow's masker uses 5)
MAX_REMEMBERED = 4096  # tokens kept for scrubbing; oldest forgotten first

_lock = threading.Lock()
_known: dict[str, frozenset[str]] = {}  # insertion-ordered: secret -> its forms
_sorted: list[str] | None = None  # every known form, longest first (rebuilt after a change)
_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def _json_escaped(text: str) -> str:
    return json.dumps(text)[1:-1]


def _forms(secret: str) -> frozenset[str]:
    """The ways a secret can appear in a body that echoes it.

    Raw, JSON-escaped (once and twice: a JSON body quoting a JSON request), percent-encoded as a query
    value, a form value or a path (upper- and lower-case hex), and each of those with its whitespace
    folded the way messages fold it.
    """
    escaped = {secret, _json_escaped(secret), _json_escaped(_json_escaped(secret))}
    encoded = {quote(secret, safe=""), quote(secret), quote_plus(secret, safe="")}
    encoded |= {_PERCENT_ESCAPE.sub(lambda m: m.group().lower(), form) for form in encoded}
    forms = escaped | encoded
    forms |= {" ".join(form.split()) for form in forms}
    return frozenset(form for form in forms if len(form) >= MIN_SECRET_LENGTH)


def remember_secret(secret: str | None) -> None:
    """Scrub ``secret`` (a token received, a secret read) from every text from now on."""
    if not secret or len(secret) < MIN_SECRET_LENGTH:
        return
    forms = _forms(secret)
    global _sorted
    with _lock:
        _sorted = None
        _known.pop(secret, None)
        _known[secret] = forms
        while len(_known) > MAX_REMEMBERED:
            del _known[next(iter(_known))]


def _known_forms() -> list[str]:
    global _sorted
    with _lock:
        if _sorted is None:
            _sorted = sorted(set().union(*_known.values()), key=len, reverse=True)
        return _sorted


def _all_forms(extra: Iterable[str | None]) -> list[str]:
    forms = _known_forms()
    extra_forms: set[str] = set()
    for secret in extra:
        if secret and secret not in _known:
            extra_forms |= _forms(secret)
    if not extra_forms:
        return forms
    return sorted(extra_forms.union(forms), key=len, reverse=True)


def scrub(text: str, extra: Iterable[str | None] = ()) -> str:
    """``text`` with every known secret (and ``extra`` ones) replaced by ``***``; longest first."""
    if not text:
        return text
    for form in _all_forms(extra):
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def cut_tail(body: bytes, extra: Iterable[str | None] = ()) -> bytes:
    """A body cut at a size limit, minus as many trailing bytes as the longest form of a secret: a
    secret straddling the cut would otherwise survive as a prefix that no scrubbing recognises."""
    forms = _all_forms(extra)
    longest = max(len(form.encode()) for form in forms) if forms else 0
    return body[: max(len(body) - longest, 0)]


def forget_all() -> None:
    """Tests only: forget remembered secrets."""
    global _sorted
    with _lock:
        _known.clear()
        _sorted = None


def scrub_json(value: Any, extra: Iterable[str | None] = ()) -> Any:
    """A JSON-safe value with every known secret scrubbed from every string in it (keys included).

    Iterative (no recursion, whatever the depth); deeper than ``MAX_JSON_DEPTH`` raises
    :class:`ButlrDataError` (a cycle too).
    """
    secrets = tuple(extra)

    def entry(key: Any, item: Any) -> tuple[Any, Any, bool]:
        return scrub(str(key), secrets), item, True

    return rebuild(value, lambda leaf: scrub(leaf, secrets) if isinstance(leaf, str) else leaf, entry)


def rebuild(
    value: Any,
    leaf: Callable[[Any], Any],
    entry: Callable[[Any, Any], tuple[Any, Any, bool]],
    containers: tuple[type, ...] = (dict, list, tuple),
) -> Any:
    """A copy of nested dicts and lists (tuples become lists), built without recursion.

    ``leaf`` maps every value that is no container; ``entry(key, item)`` maps each dict entry to
    ``(key, item, descend)``, where ``descend=False`` keeps ``item`` as it is. Nested deeper than
    :data:`MAX_JSON_DEPTH` (or cyclic) raises :class:`ButlrDataError`.
    """
    if not isinstance(value, containers):
        return leaf(value)
    root: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any, int]] = [(value, root, 1)]
    while stack:
        source, target, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ButlrDataError(str(JSONTooDeep()))
        is_dict = isinstance(source, dict)
        for key, item in source.items() if is_dict else enumerate(source):
            descend = True
            if is_dict:
                key, item, descend = entry(key, item)
            if descend and isinstance(item, containers):
                child: Any = {} if isinstance(item, dict) else []
                stack.append((item, child, depth + 1))
                item = child
            elif descend:
                item = leaf(item)
            if is_dict:
                target[key] = item
            else:
                target.append(item)
    return root


MAX_ERROR_TEXT = 300


def error_text(body: str, secrets: tuple[str, ...] = ()) -> str:
    """Butlr's error text from a JSON or plain body: short, single-line, with any secret removed."""
    text = scrub(body, secrets).strip()  # before folding and truncation: no prefix or folded form leaks
    try:
        payload = decode_json(text) if text else None
    except ValueError:  # not JSON, or nested too deeply to be Butlr's: read as text
        payload = None
    if isinstance(payload, dict):
        parts = [
            str(payload[key])
            for key in ("error", "error_description", "message", "details")
            if payload.get(key) not in (None, "")
        ]
        text = ": ".join(parts) if parts else text
    elif text.lstrip().startswith("<"):
        text = "(HTML error page)"
    return scrub(" ".join(text.split()), secrets)[:MAX_ERROR_TEXT]


# Keys whose values are credentials wherever they appear in an answer (``POST /api/v1/client``
# answers with a new client's secret): masked in logs and replaced in what a task hands on.
SECRET_RESPONSE_KEYS = frozenset(
    {"client_secret", "password", "access_token", "refresh_token", "id_token", "token", "secret"}
)


def redact_secret_fields(value: Any, mask: Callable[[str], None] | None = None) -> Any:
    """``value`` with every credential field replaced by ``***``; ``mask`` learns each such value.
    Iterative, like :func:`scrub_json`."""

    def entry(key: Any, item: Any) -> tuple[Any, Any, bool]:
        if isinstance(key, str) and key.lower() in SECRET_RESPONSE_KEYS and item not in (None, ""):
            if isinstance(item, str) and mask is not None:
                mask(item)
            return key, REDACTED, False
        return key, item, True

    return rebuild(value, lambda leaf: leaf, entry, containers=(dict, list))


_TOKENISH = re.compile(r"[A-Za-z0-9._~+/=%-]{12,}")  # a run that could be (part of) a credential


def _elide_tokenish(match: re.Match[str]) -> str:
    """A long run with a digit, or a very long one, could be a credential; words and keys stay."""
    run = match.group()
    return "…" if len(run) >= 24 or any(ch.isdigit() for ch in run) else run


_PREFIX_CHARS = 80


def safe_prefix(text: str, extra: Iterable[str | None] = ()) -> str:
    """The start of a body that may hold a credential nobody knows yet (a cut login answer), shown
    without one: known secrets scrubbed, JSON string values and anything token-shaped elided (``…``),
    JSON keys kept. One line, at most :data:`_PREFIX_CHARS` characters."""
    text = scrub(text[: _PREFIX_CHARS * 8], extra).lstrip()
    if text[:1] in ("{", "["):
        text = _json_outline(text)
    text = _TOKENISH.sub(_elide_tokenish, " ".join(text.split()))
    return text[:_PREFIX_CHARS] + ("…" if len(text) > _PREFIX_CHARS else "")


def _json_outline(text: str) -> str:
    """JSON (or its start) with every string value replaced by ``"…"``; keys are kept."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n and len(out) < _PREFIX_CHARS:
        ch = text[i]
        if ch != '"':
            out.append(ch)
            i += 1
            continue
        end = i + 1
        while end < n and text[end] != '"':
            end += 2 if text[end] == "\\" else 1
        if end >= n:  # cut inside a string
            out.append('"…')
            break
        rest = text[end + 1 :].lstrip()
        out.append(text[i : end + 1] if rest.startswith(":") else '"…"')
        i = end + 1
    return "".join(out)
