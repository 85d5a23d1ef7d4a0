"""The polls of one triggerer process, shared: identical requests sent once, mergeable ones merged.

Every trigger of one event loop that polls with the same connection and hook options joins one
:class:`SharedPolls`. A request it makes waits ``LINGER`` seconds for the requests of the other
triggers that woke on the same tick of the clock grid (:func:`~airflow_provider_butlr.polling.sharing.aligned_wait`);
then :func:`~airflow_provider_butlr.polling.sharing.pack` turns them into as few requests as Butlr's
batch guidance allows, sent on one httpx client, and each trigger gets the answer its own request
would have had. It works on every Airflow 3 minor (Airflow 3.3's shared streams serve event
triggers only, not deferred tasks).

Failures stay each trigger's own: a merged request that the server refuses as a bad request (a 4xx
that is not 401/403/408/409/425/429), or whose answer cannot be cut per asset, is sent again as each
member's own request, so one sensor's wrong id never fails its neighbours. Other errors (5xx after
the retries, network) reach every member, as they would have reached each alone.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_provider_butlr.client.flow import adrive
from airflow_provider_butlr.exceptions import ButlrDataError
from airflow_provider_butlr.hooks.butlr_async import ButlrAsyncHook
from airflow_provider_butlr.polling.answers import Verdict
from airflow_provider_butlr.polling.plans import PollPlan, PollRequest, poll_flow
from airflow_provider_butlr.polling.sharing import (
    UNSPLITTABLE,
    Batch,
    Share,
    answer_for,
    is_request_fault,
    pack,
    share_of,
)

LINGER = 0.05  # seconds a request waits for the others of its tick
MAX_IN_FLIGHT = 4  # concurrent requests of one shared poller (Butlr suggests at most 5)
RENEW_AFTER = 3600.0  # seconds: later joiners get a new poller, which reads the connection again


class Poller(Protocol):
    """What a trigger polls with: its own hook, or its membership of the process's shared polls."""

    async def apoll(self, plan: PollPlan, now: float) -> tuple[Verdict, list[Any]]: ...

    async def aclose(self) -> None: ...


@dataclass
class _Pending:
    share: Share
    future: asyncio.Future[Any]


class SharedPolls:
    """One httpx client and one request queue for the triggers of one loop, connection and options."""

    def __init__(self, conn_id: str, hook_params: Mapping[str, Any], key: str) -> None:
        self.hook = ButlrAsyncHook(conn_id, **hook_params)
        self.key = key
        self.created = time.monotonic()
        self.members = 0
        self.requests_sent = 0  # requests handed to the hook (a test and the benchmark read it)
        self._pending: list[_Pending] = []
        self._flush: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._opening = asyncio.Lock()

    # --- membership ------------------------------------------------------------------------------

    async def join(self) -> Membership:
        self.members += 1
        try:
            async with self._opening:
                if not self.hook.is_open:
                    await self.hook.__aenter__()
        except BaseException:
            await self._leave()
            raise
        return Membership(self)

    async def _leave(self) -> None:
        self.members -= 1
        if self.members > 0:
            return
        registry = _registry()
        if registry.get(self.key) is self:
            del registry[self.key]
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        for pending in self._pending:
            pending.future.cancel()
        self._pending.clear()
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.hook.aclose()

    # --- requests --------------------------------------------------------------------------------

    async def fetch(self, request: PollRequest) -> Any:
        """The answer to ``request``, sent with those of the other triggers that came within LINGER."""
        loop = asyncio.get_running_loop()
        pending = _Pending(share_of(request), loop.create_future())
        self._pending.append(pending)
        if self._flush is None:
            self._flush = loop.call_later(LINGER, self._send_pending)
        return await pending.future

    def _send_pending(self) -> None:
        self._flush = None
        waiting = [p for p in self._pending if not p.future.done()]  # a cancelled poll asks for nothing
        self._pending = []
        shares = [p.share for p in waiting]
        for batch in pack(shares):
            self._spawn(self._send(batch, [waiting[i] for i in batch.members], shares))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: Batch, members: Sequence[_Pending], shares: Sequence[Share]) -> None:
        try:
            async with self._slots:
                self.requests_sent += 1
                payload = await self.hook.apoll_request(batch.request)
        except asyncio.CancelledError:  # the last member left: nobody waits any more
            for member in members:
                member.future.cancel()
            raise
        except Exception as exc:
            if batch.distinct(shares) > 1 and (is_request_fault(exc) or isinstance(exc, ButlrDataError)):
                self._alone(members)  # whose request is it? each asks its own
                return
            for member in members:
                _settle(member.future, error=exc)
            return
        answers = [answer_for(m.share, batch.ids, payload) for m in members]
        if any(answer is UNSPLITTABLE for answer in answers):
            self._alone(members)
            return
        for member, answer in zip(members, answers, strict=True):
            _settle(member.future, answer)

    def _alone(self, members: Sequence[_Pending]) -> None:
        """Send each member's own request (identical ones still once)."""
        shares = [Share(m.share.request, m.share.key + json.dumps(m.share.ids)) for m in members]
        for batch in pack(shares):
            self._spawn(self._send(batch, [members[i] for i in batch.members], shares))


def _settle(future: asyncio.Future[Any], answer: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # the poll was cancelled meanwhile (its deadline, the triggerer)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(answer)


class Membership:
    """A trigger's part in a :class:`SharedPolls`; :meth:`aclose` leaves it (idempotent)."""

    def __init__(self, shared: SharedPolls) -> None:
        self._shared: SharedPolls | None = shared

    async def apoll(self, plan: PollPlan, now: float) -> tuple[Verdict, list[Any]]:
        """One poll of ``plan``, its requests shared with the other triggers' of the same tick."""
        shared = self._shared
        if shared is None:
            raise RuntimeError("this trigger has left the shared polls")

        async def send(request: PollRequest) -> Any:
            return await shared.fetch(request)

        return await adrive(poll_flow(plan, now, time.time), send)

    async def aclose(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            await shared._leave()


_REGISTRIES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, SharedPolls]] = (
    weakref.WeakKeyDictionary()
)


def _registry() -> dict[str, SharedPolls]:
    return _REGISTRIES.setdefault(asyncio.get_running_loop(), {})


def shared_polls(conn_id: str, hook_params: Mapping[str, Any]) -> SharedPolls | None:
    """The loop's shared poller for this connection and these options, if a trigger holds one."""
    return _registry().get(_key(conn_id, hook_params))


def _key(conn_id: str, hook_params: Mapping[str, Any]) -> str:
    return json.dumps([conn_id, dict(hook_params)], sort_keys=True, default=str)


async def open_poller(conn_id: str, hook_params: Mapping[str, Any], *, shared: bool = True) -> Poller:
    """What a trigger polls with: a membership of the loop's shared polls, or (``shared=False``) a
    hook of its own. Close it with ``aclose()`` on every exit."""
    if not shared:
        hook = ButlrAsyncHook(conn_id, **hook_params)
        await hook.__aenter__()
        return hook
    key = _key(conn_id, hook_params)
    registry = _registry()
    polls = registry.get(key)
    if polls is None or time.monotonic() - polls.created > RENEW_AFTER:  # its members keep the old one
        polls = registry[key] = SharedPolls(conn_id, hook_params, key)
    return await polls.join()
