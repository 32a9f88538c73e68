"""A requests-per-minute limit shared by every worker: GCRA (generic cell rate algorithm) on one Redis key per judge.

Each request reserves the next slot ``60 / rpm`` seconds after the previous one, using Redis' clock, so workers on
different hosts agree. ``acquire`` blocks (sleeps) until its slot. Without Redis (the embedded default of
``make run``: one worker on one machine) the same algorithm runs in process memory.
"""

from __future__ import annotations

import threading
import time
from functools import lru_cache

from django.conf import settings

# Returns how many microseconds the caller must wait for the slot it has just reserved (0: go now).
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.ceil((tat + interval - now) / 1000) + 1000)
return tat - now
"""


def _redis_url() -> str | None:
    url = getattr(settings, "JUDGE_RATE_LIMIT_REDIS_URL", "") or settings.CELERY_BROKER_URL
    return url if url.startswith(("redis://", "rediss://")) else None


@lru_cache(maxsize=4)
def _script(url: str):
    import redis

    return redis.Redis.from_url(url).register_script(_GCRA)


_local_lock = threading.Lock()
_local_tat: dict[str, float] = {}


def _reserve_local(key: str, interval: float) -> float:
    with _local_lock:
        now = time.monotonic()
        tat = max(_local_tat.get(key, now), now)
        _local_tat[key] = tat + interval
        return tat - now


def acquire(key: str, requests_per_minute: int) -> float:
    """Wait for this request's slot under the limit; returns the seconds waited."""
    interval = 60.0 / max(requests_per_minute, 1)
    url = _redis_url()
    if url is None:
        wait = _reserve_local(key, interval)
    else:
        wait = _script(url)(keys=[f"arbiter:judge-rpm:{key}"], args=[int(interval * 1_000_000)]) / 1_000_000
    if wait > 0:
        time.sleep(wait)
    return max(wait, 0.0)
