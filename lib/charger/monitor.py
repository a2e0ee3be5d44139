"""Bench instruments: the worst asyncio loop stall and the heap peak, off unless asked for.

`LoopMonitor` is a task that asks for a 1 ms sleep over and over and records how late each wake-up
is (the loop stall: whatever ran in between without yielding). It keeps the worst lateness since
boot and the worst of each second of uptime in a ring of `_SECONDS` entries, so a benchmark can
pick the window it caused; it also samples `gc.mem_alloc()` at every tick for the heap peak.
Started only when the board asks for it (`board.bench["monitor"]`, from `tools/sim.py --bench
monitor`): the wake-ups cost CPU and would hide a real board's idle behaviour. Allocates nothing
per tick (small ints only); the ring is preallocated.
"""

import asyncio
import gc
import time
from micropython import const

_PERIOD_MS = const(1)
_SECONDS = const(64)  # per-second maxima kept: the last minute of uptime, about


class LoopMonitor:
    def __init__(self, clock):
        self.clock = clock
        self.stall_max_us = 0
        self.heap_peak = 0
        self._sec = [-1] * _SECONDS  # uptime second held by each ring slot
        self._worst = [0] * _SECONDS  # worst lateness in that second, us

    async def run(self):
        """The monitor task (loop context); runs until cancelled."""
        ticks_us = time.ticks_us
        ticks_diff = time.ticks_diff
        period_us = _PERIOD_MS * 1000
        last = ticks_us()
        while True:
            await asyncio.sleep_ms(_PERIOD_MS)
            now = ticks_us()
            late = ticks_diff(now, last) - period_us
            last = now
            used = gc.mem_alloc()
            if used > self.heap_peak:
                self.heap_peak = used
            if late <= 0:
                continue
            if late > self.stall_max_us:
                self.stall_max_us = late
            sec = self.clock.now_ms() // 1000
            i = sec % _SECONDS
            if self._sec[i] != sec:
                self._sec[i] = sec
                self._worst[i] = late
            elif late > self._worst[i]:
                self._worst[i] = late

    def by_second(self):
        """[[uptime second, worst lateness ms], ...] oldest first, seconds with a late wake-up."""
        out = []
        for i in range(_SECONDS):
            if self._sec[i] >= 0:
                out.append([self._sec[i], self._worst[i] / 1000])
        out.sort(key=lambda e: e[0])
        return out
