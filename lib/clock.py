"""One clock for the whole firmware: monotonic milliseconds plus the wall time learned from the CSMS.

Everything that needs time asks this object, so tests can drive it (`ManualClock`) and never sleep.
`now_ms()` never wraps (the ticks counter does; we extend it). Wall time is unknown until
BootNotification or Heartbeat gives `currentTime` (or the board's RTC is known good); events that
happen before that keep their monotonic stamp and are converted once the offset is known, so no
message ever carries a 1970 date (matth-x/MicroOcpp#311).
"""

import time


class Clock:
    def __init__(self, ticks_ms=None, ticks_diff=None):
        self._ticks_ms = ticks_ms or time.ticks_ms
        self._ticks_diff = ticks_diff or time.ticks_diff
        self._last = self._ticks_ms()
        self._mono = 0
        self._offset_ms = None  # wall unix ms minus mono ms, once known

    def now_ms(self):
        """Monotonic milliseconds since boot, never wrapping."""
        t = self._ticks_ms()
        self._mono += self._ticks_diff(t, self._last)
        self._last = t
        return self._mono

    @property
    def wall_known(self):
        return self._offset_ms is not None

    def set_unix(self, unix_s):
        """Learn the wall time (seconds since 1970, UTC) from the CSMS."""
        self._offset_ms = int(unix_s * 1000) - self.now_ms()

    def set_unix_ms(self, unix_ms):
        """Learn the wall time in milliseconds (keeps the CSMS's sub-second part)."""
        self._offset_ms = unix_ms - self.now_ms()

    def unix(self, mono_ms=None):
        """Unix seconds (int) for `mono_ms` (default now), or None while the wall time is unknown.

        Integer arithmetic on purpose: a float has 24 bits on the ESP32 and would move in
        128 s steps at today's dates.
        """
        if self._offset_ms is None:
            return None
        if mono_ms is None:
            mono_ms = self.now_ms()
        return (self._offset_ms + mono_ms) // 1000

    def unix_ms(self, mono_ms=None):
        """Unix milliseconds (int) for `mono_ms` (default now), or None while unknown.

        Integer arithmetic: exact on single-precision ports, where unix() as a float has steps
        of 128 s (smart-charging period boundaries need the exact second).
        """
        if self._offset_ms is None:
            return None
        if mono_ms is None:
            mono_ms = self.now_ms()
        return self._offset_ms + mono_ms

    def timestamp(self, mono_ms=None):
        """RFC 3339 UTC timestamp for `mono_ms` (default now), or None while unknown."""
        u = self.unix(mono_ms)
        if u is None:
            return None
        from ocpp16.timefmt import format_rfc3339

        return format_rfc3339(u)


class ManualClock(Clock):
    """A clock tests move by hand (`advance`)."""

    def __init__(self, start_ms=0):
        self._t = start_ms
        Clock.__init__(self, ticks_ms=lambda: self._t, ticks_diff=lambda a, b: a - b)

    def advance(self, ms):
        self._t += ms
