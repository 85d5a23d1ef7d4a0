"""Turn an Airflow Connection into validated Butlr settings (pure: no network, no Airflow DB)."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_butlr import (
    AUTH_TYPES,
    DEFAULT_AUDIENCE,
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RATE_LIMIT_WAIT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    EXTRA_BOUNDS,
)
from airflow_provider_butlr.client.scrub import remember_secret
from airflow_provider_butlr.exceptions import ButlrConfigurationError

EXTRA_PREFIX = "extra__butlr__"
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024  # one answer; larger ones fail naming the endpoint
MIN_RESPONSE_BYTES = EXTRA_BOUNDS["max_response_bytes"][0]  # below, a read's own buffers pass 2x the cap
# Where tokens are shared (client/tokens/stores.py): this process only, this host (default), or every
# host (through an Airflow Variable, or through the Redis of extra.redis_conn_id).
TOKEN_CACHE_MODES = ("process", "host", "variable", "redis")
_CONN_ID = re.compile(r"[A-Za-z0-9_.\-]{1,250}")  # Airflow's own rule for connection ids
LOGIN_FIELD = "field login, shown as 'Client ID'"
SECRET_FIELD = "field password, shown as 'Client Secret'"
DEFAULT_TOKEN_CACHE = "host"


@dataclass(frozen=True)
class ButlrSettings:
    """Everything the hook needs from a connection; the secret is excluded from repr."""

    conn_id: str
    base_url: str
    auth_type: str
    login: str
    secret: str = field(repr=False)
    audience: str = DEFAULT_AUDIENCE
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    max_retries_set: bool = False  # the connection names max_retries (a login then uses all of them)
    verify: bool | str = True
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_requests_per_minute: int | None = None  # client-side rate limit (off): host- or deployment-wide
    max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT  # seconds a request may wait out 429s
    token_cache: str = DEFAULT_TOKEN_CACHE
    token_cache_dir: str | None = None
    redis_conn_id: str | None = None  # an Airflow Redis connection: the limit and logins of every host

    @cached_property  # settings are frozen: computed once, not on every request
    def secret_fingerprint(self) -> str:
        """A one-way digest of the secret: distinguishes credentials without holding the secret."""
        return hashlib.sha256(self.secret.encode()).hexdigest()[:16]

    @cached_property  # settings are frozen: computed once, not on every request
    def cache_key(self) -> tuple[str, str, str, str, str]:
        """Token-cache key: tokens are shared only by identical credentials."""
        return (self.base_url, self.auth_type, self.login, self.audience, self.secret_fingerprint)

    @cached_property  # settings are frozen: computed once, not on every request
    def limiter_key(self) -> str:
        """Requests of identical credentials on one API share one client-side rate limit."""
        return "|".join(self.cache_key)

    @cached_property
    def origin(self) -> tuple[str, str, int]:
        """Scheme, host and port: the only place a bearer token may be sent."""
        return origin_of(self.base_url)


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int]:
    """A URL's origin, normalised: lower-case scheme, ASCII (IDNA) lower-case host, explicit port.

    ``https://bücher.example`` and ``https://xn--bcher-kva.example:443`` are the same origin.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    with contextlib.suppress(UnicodeError):  # an invalid IDNA label is compared as written
        host = host.encode("idna").decode("ascii")
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, host.lower(), port or DEFAULT_PORTS.get(scheme, 0)


def normalize_base_url(host: str | None, *, conn_id: str, port: int | None = None) -> str:
    """Accept ``api.butlr.io``, ``https://api.butlr.io/`` or empty (the default); refuse garbage.

    ``port`` (the form's Port field, or a URI-form connection's port) is used when the host names
    none itself; the scheme's default (443 for https) stays implicit, so ``https://api.butlr.io``
    with Port 443 is the same base URL (and token cache, asset URIs) as without. A port that
    contradicts the one in the host is refused.
    """
    raw = (host or "").strip() or DEFAULT_BASE_URL
    candidate = raw if "://" in raw else f"https://{raw}"
    parts = urlsplit(candidate)
    if "@" in parts.netloc:  # never echo it: the userinfo may hold a password
        raise ButlrConfigurationError(
            f"host must not contain credentials (user:password@); put them in the login and password "
            f"fields ({where(conn_id, 'field host')})"
        )
    hostname = parts.hostname or ""
    valid_host = bool(hostname) and all(ch.isalnum() or ch in ".-_[]:" for ch in hostname)
    if parts.scheme not in ("http", "https") or not valid_host or " " in raw or parts.query or parts.fragment:
        raise ButlrConfigurationError(
            f"host {raw!r} is not a valid API base URL; expected e.g. {DEFAULT_BASE_URL} "
            f"({where(conn_id, 'field host')})"
        )
    try:
        host_port = parts.port
    except ValueError as err:
        raise ButlrConfigurationError(
            f"host {raw!r} has an invalid port ({where(conn_id, 'field host')})"
        ) from err
    field_port = _port_field(port, conn_id)
    if field_port is not None and host_port is None:
        if field_port != DEFAULT_PORTS[parts.scheme]:
            parts = parts._replace(netloc=f"{parts.netloc.rstrip(':')}:{field_port}")
    elif field_port is not None and field_port != host_port:
        raise ButlrConfigurationError(
            f"port {field_port} differs from the port {host_port} in host {raw!r}; make them agree "
            f"or leave the port empty ({where(conn_id, 'field port')})"
        )
    path = parts.path.rstrip("/")
    if parts.scheme == "http" and not _is_loopback(hostname):
        warnings.warn(
            f"Butlr connection {conn_id} uses plain http:// for a non-loopback host {hostname}; "
            "credentials and tokens would travel unencrypted. Use https://.",
            UserWarning,
            stacklevel=3,
        )
    return f"{parts.scheme}://{parts.netloc}{path}"


def _port_field(port: Any, conn_id: str) -> int | None:
    """The connection's port: ``None`` when unset (0 too: nothing listens there), else 1-65535."""
    if port is None or str(port).strip() in ("", "0"):
        return None
    try:
        number = port if isinstance(port, int) and not isinstance(port, bool) else int(str(port).strip())
    except ValueError:
        raise ButlrConfigurationError(
            f"port {port!r} is not a whole number ({where(conn_id, 'field port')})"
        ) from None
    if not 0 < number < 65536:
        raise ButlrConfigurationError(
            f"port {number} is not between 1 and 65535 ({where(conn_id, 'field port')})"
        )
    return number


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


def _extra_value(extra: Mapping[str, Any], name: str) -> Any:
    """Read the bare key first, then Airflow's legacy ``extra__butlr__`` namespace."""
    value = extra.get(name)
    if value in (None, ""):
        value = extra.get(EXTRA_PREFIX + name)
    return None if value == "" else value


def _int_extra(extra: Mapping[str, Any], name: str, default: int, conn_id: str, *, off: bool = False) -> int:
    """A whole-number extra within its :data:`EXTRA_BOUNDS` (``off``: 0 also allowed, meaning off)."""
    value = _extra_value(extra, name)
    if value is None:
        return default
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, float) and value.is_integer():  # JSON extras may carry 30.0
        value = int(value)
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ButlrConfigurationError(
            f"{name} {value!r} is not a whole number ({where(conn_id, 'extra.' + name)})"
        ) from None
    least, largest = EXTRA_BOUNDS[name]
    if not (least <= number <= largest or (off and number == 0)):
        bound = f"at least {least}" if number < least else f"at most {largest}"
        raise ButlrConfigurationError(
            f"{name} {number} must be {bound}{' (or 0: off)' if off else ''} "
            f"({where(conn_id, 'extra.' + name)})"
        )
    return number


def where(conn_id: str, field: str) -> str:
    """``connection <id>, <field>`` for messages; just the field without an id (a connection test,
    whose id Airflow made up, names nothing the user knows)."""
    return f"connection {conn_id}, {field}" if conn_id else field


def _verify_extra(extra: Mapping[str, Any], conn_id: str) -> bool | str:
    """TLS verification: on by default; ``ca_bundle`` names a CA file (or c_rehash directory);
    ``verify: false`` turns it off."""
    ca_bundle = _extra_value(extra, "ca_bundle")
    if ca_bundle:
        if not os.path.exists(str(ca_bundle)):
            raise ButlrConfigurationError(
                f"ca_bundle {str(ca_bundle)!r} does not exist ({where(conn_id, 'extra.ca_bundle')})"
            )
        return str(ca_bundle)
    verify = _extra_value(extra, "verify")
    if verify is None:
        return True
    if isinstance(verify, bool):
        return verify
    text = str(verify).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ButlrConfigurationError(
        f"verify {verify!r} must be true or false ({where(conn_id, 'extra.verify')}); "
        "use extra.ca_bundle for a CA file"
    )


def _token_cache_extras(extra: Mapping[str, Any], conn_id: str) -> tuple[str, str | None]:
    """``token_cache`` (process, host, variable or redis) and ``token_cache_dir`` (an absolute path)."""
    raw_mode = _extra_value(extra, "token_cache")
    mode = DEFAULT_TOKEN_CACHE if raw_mode is None else str(raw_mode).strip().lower()
    if mode not in TOKEN_CACHE_MODES:
        raise ButlrConfigurationError(
            f"token_cache {raw_mode!r} is not one of {', '.join(TOKEN_CACHE_MODES)} "
            f"({where(conn_id, 'extra.token_cache')})"
        )
    raw_dir = _extra_value(extra, "token_cache_dir")
    if raw_dir is None:
        return mode, None
    directory = os.path.expanduser(str(raw_dir).strip())
    if not os.path.isabs(directory) or "\x00" in directory:
        raise ButlrConfigurationError(
            f"token_cache_dir {str(raw_dir)!r} must be an absolute path "
            f"({where(conn_id, 'extra.token_cache_dir')})"
        )
    return mode, directory


def _redis_conn_id(extra: Mapping[str, Any], conn_id: str, token_cache: str) -> str | None:
    """``redis_conn_id``: an Airflow connection id; ``token_cache: redis`` needs it."""
    raw = _extra_value(extra, "redis_conn_id")
    value = None if raw is None else str(raw).strip() or None
    if value is not None and not _CONN_ID.fullmatch(value):
        raise ButlrConfigurationError(
            f"redis_conn_id {str(raw)[:80]!r} is not an Airflow connection id (letters, digits, _ . -) "
            f"({where(conn_id, 'extra.redis_conn_id')})"
        )
    if value is None and token_cache == "redis":
        raise ButlrConfigurationError(
            "token_cache 'redis' needs extra.redis_conn_id, the Airflow Redis connection every host "
            f"shares ({where(conn_id, 'extra.token_cache')})"
        )
    return value


def parse_extra(extra: Any, conn_id: str) -> dict[str, Any]:
    """Extras arrive as a dict (JSON/UI connection) or a JSON string; anything else is refused."""
    if extra in (None, ""):
        return {}
    if isinstance(extra, Mapping):
        return dict(extra)
    try:
        parsed = json.loads(extra)
    except (TypeError, ValueError):
        raise ButlrConfigurationError(f"extra is not valid JSON ({where(conn_id, 'field extra')})") from None
    if not isinstance(parsed, dict):
        raise ButlrConfigurationError(f"extra must be a JSON object ({where(conn_id, 'field extra')})")
    return parsed


def settings_from_fields(
    *,
    conn_id: str,
    host: str | None,
    login: str | None,
    password: str | None,
    extra: Mapping[str, Any],
    port: int | None = None,
) -> ButlrSettings:
    """Validate connection fields; every error names the connection and the field."""
    auth_type = str(_extra_value(extra, "auth_type") or "client_credentials").strip()
    if auth_type not in AUTH_TYPES:
        raise ButlrConfigurationError(
            f"auth_type {auth_type!r} is not one of {', '.join(AUTH_TYPES)} "
            f"({where(conn_id, 'extra.auth_type')})"
        )
    login_label = "client id" if auth_type == "client_credentials" else "username"
    secret_label = "client secret" if auth_type == "client_credentials" else "password"
    if not (login or "").strip():
        raise ButlrConfigurationError(f"the {login_label} is missing ({where(conn_id, LOGIN_FIELD)})")
    if not password:
        raise ButlrConfigurationError(f"the {secret_label} is missing ({where(conn_id, SECRET_FIELD)})")
    remember_secret(str(password))  # scrubbed from every text from now on, whatever echoes it
    audience = str(_extra_value(extra, "audience") or DEFAULT_AUDIENCE).strip()
    token_cache, token_cache_dir = _token_cache_extras(extra, conn_id)
    return ButlrSettings(
        conn_id=conn_id,
        base_url=normalize_base_url(host, conn_id=conn_id, port=port),
        auth_type=auth_type,
        login=str(login).strip(),
        secret=str(password),
        audience=audience,
        timeout=float(_int_extra(extra, "timeout", DEFAULT_TIMEOUT, conn_id)),
        max_retries=_int_extra(extra, "max_retries", DEFAULT_MAX_RETRIES, conn_id),
        max_retries_set=_extra_value(extra, "max_retries") is not None,
        verify=_verify_extra(extra, conn_id),
        max_response_bytes=_int_extra(extra, "max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES, conn_id),
        max_requests_per_minute=_int_extra(extra, "max_requests_per_minute", 0, conn_id, off=True) or None,
        max_rate_limit_wait=float(
            _int_extra(extra, "max_rate_limit_wait", DEFAULT_MAX_RATE_LIMIT_WAIT, conn_id)
        ),
        token_cache=token_cache,
        token_cache_dir=token_cache_dir,
        redis_conn_id=_redis_conn_id(extra, conn_id, token_cache),
    )


def settings_from_connection(
    conn: Any, conn_id: str, extra: Any = None, *, anonymous: bool = False
) -> ButlrSettings:
    """Build settings from an ``airflow.sdk.Connection`` (or anything with the same attributes).

    The one route from a connection to settings, for both hooks: the async hook reads ``extra``
    without blocking the event loop and passes it in; otherwise ``extra_dejson`` is used.
    ``anonymous``: messages name fields only, not the connection (a connection test's id is made up).
    """
    conn_id = "" if anonymous else getattr(conn, "conn_id", None) or conn_id
    raw_extra = extra if extra is not None else getattr(conn, "extra_dejson", None)
    if raw_extra is None:
        raw_extra = getattr(conn, "extra", None)
    return settings_from_fields(
        conn_id=conn_id,
        host=getattr(conn, "host", None),
        login=getattr(conn, "login", None),
        password=getattr(conn, "password", None),
        extra=parse_extra(raw_extra, conn_id),
        port=getattr(conn, "port", None),
    )
