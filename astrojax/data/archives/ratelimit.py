"""A thread-safe per-host rate limiter (a token bucket), shared by every client of that host."""

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """At most ``rate`` requests per second on average, with bursts of up to ``burst``.

    Implemented as a virtual schedule: each :meth:`acquire` books the next free slot under a
    lock and sleeps until it outside the lock, so concurrent callers are spaced, not serialised
    behind a sleeping thread. ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(self, rate: float, *, burst: int = 1,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if not rate > 0:
            raise ValueError(f"rate must be > 0 requests per second, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self._interval = 1.0 / self.rate
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate}, burst={self.burst})"

    def acquire(self) -> float:
        """Waits for a slot; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            slot = max(self._next, now - (self.burst - 1) * self._interval)
            self._next = slot + self._interval
            wait = slot - now
        if wait > 0:
            self._sleep(wait)
            return wait
        return 0.0


_shared: dict[tuple[str, float], RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(host: str, rate: float) -> RateLimiter:
    """The process-wide limiter for ``host`` at ``rate``: every client of that host shares it.

    NCBI's limit (3/s, 10/s with a key) is per user, not per client object, so two source modules
    talking to the same host must draw from one bucket.
    """
    with _shared_lock:
        key = (host.lower(), float(rate))
        if key not in _shared:
            _shared[key] = RateLimiter(rate)
        return _shared[key]
