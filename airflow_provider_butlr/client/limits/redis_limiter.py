"""The rate limit of every host: the rolling window of ``window.py`` as Redis server-side scripts.

One script books a slot atomically on the server's clock (``TIME``: the hosts' clocks never
matter); the caller then sleeps until its slot. A sorted set holds the last ``per_minute`` slots
(member: a random slot id, score: its counted time), a string the ``Retry-After`` hold. Keys expire
a minute after their last slot, so an idle deployment leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from airflow_provider_butlr.client.limits.base import BookingLimiter, SharedLimiter, Unreachable
from airflow_provider_butlr.client.limits.redis_backend import (
    RedisConfig,
    async_client,
    redis_module,
    shared_key,
    sync_client,
)
from airflow_provider_butlr.client.limits.window import WINDOW_SECONDS, hold_seconds

# KEYS: slots (zset), hold (string). ARGV: slot id, per_minute, window seconds.
# Returns {slot time, server time} as strings (a Lua number would reach the client truncated).
BOOK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local per = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local at = now
local hold = tonumber(redis.call('GET', KEYS[2]) or '0')
if hold > at then at = hold end
local n = redis.call('ZCARD', KEYS[1])
if n >= per then
  local kth = redis.call('ZRANGE', KEYS[1], n - per, n - per, 'WITHSCORES')
  local free = tonumber(kth[2]) + window
  if free > at then at = free end
end
if n > 0 then
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  local latest = tonumber(last[2])
  if latest > at then at = latest end
end
redis.call('ZADD', KEYS[1], string.format('%.6f', at), ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(per + 1))
redis.call('PEXPIRE', KEYS[1], math.ceil((at - now + window + 60) * 1000))
return {string.format('%.6f', at), string.format('%.6f', now)}
"""

# KEYS: slots. ARGV: slot id. The slot counts from its answer on (never earlier than booked).
ANSWERED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if at and tonumber(at) < now then
  redis.call('ZADD', KEYS[1], 'XX', string.format('%.6f', now), ARGV[1])
end
return 1
"""

# KEYS: hold. ARGV: seconds. No slot starts before now + seconds (the longest hold wins).
HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_at = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_at > current then
  redis.call('SET', KEYS[1], string.format('%.6f', until_at), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""


OUTAGE_RETRY_SECONDS = 10.0  # a Redis outage this short (a restart) is waited out


class RedisLimiter(SharedLimiter):
    """At most ``per_minute`` requests of these credentials per rolling minute on every host.

    A Redis outage of up to ``OUTAGE_RETRY_SECONDS`` (a restart) is waited out; a longer one lets
    the host's limit (``fallback``) stand in, with one WARNING, and Redis is asked again 30 s later.
    """

    scope = "redis"

    def __init__(self, config: RedisConfig, name: str, per_minute: int, fallback: BookingLimiter) -> None:
        super().__init__()
        self.config = config
        self.per_minute = per_minute
        self.fallback = fallback
        self._sleep = fallback._sleep
        self._slots_key = shared_key(name, "rate")
        self._hold_key = shared_key(name, "hold")
        self._scripts: dict[str, Any] = {}
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
            weakref.WeakKeyDictionary()
        )

    def _describe_outage(self, err: BaseException) -> str:
        return f"Redis of connection {self.config.conn_id}: {type(err).__name__}"

    def _call(self, source: str, slot: int | None, seconds: float | None) -> tuple[list[str], list[Any]]:
        if source is BOOK:
            return [self._slots_key, self._hold_key], [slot, self.per_minute, WINDOW_SECONDS]
        if source is ANSWERED:
            return [self._slots_key], [slot]
        return [self._hold_key], [f"{seconds:.3f}"]

    # -- sync ------------------------------------------------------------------------------------

    def _run(self, source: str, slot: int | None = None, seconds: float | None = None) -> Any:
        errors = redis_module().exceptions
        keys, args = self._call(source, slot, seconds)
        deadline, pause = time.monotonic() + OUTAGE_RETRY_SECONDS, 0.1
        while True:
            try:
                script = self._scripts.get(source)
                if script is None:
                    script = self._scripts[source] = sync_client(self.config).register_script(source)
                return script(keys=keys, args=args)
            except (errors.ConnectionError, errors.TimeoutError) as err:
                if time.monotonic() + pause > deadline:
                    raise Unreachable(str(type(err).__name__)) from err
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
            except errors.RedisError as err:  # refused (auth, a read-only replica): not waited out
                raise Unreachable(str(type(err).__name__)) from err

    def _book(self, slot: int) -> float:
        at, now = (float(value) for value in self._run(BOOK, slot))
        return at - now

    def _answered(self, slot: int) -> None:
        self._run(ANSWERED, slot)

    def _hold(self, seconds: float) -> None:
        bounded = hold_seconds(seconds)
        if bounded is not None:
            self._run(HOLD, seconds=bounded)

    # -- async (the triggerer): a client per event loop -------------------------------------------

    async def _arun(self, source: str, slot: int | None = None, seconds: float | None = None) -> Any:
        errors = redis_module().exceptions
        scripts = self._loops.setdefault(asyncio.get_running_loop(), {})
        keys, args = self._call(source, slot, seconds)
        deadline, pause = time.monotonic() + OUTAGE_RETRY_SECONDS, 0.1
        while True:
            try:
                script = scripts.get(source)
                if script is None:
                    client = scripts.setdefault("client", async_client(self.config))
                    script = scripts[source] = client.register_script(source)
                return await script(keys=keys, args=args)
            except (errors.ConnectionError, errors.TimeoutError) as err:
                if time.monotonic() + pause > deadline:
                    raise Unreachable(str(type(err).__name__)) from err
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)
            except errors.RedisError as err:
                raise Unreachable(str(type(err).__name__)) from err

    async def _abook(self, slot: int) -> float:
        at, now = (float(value) for value in await self._arun(BOOK, slot))
        return at - now

    async def _aanswered(self, slot: int) -> None:
        await self._arun(ANSWERED, slot)

    async def _ahold(self, seconds: float) -> None:
        bounded = hold_seconds(seconds)
        if bounded is not None:
            await self._arun(HOLD, seconds=bounded)
