"""One async helper shared by the async hook, the trigger and the token store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """``await awaitable`` for at most ``seconds`` (``TimeoutError`` after).

    Not ``asyncio.wait_for``: before Python 3.12 it can swallow the caller's cancellation when the
    inner call finishes at the same moment, and a cancelled trigger (triggerer shutdown, a killed
    task) would then go on polling. ``asyncio.timeout`` (3.11+) runs the call in the caller's task.
    """
    async with asyncio.timeout(seconds):
        return await awaitable
