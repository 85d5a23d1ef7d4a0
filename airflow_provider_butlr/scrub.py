"""The one scrubber: every text that leaves the exchange passes through it.

It replaces the connection secrets and every access token this process has seen (and their
percent-encoded and JSON-escaped forms) with ``***``, before any truncation or whitespace folding,
so that no prefix, collapsed or encoded form of a secret survives.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "***"
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words (Airflow's masker uses 5)
MAX_REMEMBERED = 4096  # tokens kept for scrubbing; oldest forgotten first

_lock = threading.Lock()
_known: dict[str, None] = {}  # insertion-ordered set of secrets seen in this process


def _forms(secret: str) -> set[str]:
    """The ways a secret can appear in a body that echoes it."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), json.dumps(secret)[1:-1]}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def remember_secret(secret: str | None) -> None:
    """Scrub ``secret`` (a token received, a secret read) from every text from now on."""
    if not secret or len(secret) < MIN_SECRET_LENGTH:
        return
    with _lock:
        _known.pop(secret, None)
        _known[secret] = None
        while len(_known) > MAX_REMEMBERED:
            del _known[next(iter(_known))]


def scrub(text: str, extra: Iterable[str | None] = ()) -> str:
    """``text`` with every known secret (and ``extra`` ones) replaced by ``***``; longest first."""
    if not text:
        return text
    with _lock:
        secrets = [*_known, *(s for s in extra if s)]
    forms: set[str] = set()
    for secret in secrets:
        forms |= _forms(secret)
    for form in sorted(forms, key=len, reverse=True):
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def forget_all() -> None:
    """Tests only: forget remembered secrets."""
    with _lock:
        _known.clear()


def scrub_json(value: Any, extra: Iterable[str | None] = ()) -> Any:
    """A JSON-safe value with every known secret scrubbed from every string in it (keys included)."""
    if isinstance(value, str):
        return scrub(value, extra)
    if isinstance(value, dict):
        return {scrub(str(k), extra): scrub_json(v, extra) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_json(v, extra) for v in value]
    return value
