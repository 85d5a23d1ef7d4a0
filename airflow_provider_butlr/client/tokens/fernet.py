"""Tokens at rest: sealed with Airflow's Fernet (its ``[core] fernet_key``), bound to their cache key."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from airflow_provider_butlr.client.tokens.model import AccessToken, CacheKey
from airflow_provider_butlr.client.tokens.notices import warn_once

log = logging.getLogger(__name__)

RECORD_VERSION = 1


def key_digest(key: CacheKey) -> str:
    """A file/Variable name for a cache key: a digest, so neither the login nor the URL shows."""
    return hashlib.sha256("\x1f".join(key).encode()).hexdigest()[:40]


def _configured_fernet_key() -> str:
    """``[core] fernet_key`` (env, ``_cmd`` and ``_secret`` variants included) as Airflow reads it.

    The core parser first: on Airflow 3.3 the Task SDK's parser returns the unexpanded template
    ``{FERNET_KEY}`` when no airflow.cfg exists; the SDK's is the fallback for SDK-only workers.
    """
    try:
        from airflow.configuration import conf
    except ImportError:  # a worker with the Task SDK only
        from airflow.providers.common.compat.sdk import conf
    try:
        value = conf.get("core", "fernet_key", fallback="")
    except Exception:  # an unreadable _cmd/_secret: no key rather than a failed task
        log.warning("Could not read [core] fernet_key; Butlr tokens are cached per process only.")
        return ""
    return "" if value is None or value.strip() in ("", "{FERNET_KEY}") else value.strip()


class Fernet(Protocol):
    """What Airflow's ``get_fernet()`` returns (a MultiFernet behind it: the first key encrypts)."""

    def encrypt(self, msg: bytes) -> bytes: ...

    def decrypt(self, msg: bytes | str, ttl: int | None = None) -> bytes: ...


def _airflow_get_fernet() -> Callable[[], Any]:
    """Airflow's own helper: core's where Airflow core is installed, else the Task SDK's (3.2+)."""
    try:
        from airflow.models.crypto import get_fernet
    except ImportError:  # a worker with the Task SDK only
        from airflow.sdk.crypto import get_fernet
    return get_fernet


_said_no_key = threading.Event()
_lock = threading.Lock()
_built_for = [""]  # the key text Airflow's cached helper was last built with


def airflow_fernet() -> Fernet | None:
    """Airflow's Fernet for its configured key (``get_fernet()``: comma-separated keys, the first
    encrypts, any decrypts), or None (said once at INFO) when no key is configured.

    Airflow caches its helper per process; when the configured key changes (a rotation seen by a
    long-lived process), the cache is rebuilt, so new tokens are sealed with the new key.
    """
    key_text = _configured_fernet_key()
    if not key_text:
        if not _said_no_key.is_set():
            _said_no_key.set()
            log.info(
                "No Airflow fernet_key is configured: Butlr access tokens are cached per process only "
                "(the shared token stores keep tokens only Fernet-encrypted). Set [core] fernet_key to "
                "share one login across task processes."
            )
        return None
    get_fernet = _airflow_get_fernet()
    with _lock:
        if _built_for[0] != key_text:
            getattr(get_fernet, "cache_clear", lambda: None)()
            _built_for[0] = key_text
    try:
        fernet = get_fernet()
    except Exception as err:  # Airflow's AirflowException for a key that is no Fernet key, and others
        warn_once(
            "fernet",
            "Airflow could not build its Fernet from [core] fernet_key (%s); Butlr tokens are cached per "
            "process only.",
            type(err).__name__,
        )
        return None
    return fernet if getattr(fernet, "is_encrypted", False) else None


def seal(fernet: Fernet, key: CacheKey, token: AccessToken) -> bytes:
    """The encrypted record: value, times, and the key digest it belongs to."""
    record = {
        "v": RECORD_VERSION,
        "key": key_digest(key),
        "token": token.value,
        "obtained_at": token.obtained_at,
        "expires_at": token.expires_at,
    }
    return fernet.encrypt(json.dumps(record).encode())


def unseal(fernet: Fernet, key: CacheKey, blob: bytes) -> AccessToken | None:
    """The token of an encrypted record, or None for anything unreadable, foreign or malformed."""
    from cryptography.fernet import InvalidToken

    try:
        record = json.loads(fernet.decrypt(blob))
    except (InvalidToken, ValueError, TypeError):
        return None
    if (
        not isinstance(record, dict)
        or record.get("v") != RECORD_VERSION
        or record.get("key") != key_digest(key)
    ):
        return None
    value, obtained, expires = record.get("token"), record.get("obtained_at"), record.get("expires_at")
    if (
        not isinstance(value, str)
        or not isinstance(obtained, (int, float))
        or not isinstance(expires, (int, float))
    ):
        return None
    return AccessToken(value=value, obtained_at=float(obtained), expires_at=float(expires))
