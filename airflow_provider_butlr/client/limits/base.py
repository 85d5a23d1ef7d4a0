"""What every limiter does around one request: book a slot, wait until it, send, then record the
answer's time; and hold every caller after a server's ``Retry-After``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

log = logging.getLogger(__name__)


class BookingLimiter(ABC):
    """At most ``per_minute`` requests in any rolling minute, among everyone who books here.

    ``scope`` says who that is: ``process``, ``host`` (a file in the token store's directory) or
    ``redis`` (every host of the deployment).
    """

    scope: str
    per_minute: int
    _sleep: Callable[[float], None] = staticmethod(time.sleep)

    @abstractmethod
    def book(self) -> tuple[float, int]:
        """Book the next slot: (seconds to wait before sending, the slot's id)."""

    @abstractmethod
    def answered(self, slot: int) -> None:
        """The slot's request was answered now."""

    @abstractmethod
    def hold(self, seconds: float) -> None:
        """No slot starts within ``seconds`` (a server's Retry-After), for every caller."""

    async def abook(self) -> tuple[float, int]:
        return await asyncio.to_thread(self.book)

    async def aanswered(self, slot: int) -> None:
        await asyncio.to_thread(self.answered, slot)

    async def ahold(self, seconds: float) -> None:
        await asyncio.to_thread(self.hold, seconds)

    def reserve(self) -> float:
        """Book the next slot; the seconds to wait before sending (0 when one is free now)."""
        return self.book()[0]

    def acquire(self) -> float:
        """Wait (sleeping) until this request may be sent; the seconds waited."""
        delay = self.reserve()
        if delay > 0:
            self._sleep(delay)
        return max(delay, 0.0)

    async def aacquire(self) -> float:
        """:meth:`acquire` for the event loop (awaits instead of sleeping)."""
        delay = (await self.abook())[0]
        if delay > 0:
            await asyncio.sleep(delay)
        return max(delay, 0.0)

    @contextmanager
    def sending(self) -> Iterator[float]:
        """Wait for a slot, send in the block; the slot counts from the block's end (the answer)."""
        delay, slot = self.book()
        if delay > 0:
            self._sleep(delay)
        try:
            yield max(delay, 0.0)
        finally:
            self.answered(slot)

    @asynccontextmanager
    async def asending(self) -> AsyncIterator[float]:
        """:meth:`sending` for the event loop."""
        delay, slot = await self.abook()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            yield max(delay, 0.0)
        finally:
            await self.aanswered(slot)


class Unreachable(Exception):
    """The shared state (the host's file, Redis) cannot be reached just now."""


class SharedLimiter(BookingLimiter):
    """A limiter whose window lives outside the process, with a narrower one behind it.

    While the shared window cannot be reached, ``fallback`` (the host's window behind Redis, the
    process's behind the host's) books instead, for ``retry_after`` seconds, with one WARNING; each
    slot is answered where it was booked.
    """

    fallback: BookingLimiter
    retry_after = 30.0

    def __init__(self) -> None:
        self._down_until = 0.0
        self._fallen: set[int] = set()
        self._lock = threading.Lock()

    @abstractmethod
    def _book(self, slot: int) -> float:
        """Book ``slot`` in the shared window; the seconds to wait (raises :class:`Unreachable`)."""

    @abstractmethod
    def _answered(self, slot: int) -> None: ...

    @abstractmethod
    def _hold(self, seconds: float) -> None: ...

    async def _abook(self, slot: int) -> float:
        return await asyncio.to_thread(self._book, slot)

    async def _aanswered(self, slot: int) -> None:
        await asyncio.to_thread(self._answered, slot)

    async def _ahold(self, seconds: float) -> None:
        await asyncio.to_thread(self._hold, seconds)

    def _describe_outage(self, err: BaseException) -> str:
        return f"{type(err).__name__}"

    def _down(self, err: BaseException) -> None:
        with self._lock:
            first = time.monotonic() >= self._down_until
            self._down_until = time.monotonic() + self.retry_after
        if first:
            log.warning(
                "The %s rate limit of these Butlr credentials cannot be reached (%s); the %s limit "
                "stands in for %.0f s.",
                self.scope,
                self._describe_outage(err),
                self.fallback.scope,
                self.retry_after,
            )

    def _up(self) -> bool:
        return time.monotonic() >= self._down_until

    def _fell_back(self, booked: tuple[float, int]) -> tuple[float, int]:
        with self._lock:
            self._fallen.add(booked[1])
        return booked

    def _was_fallen(self, slot: int) -> bool:
        with self._lock:
            if slot in self._fallen:
                self._fallen.discard(slot)
                return True
        return False

    def book(self) -> tuple[float, int]:
        slot = secrets.randbits(63)
        if self._up():
            try:
                return self._book(slot), slot
            except Unreachable as err:
                self._down(err.__cause__ or err)
        return self._fell_back(self.fallback.book())

    def answered(self, slot: int) -> None:
        if self._was_fallen(slot):
            self.fallback.answered(slot)
        else:
            with contextlib.suppress(Unreachable):  # lost: the next slot comes sooner by the latency
                self._answered(slot)

    def hold(self, seconds: float) -> None:
        self.fallback.hold(seconds)  # the hold outlives an outage
        with contextlib.suppress(Unreachable):
            self._hold(seconds)

    async def abook(self) -> tuple[float, int]:
        slot = secrets.randbits(63)
        if self._up():
            try:
                return await self._abook(slot), slot
            except Unreachable as err:
                self._down(err.__cause__ or err)
        return self._fell_back(await self.fallback.abook())

    async def aanswered(self, slot: int) -> None:
        if self._was_fallen(slot):
            await self.fallback.aanswered(slot)
        else:
            with contextlib.suppress(Unreachable):
                await self._aanswered(slot)

    async def ahold(self, seconds: float) -> None:
        await self.fallback.ahold(seconds)
        with contextlib.suppress(Unreachable):
            await self._ahold(seconds)
