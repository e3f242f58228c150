"""The harness's own running time: what its timeouts are measured on.

A harness stopped by SIGSTOP or Ctrl-Z (or a host that was suspended) leaves its guest
running; on the wall clock, the guest then looks silent or late for as long as the
harness was stopped. RunningClock counts the monotonic clock's time between two ticks
of a loop that ticks often, but not a gap much longer than the loop's own pace: that
gap is a stop, and the harness's timeouts do not count it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

STOP_GAP = 10.0
"""Seconds between two ticks that mean the process was stopped (a loop that ticks each
second, on a host loaded enough to delay it a few seconds, stays well below)."""


class RunningClock:
    def __init__(self, max_gap: float = STOP_GAP,
                 now: Callable[[], float] | None = None) -> None:
        self.max_gap = max_gap
        self._now = now or (lambda: time.monotonic())  # looked up at each tick
        self._last = self._now()
        self.elapsed = 0.0  # seconds counted
        self.stopped = 0.0  # seconds in gaps longer than max_gap: not counted

    def tick(self) -> float:
        """The seconds counted so far, this tick's included."""
        now = self._now()
        gap, self._last = now - self._last, now
        if gap > self.max_gap:
            self.stopped += gap
        else:
            self.elapsed += max(0.0, gap)
        return self.elapsed
