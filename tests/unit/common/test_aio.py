"""A bounded await must never swallow the caller's cancellation (asyncio.wait_for did, before 3.12).

Seen as a hang: a trigger cancelled while its request had just finished went on polling forever.
"""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_butlr.common.aio import within

pytestmark = pytest.mark.airflow_independent  # pure asyncio: run once, not per Airflow minor


async def test_a_cancellation_arriving_as_the_call_completes_is_not_lost() -> None:
    async def quick() -> int:
        return 1

    async def caller() -> None:
        await within(quick(), 5)
        await asyncio.sleep(3600)  # reached only if the cancellation below were swallowed

    for _ in range(50):
        task = asyncio.ensure_future(caller())
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the inner call has finished: the cancellation races with its result
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)


async def test_the_bound_still_holds() -> None:
    with pytest.raises(TimeoutError):
        await within(asyncio.sleep(5), 0.05)
