"""The per-host token store: a file per cache key in a private directory, with a per-key ``flock``.

The directory is checked at every use, without a race: it is opened once per operation with
``O_DIRECTORY | O_NOFOLLOW`` (a symlink is refused), its owner and mode are read from that descriptor,
and every file is opened, renamed and removed relative to it. So a directory swapped after the first
use (for a symlink, or for someone else's directory with a lock file in it) is refused at the next
use, never written through; and a lock file that is not a regular file of this user is never waited
on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import stat
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from airflow_provider_butlr.client.tokens.fernet import airflow_fernet, key_digest, seal, unseal
from airflow_provider_butlr.client.tokens.model import AccessToken, CacheKey
from airflow_provider_butlr.client.tokens.notices import warn_once

log = logging.getLogger(__name__)

LOCK_TIMEOUT = 120.0  # longest wait for another process's login before logging in without the lock
DISCARD_LOCK_WAIT = 0.5  # a 401 does not wait for a login in flight: that login replaces the entry
MAX_RECORD = 64 * 1024
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC


class HostStore:
    """A file per cache key in a private directory, Fernet-encrypted, with a per-key ``flock``."""

    name = "host"

    def __init__(self, directory: Path, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.directory = directory
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"HostStore({str(self.directory)!r})"

    # -- the directory, checked at every use --

    def _open_dir(self) -> int | None:
        """A descriptor of the directory (created 0700), checked now: no symlink, owned by this
        user, private; None (said once) when it is not usable."""
        try:
            try:
                fd = os.open(self.directory, _DIR_FLAGS)
            except FileNotFoundError:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(self.directory, _DIR_FLAGS)
            try:
                info = os.fstat(fd)
                if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                    raise PermissionError(errno.EPERM, "not a directory owned by this user")
                if stat.S_IMODE(info.st_mode) & 0o077:
                    os.fchmod(fd, 0o700)
            except BaseException:
                os.close(fd)
                raise
        except OSError as err:
            reason = "a symlink" if err.errno == errno.ELOOP else (err.strerror or str(err))
            warn_once(
                f"dir:{self.directory}",
                "Butlr token cache directory %s is not usable (%s); tokens are cached per process only.",
                self.directory,
                reason,
            )
            return None
        return fd

    @contextlib.contextmanager
    def _dir(self) -> Iterator[int | None]:
        """The checked directory for one operation (None: not usable, or no Fernet key)."""
        fd = self._open_dir() if airflow_fernet() is not None else None
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    # -- records --

    def load(self, key: CacheKey) -> AccessToken | None:
        with self._dir() as dir_fd:
            return None if dir_fd is None else self._load(dir_fd, key)

    def _load(self, dir_fd: int, key: CacheKey) -> AccessToken | None:
        fernet = airflow_fernet()
        if fernet is None:
            return None
        try:
            fd = os.open(_name(key, ".token"), os.O_RDONLY | _NOFOLLOW, dir_fd=dir_fd)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as file:
            if not _ours(file.fileno()):
                return None
            blob = file.read(MAX_RECORD)
        return unseal(fernet, key, blob)

    def save(self, key: CacheKey, token: AccessToken) -> None:
        fernet = airflow_fernet()
        with self._dir() as dir_fd:
            if fernet is None or dir_fd is None:
                return
            blob = seal(fernet, key, token)
            tmp = f".tmp-{secrets.token_hex(8)}.token"
            try:  # atomic: a reader sees the old record or the new one, never half of one
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600, dir_fd=dir_fd)
                try:
                    with os.fdopen(fd, "wb") as file:
                        file.write(blob)
                    os.rename(tmp, _name(key, ".token"), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp, dir_fd=dir_fd)
                    raise
            except OSError as err:
                warn_once(
                    f"write:{self.directory}",
                    "Could not write the Butlr token cache in %s: %s",
                    self.directory,
                    err,
                )

    def discard(self, key: CacheKey, token_value: str) -> None:
        with self._dir() as dir_fd:
            if dir_fd is None:
                return
            with self._try_lock(dir_fd, key, DISCARD_LOCK_WAIT) as locked:
                if not locked:  # a login is in flight: it will replace the entry anyway
                    return
                current = self._load(dir_fd, key)
                if current is not None and current.value == token_value:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(_name(key, ".token"), dir_fd=dir_fd)

    def clear(self) -> None:
        with self._dir() as dir_fd:
            if dir_fd is None:
                return
            for name in os.listdir(dir_fd):
                if name.endswith(".token"):
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=dir_fd)

    def open_record(self, name: str) -> int | None:
        """A regular file of this user in the checked directory, opened read-write (created 0600),
        for records that hold no secret and need no Fernet key (the host's rate-limit window);
        None when the directory or the file is not usable."""
        dir_fd = self._open_dir()
        if dir_fd is None:
            return None
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600, dir_fd=dir_fd)
        except OSError:
            return None
        finally:
            os.close(dir_fd)
        if not _ours(fd):
            os.close(fd)
            return None
        return fd

    # -- locking --

    def _open_lock(self, key: CacheKey) -> int | None:
        """The key's lock file, opened in the checked directory; None when it cannot be used (a
        lock file that is no regular file of this user is never waited on)."""
        with self._dir() as dir_fd:
            return None if dir_fd is None else self._open_lock_in(dir_fd, key)

    def _open_lock_in(self, dir_fd: int, key: CacheKey) -> int | None:
        try:
            fd = os.open(_name(key, ".lock"), os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600, dir_fd=dir_fd)
        except OSError:
            return None
        if not _ours(fd):
            os.close(fd)
            warn_once(
                f"lock:{self.directory}",
                "Butlr token cache lock file in %s is not a regular file of this user; logging in "
                "without it.",
                self.directory,
            )
            return None
        return fd

    @contextlib.contextmanager
    def _try_lock(self, dir_fd: int, key: CacheKey, wait: float) -> Iterator[bool]:
        """Hold the key's lock if it can be had within ``wait`` seconds; yields whether it was."""
        fd = self._open_lock_in(dir_fd, key)
        try:
            yield fd is not None and _acquire(fd, wait)
        finally:
            if fd is not None:
                os.close(fd)  # closing releases the flock

    @contextlib.contextmanager
    def lock(self, key: CacheKey) -> Iterator[None]:
        fd = self._open_lock(key)
        try:
            if fd is not None and not _acquire(fd, self.lock_timeout):
                waited(self.lock_timeout)
            yield
        finally:
            if fd is not None:
                os.close(fd)

    @contextlib.asynccontextmanager
    async def alock(self, key: CacheKey) -> AsyncIterator[None]:
        """The same lock for the event loop: non-blocking tries with ``asyncio.sleep`` in between."""
        fd = await asyncio.to_thread(self._open_lock, key)
        try:
            if fd is not None:
                deadline, pause = time.monotonic() + self.lock_timeout, 0.005
                while not _flock(fd):
                    if time.monotonic() >= deadline:
                        waited(self.lock_timeout)
                        break
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.1)
            yield
        finally:
            if fd is not None:
                os.close(fd)


def _name(key: CacheKey, suffix: str) -> str:
    return f"{key_digest(key)}{suffix}"


def _ours(fd: int) -> bool:
    """An open file that is a regular file of this user (not a FIFO, a device or someone else's)."""
    info = os.fstat(fd)
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid()


def _acquire(fd: int, wait: float) -> bool:
    """Tries for the lock, without blocking (5 ms, doubling up to 100 ms), for ``wait`` seconds."""
    deadline, pause = time.monotonic() + wait, 0.005
    while not _flock(fd):
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
    return True


def waited(seconds: float) -> None:
    log.warning("Waited %.0f s for another process's Butlr login; logging in without the lock.", seconds)


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
