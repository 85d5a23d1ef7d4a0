"""One local day of one asset's minute values, generated fast and cached (used by ``timeseries/series.py``).

Speed matters (a 30-day export over 200 rooms is 6,000 asset-days), so the per-minute work runs in C:
each day is a ``bytes`` object (one value 0..255 per minute) built from seeded random bytes with
``bytes.translate`` lookup tables and lane-wise big-integer arithmetic. Sums of several series widen to
32-bit lanes. All functions are pure: the same arguments always give the same bytes.

Presence model: ``index = log_activity + block_noise + jitter`` per minute, where ``log_activity`` is the
diurnal/weekday profile of the site's local clock in log steps, ``block_noise`` is constant over 10
minutes (meetings come and go) and ``jitter`` varies per minute; a per-(capacity, popularity) table maps
the index to a head count ``round(capacity * popularity * activity * noise)``, capped at 1.2 x capacity.
"""

from __future__ import annotations

import hashlib
import math
import random
import sys
from array import array
from collections.abc import Sequence
from datetime import date
from functools import lru_cache

from airflow_provider_butlr.testing.timeseries.timeutils import MINUTE, local_day_bounds, offset_segments

MINUTES_PER_DAY = 1440
DAY_CACHE_SIZE = 16384
_LOG_STEP = 0.03  # natural-log units per index step
_ACTIVITY_TOP = 200  # index of activity 1.0 (the weekday peak)
_NOISE_CENTRE = 16  # block noise 0..24 plus jitter 0..8 average 16: factor 1.0 there
_NOISE_BLOCK = 10  # minutes
_WEEKDAY_SCALE = (0.95, 1.0, 1.0, 0.95, 0.75, 0.12, 0.06)  # Monday .. Sunday
_POPULARITY_LEVELS = 40  # popularity 0.35..0.95 of capacity, in 40 steps (shared lookup tables)
_PASS_THRESHOLD = 239  # log_activity + U(0..55) above this: one pass-through (in and out) that minute


def _table(values: Sequence[int]) -> bytes:
    """A 256-entry ``bytes.translate`` table."""
    return bytes(max(0, min(255, v)) for v in values)


_BLOCK_NOISE = _table([b * 25 // 256 for b in range(256)])  # 0..24
_JITTER = _table([b * 9 // 256 for b in range(256)])  # 0..8
_PASS_DRAW = _table([b * 56 // 256 for b in range(256)])  # 0..55
_PASS = _table([1 if k > _PASS_THRESHOLD else 0 for k in range(256)])
_SECS_JITTER = _table([b * 13 // 256 for b in range(256)])  # 0..12
_SECS_BASE = _table([0 if o == 0 else min(48, 24 + 12 * o) for o in range(256)])
_NONZERO_MASK = _table([0 if o == 0 else 255 for o in range(256)])
_ONE_MASK = _table([255 if h == 1 else 0 for h in range(256)])
_ZERO_MASK = _table([255 if h == 0 else 0 for h in range(256)])
_NEGATE = _table([(256 - x) & 0xFF for x in range(256)])


def _bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-0.5 * ((hour - centre) / width) ** 2)


def _activity(minute_of_day: int) -> float:
    """Weekday activity share (0.004..1) at a local minute of day: late-morning and afternoon peaks."""
    hour = minute_of_day / 60
    return max(_bump(hour, 10.5, 1.6) + 0.9 * _bump(hour, 14.75, 1.8) - 0.3 * _bump(hour, 12.5, 0.5), 0.0)


_PEAK = max(_activity(m) for m in range(MINUTES_PER_DAY))
# Activity share per weekday (Monday = 0) and local minute of day; the ground truth of the daily pattern.
PROFILES: tuple[tuple[float, ...], ...] = tuple(
    tuple(k * (0.004 + 0.996 * _activity(m) / _PEAK) for m in range(MINUTES_PER_DAY)) for k in _WEEKDAY_SCALE
)
_LOG_PROFILES: tuple[bytes, ...] = tuple(
    _table([round(_ACTIVITY_TOP + math.log(a) / _LOG_STEP) for a in profile]) for profile in PROFILES
)


def mix(*parts: object) -> int:
    """A stable 64-bit seed from the parts (independent of PYTHONHASHSEED)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


# --- lane-wise helpers ------------------------------------------------------------------------------------
def add_bytes(a: bytes, b: bytes) -> bytes:
    """Lane-wise ``a + b`` for equal-length bytes (the caller guarantees no lane exceeds 255)."""
    return (int.from_bytes(a, "little") + int.from_bytes(b, "little")).to_bytes(len(a), "little")


def and_bytes(a: bytes, b: bytes) -> bytes:
    """Lane-wise ``a & b``."""
    return (int.from_bytes(a, "little") & int.from_bytes(b, "little")).to_bytes(len(a), "little")


def expand_blocks(blocks: bytes, width: int, count: int) -> bytes:
    """Each byte of ``blocks`` repeated ``width`` times, cut to ``count`` bytes."""
    out = bytearray(count)
    for lane in range(min(width, count)):
        out[lane::width] = blocks[: len(range(lane, count, width))]
    return bytes(out)


def widen(values: bytes) -> array:
    """Bytes as a 32-bit ``array('i')`` (same values)."""
    wide = bytearray(4 * len(values))
    wide[0 if sys.byteorder == "little" else 3 :: 4] = values
    out = array("i")
    out.frombytes(bytes(wide))
    return out


def sum_arrays(parts: Sequence[array], count: int) -> array:
    """Lane-wise sum of non-negative ``array('i')`` values of length ``count`` (one big-int addition)."""
    total = sum(int.from_bytes(p.tobytes(), sys.byteorder) for p in parts)
    out = array("i")
    out.frombytes(total.to_bytes(4 * count, sys.byteorder))
    return out


# --- local days ----------------------------------------------------------------------------------------
@lru_cache(maxsize=DAY_CACHE_SIZE)
def day_layout(tz_name: str, ordinal: int) -> tuple[int, array]:
    """First UTC minute of local day ``ordinal`` and the local minute-of-day of each of its minutes.

    A DST day has 1380 or 1500 minutes; the repeated hour maps to the same minutes of day twice.
    """
    start, stop = local_day_bounds(tz_name, ordinal)
    walls = array("H")
    for seg_start, seg_stop, offset in offset_segments(tz_name, start, stop):
        shift = offset // MINUTE
        walls.extend((m + shift) % MINUTES_PER_DAY for m in range(seg_start // MINUTE, seg_stop // MINUTE))
    return start // MINUTE, walls


@lru_cache(maxsize=DAY_CACHE_SIZE)
def day_log_activity(tz_name: str, ordinal: int) -> bytes:
    """The log-scaled activity index (0..200) of each minute of a local day."""
    _, walls = day_layout(tz_name, ordinal)
    return bytes(map(_LOG_PROFILES[date.fromordinal(ordinal).weekday()].__getitem__, walls))


@lru_cache(maxsize=4096)
def _level_table(capacity: int, popularity_level: int) -> bytes:
    scale = capacity * (0.35 + 0.6 * popularity_level / _POPULARITY_LEVELS)
    ceiling = math.ceil(capacity * 1.2)
    return _table(
        [
            min(ceiling, math.floor(0.5 + scale * math.exp((k - _ACTIVITY_TOP - _NOISE_CENTRE) * _LOG_STEP)))
            for k in range(256)
        ]
    )


@lru_cache(maxsize=DAY_CACHE_SIZE)
def presence_day(seed: int, asset_id: str, capacity: int, tz_name: str, ordinal: int) -> bytes:
    """Presence occupancy (head count) of one asset for each minute of one local day."""
    log_activity = day_log_activity(tz_name, ordinal)
    count = len(log_activity)
    rng = random.Random(mix(seed, asset_id, ordinal))
    blocks = expand_blocks(
        rng.randbytes(count // _NOISE_BLOCK + 1).translate(_BLOCK_NOISE), _NOISE_BLOCK, count
    )
    jitter = rng.randbytes(count).translate(_JITTER)
    index = add_bytes(add_bytes(log_activity, blocks), jitter)
    return index.translate(_level_table(capacity, mix(seed, asset_id, "popularity") % _POPULARITY_LEVELS))


@lru_cache(maxsize=DAY_CACHE_SIZE)
def presence_secs_day(seed: int, asset_id: str, capacity: int, tz_name: str, ordinal: int) -> bytes:
    """Seconds of detected presence per minute: 0 when empty, else 24..60 growing with occupancy."""
    occupancy = presence_day(seed, asset_id, capacity, tz_name, ordinal)
    jitter = (
        random.Random(mix(seed, asset_id, ordinal, "secs")).randbytes(len(occupancy)).translate(_SECS_JITTER)
    )
    return add_bytes(occupancy.translate(_SECS_BASE), and_bytes(jitter, occupancy.translate(_NONZERO_MASK)))


@lru_cache(maxsize=DAY_CACHE_SIZE)
def traffic_day(seed: int, sensor_id: str, capacity: int, tz_name: str, ordinal: int) -> tuple[bytes, bytes]:
    """``(in, out)`` counts per minute of one local day for one traffic sensor.

    ``in - out`` is the minute-to-minute change of the sensor's own occupancy curve (which starts from 0
    at local midnight), so the running sum of ``in - out`` is that curve; pass-throughs add 1 to both.
    """
    target = presence_day(seed, sensor_id, capacity, tz_name, ordinal)
    count = len(target)
    # 16-bit big-endian lanes: (256 + target[i]) - target[i-1] never borrows across lanes.
    now_lanes, prev_lanes = bytearray(b"\x01" * (2 * count)), bytearray(2 * count)
    now_lanes[1::2] = target
    prev_lanes[3::2] = target[:-1]
    diff = (int.from_bytes(now_lanes, "big") - int.from_bytes(prev_lanes, "big")).to_bytes(2 * count, "big")
    high, low = diff[0::2], diff[1::2]  # high 1: delta = low >= 0; high 0: delta = low - 256 < 0
    draws = random.Random(mix(seed, sensor_id, ordinal, "traffic")).randbytes(count).translate(_PASS_DRAW)
    passes = add_bytes(day_log_activity(tz_name, ordinal), draws).translate(_PASS)
    ins = add_bytes(and_bytes(low, high.translate(_ONE_MASK)), passes)
    outs = add_bytes(and_bytes(low.translate(_NEGATE), high.translate(_ZERO_MASK)), passes)
    return ins, outs


@lru_cache(maxsize=DAY_CACHE_SIZE)
def traffic_occupancy_day(
    seed: int, sensors: tuple[tuple[str, int], ...], tz_name: str, ordinal: int
) -> array:
    """``max(0, running + in - out)`` over ``sensors`` ((id, capacity) pairs), restarting at local midnight.

    Each sensor's running ``in - out`` is its occupancy curve (>= 0, see :func:`traffic_day`), so the
    clamped running sum equals the sum of those curves; computed that way, in C.
    """
    curves = [
        widen(presence_day(seed, sensor_id, capacity, tz_name, ordinal)) for sensor_id, capacity in sensors
    ]
    return curves[0] if len(curves) == 1 else sum_arrays(curves, len(curves[0]))
