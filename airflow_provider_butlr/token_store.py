"""Token stores shared across processes: one login per token lifetime per host (or per deployment).

The process-wide :data:`~airflow_provider_butlr.auth.TOKEN_CACHE` stays the first level; a store is the
level behind it, consulted only when this process has no fresh token:

* ``process`` - no store (each process logs in once).
* ``host`` (default) - a file per cache key in a private directory (0700; files 0600), the token
  Fernet-encrypted with Airflow's ``[core] fernet_key``, written atomically, and an ``fcntl.flock`` per
  key so that processes starting at once produce one login. Without a Fernet key it falls back to
  ``process`` and says so once at INFO.
* ``variable`` - the host store plus an Airflow Variable holding the Fernet-encrypted token, shared by
  every host (see docs/token-store.md for what it costs).

Nothing here ever writes or logs a token in plaintext.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_butlr.auth import AccessToken, CacheKey
from airflow_provider_butlr.settings import DEFAULT_TOKEN_CACHE, TOKEN_CACHE_MODES

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

    from airflow_provider_butlr.settings import ButlrSettings

__all__ = [
    "DEFAULT_TOKEN_CACHE",
    "TOKEN_CACHE_MODES",
    "HostStore",
    "TokenStore",
    "VariableStore",
    "store_for",
]

log = logging.getLogger(__name__)

TOKEN_CACHE_DIR_ENV = "BUTLR_TOKEN_CACHE_DIR"
LOCK_TIMEOUT = 120.0  # longest wait for another process's login before logging in without the lock
DISCARD_LOCK_WAIT = 0.5  # a 401 does not wait for a login in flight: that login replaces the entry
VARIABLE_PREFIX = "butlr_token_cache_"
RECORD_VERSION = 1


def key_digest(key: CacheKey) -> str:
    """A file/Variable name for a cache key: a digest, so neither the login nor the URL shows."""
    return hashlib.sha256("\x1f".join(key).encode()).hexdigest()[:40]


class TokenStore(Protocol):
    """The level behind the process cache. ``load``/``save``/``discard`` never raise."""

    name: str

    def load(self, key: CacheKey) -> AccessToken | None: ...

    def save(self, key: CacheKey, token: AccessToken) -> None: ...

    def discard(self, key: CacheKey, token_value: str) -> None:
        """Delete the shared entry only while it still holds ``token_value`` (compare, then delete)."""
        ...

    def lock(self, key: CacheKey) -> contextlib.AbstractContextManager[None]:
        """Exclusive across processes for one key: held while loading-or-logging-in."""
        ...

    def alock(self, key: CacheKey) -> contextlib.AbstractAsyncContextManager[None]: ...

    def clear(self) -> None: ...


# --- Fernet ----------------------------------------------------------------------------------------


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


@lru_cache(maxsize=4)
def _fernet_for(key_text: str) -> MultiFernet | None:
    """Airflow's scheme: comma-separated keys, the first encrypts, any decrypts (key rotation)."""
    from cryptography.fernet import Fernet, MultiFernet

    try:
        return MultiFernet([Fernet(part.strip().encode()) for part in key_text.split(",") if part.strip()])
    except (ValueError, TypeError):
        log.warning("[core] fernet_key is not a valid Fernet key; Butlr tokens are cached per process only.")
        return None


_said_no_key = threading.Event()


def airflow_fernet() -> MultiFernet | None:
    """The Fernet of Airflow's configured key, or None (said once at INFO) when none is configured."""
    key_text = _configured_fernet_key()
    fernet = _fernet_for(key_text) if key_text else None
    if fernet is None and key_text == "" and not _said_no_key.is_set():
        _said_no_key.set()
        log.info(
            "No Airflow fernet_key is configured: Butlr access tokens are cached per process only "
            "(the shared token stores keep tokens only Fernet-encrypted). Set [core] fernet_key to "
            "share one login across task processes."
        )
    return fernet


def seal(fernet: MultiFernet, key: CacheKey, token: AccessToken) -> bytes:
    """The encrypted record: value, times, and the key digest it belongs to."""
    record = {
        "v": RECORD_VERSION,
        "key": key_digest(key),
        "token": token.value,
        "obtained_at": token.obtained_at,
        "expires_at": token.expires_at,
    }
    return fernet.encrypt(json.dumps(record).encode())


def unseal(fernet: MultiFernet, key: CacheKey, blob: bytes) -> AccessToken | None:
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


# --- the per-host store ------------------------------------------------------------------------------


class HostStore:
    """A file per cache key in a private directory, Fernet-encrypted, with a per-key ``flock``."""

    name = "host"

    def __init__(self, directory: Path, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.directory = directory
        self.lock_timeout = lock_timeout
        self._dir_checked = False
        self._dir_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HostStore({str(self.directory)!r})"

    # -- the directory --

    def _private_dir(self) -> Path | None:
        """The directory, created 0700; None (said once) when it is not ours alone."""
        if self._dir_checked and self.directory.is_dir():  # checked again if someone removed it
            return self.directory
        with self._dir_lock:
            try:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                info = os.lstat(self.directory)
                if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                    raise PermissionError("not a directory owned by this user (or a symlink)")
                if stat.S_IMODE(info.st_mode) & 0o077:
                    os.chmod(self.directory, 0o700)
            except OSError as err:
                _warn_once(
                    f"dir:{self.directory}",
                    "Butlr token cache directory %s is not usable (%s); tokens are cached per process only.",
                    self.directory,
                    err.strerror or err,
                )
                return None
            self._dir_checked = True
            return self.directory

    def _path(self, key: CacheKey, suffix: str) -> Path | None:
        directory = self._private_dir()
        return None if directory is None else directory / f"{key_digest(key)}{suffix}"

    # -- records --

    def load(self, key: CacheKey) -> AccessToken | None:
        fernet = airflow_fernet()
        path = self._path(key, ".token") if fernet is not None else None
        if fernet is None or path is None:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as file:
                blob = file.read(64 * 1024)
        except OSError:
            return None
        return unseal(fernet, key, blob)

    def save(self, key: CacheKey, token: AccessToken) -> None:
        fernet = airflow_fernet()
        path = self._path(key, ".token") if fernet is not None else None
        if fernet is None or path is None:
            return
        blob = seal(fernet, key, token)
        try:  # atomic: a reader sees the old record or the new one, never half of one
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".token")  # mode 0600
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(blob)
                os.rename(tmp, path)  # POSIX (as flock): replaces the old record atomically
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as err:
            _warn_once(
                f"write:{self.directory}",
                "Could not write the Butlr token cache in %s: %s",
                self.directory,
                err,
            )

    def discard(self, key: CacheKey, token_value: str) -> None:
        path = self._path(key, ".token")
        if path is None or airflow_fernet() is None:
            return
        with self._try_lock(key, DISCARD_LOCK_WAIT) as locked:
            if not locked:  # a login is in flight: it will replace the entry anyway
                return
            current = self.load(key)
            if current is not None and current.value == token_value:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def clear(self) -> None:
        if not self.directory.is_dir():
            return
        for path in self.directory.glob("*.token"):
            with contextlib.suppress(OSError):
                path.unlink()

    # -- locking --

    def _open_lock(self, key: CacheKey) -> int | None:
        path = self._path(key, ".lock")
        if path is None or airflow_fernet() is None:
            return None
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError:
            return None

    @contextlib.contextmanager
    def _try_lock(self, key: CacheKey, wait: float) -> Iterator[bool]:
        """Hold the key's lock if it can be had within ``wait`` seconds; yields whether it was."""
        fd = self._open_lock(key)
        if fd is None:
            yield False
            return
        try:
            deadline, pause = time.monotonic() + wait, 0.005
            while not _flock(fd):
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
            yield True
        finally:
            os.close(fd)  # closing releases the flock

    @contextlib.contextmanager
    def lock(self, key: CacheKey) -> Iterator[None]:
        with self._try_lock(key, self.lock_timeout) as locked:
            if not locked and self._path(key, ".lock") is not None and airflow_fernet() is not None:
                log.warning(
                    "Waited %.0f s for another process's Butlr login; logging in without the lock.",
                    self.lock_timeout,
                )
            yield

    @contextlib.asynccontextmanager
    async def alock(self, key: CacheKey) -> AsyncIterator[None]:
        """The same lock for the event loop: non-blocking tries with ``asyncio.sleep`` in between."""
        fd = await asyncio.to_thread(self._open_lock, key)
        try:
            if fd is not None:
                deadline, pause = time.monotonic() + self.lock_timeout, 0.005
                while not _flock(fd):
                    if time.monotonic() >= deadline:
                        log.warning(
                            "Waited %.0f s for another process's Butlr login; logging in without the lock.",
                            self.lock_timeout,
                        )
                        break
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.1)
            yield
        finally:
            if fd is not None:
                os.close(fd)


def _flock(fd: int) -> bool:
    """One non-blocking try for an exclusive ``flock``."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


# --- the cross-host store ----------------------------------------------------------------------------


class VariableStore:
    """The host store plus an Airflow Variable holding only the Fernet-encrypted token.

    Hosts share one token; within a host the file lock still makes concurrent starts one login. There is
    no lock across hosts (Variables have no compare-and-set): hosts starting at the same instant may each
    log in once. Any Variable failure degrades to the host store with one WARNING.
    """

    name = "variable"

    def __init__(self, host: HostStore) -> None:
        self.host = host

    def __repr__(self) -> str:
        return f"VariableStore({self.host!r})"

    def load(self, key: CacheKey) -> AccessToken | None:
        token = self.host.load(key)
        if token is not None and token.is_fresh(time.time()):
            return token
        fernet = airflow_fernet()
        blob = _variable_call("get", VARIABLE_PREFIX + key_digest(key)) if fernet is not None else None
        shared = unseal(fernet, key, blob.encode()) if fernet is not None and isinstance(blob, str) else None
        if shared is not None and shared.is_fresh(time.time()):
            self.host.save(key, shared)
            return shared
        return token

    def save(self, key: CacheKey, token: AccessToken) -> None:
        self.host.save(key, token)
        fernet = airflow_fernet()
        if fernet is not None:
            blob = seal(fernet, key, token).decode()
            _variable_call("set", VARIABLE_PREFIX + key_digest(key), blob)

    def discard(self, key: CacheKey, token_value: str) -> None:
        self.host.discard(key, token_value)
        fernet = airflow_fernet()
        if fernet is None:
            return
        name = VARIABLE_PREFIX + key_digest(key)
        blob = _variable_call("get", name)
        shared = unseal(fernet, key, blob.encode()) if isinstance(blob, str) else None
        if shared is not None and shared.value == token_value:
            _variable_call("delete", name)

    def lock(self, key: CacheKey) -> contextlib.AbstractContextManager[None]:
        return self.host.lock(key)

    def alock(self, key: CacheKey) -> contextlib.AbstractAsyncContextManager[None]:
        return self.host.alock(key)

    def clear(self) -> None:
        self.host.clear()


VARIABLE_DESCRIPTION = (
    "airflow-provider-butlr: a Fernet-encrypted Butlr access token (a cache; safe to delete)"
)


def _variable_call(action: str, name: str, value: str | None = None) -> Any:
    """Airflow's Task SDK Variable API; any failure is one WARNING and a miss, never a failed task."""
    try:
        from airflow.sdk import Variable

        if action == "get":
            return Variable.get(name, default=None)
        if action == "set":
            Variable.set(name, value, description=VARIABLE_DESCRIPTION)
        elif action == "delete":
            Variable.delete(name)
    except Exception as err:  # no Variable API here (e.g. Airflow 3.0's triggerer cannot set one)
        _warn_once(
            f"variable:{action}",
            "The Butlr token Variable could not be %s here (%s); using the per-host token store.",
            {"get": "read", "set": "written", "delete": "deleted"}[action],
            type(err).__name__,
        )
    return None


# --- choosing a store -----------------------------------------------------------------------------------

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(topic: str, message: str, *args: Any) -> None:
    with _warned_lock:
        if topic in _warned:
            return
        _warned.add(topic)
    log.warning(message, *args)


def default_token_cache_dir() -> Path:
    """``$BUTLR_TOKEN_CACHE_DIR``, else ``$AIRFLOW_HOME/butlr-token-cache`` (``~/airflow`` by default)."""
    configured = os.environ.get(TOKEN_CACHE_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("AIRFLOW_HOME") or "~/airflow").expanduser() / "butlr-token-cache"


@lru_cache(maxsize=64)
def _store(mode: str, directory: Path) -> TokenStore | None:
    if mode == "process":
        return None
    host = HostStore(directory)
    return VariableStore(host) if mode == "variable" else host


def store_for(settings: ButlrSettings) -> TokenStore | None:
    """The store a connection's ``token_cache`` extra chooses (None: this process only)."""
    mode = settings.token_cache
    if mode == "process":
        return None
    configured = settings.token_cache_dir
    directory = Path(configured).expanduser() if configured else default_token_cache_dir()
    return _store(mode, directory)
