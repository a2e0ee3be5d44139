"""S0 pulse meter (IEC 62053-31): energy from a pulse count, power from the pulse interval.

A hard pin IRQ counts pulses and keeps the last interval (ints only: no allocation in the IRQ);
edges closer than `min_gap_ms` to the previous pulse are bounce and ignored (an S0 pulse is at
least 30 ms long). Power = 3.6e9 / (pulses_per_kwh * interval_ms) W; when no pulse has come for
longer than the last interval, the elapsed time bounds the power instead, so it falls towards 0
when the load stops, and after `idle_ms` without a pulse it is 0. Current and voltage are
derived from the nominal voltage (the S0 output carries only energy). The count is not
persistent: energy restarts at 0 after a reboot, and an S0 meter cannot tell that it is lost.
"""

from micropython import const
import time

_MIN_GAP_MS = const(20)
_IDLE_MS = const(600000)  # 10 min without a pulse: 0 W (6 W at 1000 imp/kWh)


class S0Meter:
    def __init__(self, pin, pulses_per_kwh=1000, phases=1, voltage=230.0, active_low=True,
                 min_gap_ms=_MIN_GAP_MS, ticks_ms=None, ticks_diff=None):
        if pulses_per_kwh <= 0:
            raise ValueError("pulses_per_kwh must be > 0")
        self.pin = pin
        self.pulses_per_kwh = pulses_per_kwh
        self.phases = phases
        self.voltage = voltage
        self.active_low = active_low
        self.min_gap_ms = min_gap_ms
        self.lost = False  # S0 has no link to lose
        self.count = 0
        self._last = None
        self._interval = 0
        self._ticks_ms = ticks_ms or time.ticks_ms
        self._ticks_diff = ticks_diff or time.ticks_diff
        self.reading = {
            "energy_wh": 0.0,
            "power_w": 0.0,
            "current_a": [0.0] * phases,
            "voltage_v": [voltage] * phases,
        }

    def arm(self):
        p = self.pin
        trig = p.IRQ_FALLING if self.active_low else p.IRQ_RISING
        try:
            p.irq(handler=self._irq, trigger=trig, hard=True)
        except TypeError:
            p.irq(handler=self._irq, trigger=trig)

    def _irq(self, pin):
        now = self._ticks_ms()
        last = self._last
        if last is not None:
            gap = self._ticks_diff(now, last)
            if gap < self.min_gap_ms:
                return
            self._interval = gap
        self._last = now
        self.count += 1

    def power_w(self):
        last = self._last
        if last is None or self._interval <= 0:
            return 0.0
        since = self._ticks_diff(self._ticks_ms(), last)
        if since >= _IDLE_MS:
            return 0.0
        span = self._interval if since <= self._interval else since
        return 3.6e9 / (self.pulses_per_kwh * span)

    def read(self):
        """The reading dict (updated in place, the same object every call)."""
        r = self.reading
        r["energy_wh"] = self.count * 1000.0 / self.pulses_per_kwh
        p = self.power_w()
        r["power_w"] = p
        amps = p / (self.voltage * self.phases)
        cur = r["current_a"]
        for i in range(self.phases):
            cur[i] = amps
        return r
