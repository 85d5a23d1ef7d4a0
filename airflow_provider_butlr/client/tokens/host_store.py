"""The per-host token store: a file per cache key in a private directory, with a per-key ``flock``."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from airflow_provider_butlr.client.tokens.fernet import airflow_fernet, key_digest, seal, unseal
from airflow_provider_butlr.client.tokens.model import AccessToken, CacheKey
from airflow_provider_butlr.client.tokens.notices import warn_once

log = logging.getLogger(__name__)

LOCK_TIMEOUT = 120.0  # longest wait for another process's login before logging in without the lock
DISCARD_LOCK_WAIT = 0.5  # a 401 does not wait for a login in flight: that login replaces the entry


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
                warn_once(
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
            warn_once(
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
