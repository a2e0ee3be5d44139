"""Mains sense behind the relay (opto-coupler) and the welded-contact check built on it.

An opto-coupler on the load side pulses at the mains frequency (active in every half wave), so
`ACSense` counts an edge IRQ and calls AC "present" while the input is active or an edge came
within `window_ms` (several half waves). `WeldCheck` is pure logic: AC present while every relay
has been commanded open for longer than `settle_ms` (contacts released), continuously for more
than `hold_ms` (1 s, OpenEVSE STUCK_RELAY, evse.md section 6) = welded contacts.
"""

from micropython import const
import time

WELD_HOLD_MS = const(1000)
_SETTLE_MS = const(300)  # relay release + opto decay after an open command
_WINDOW_MS = const(100)  # five 50 Hz half waves


class ACSense:
    def __init__(self, pin, active_low=True, window_ms=_WINDOW_MS, ticks_ms=None,
                 ticks_diff=None):
        self.pin = pin
        self.active = 0 if active_low else 1
        self.window_ms = window_ms
        self._ticks_ms = ticks_ms or time.ticks_ms
        self._ticks_diff = ticks_diff or time.ticks_diff
        self._last = None  # ticks of the last edge
        self.edges = 0

    def arm(self):
        """Count edges in an IRQ (hard: it only stores an int)."""
        p = self.pin
        trig = p.IRQ_FALLING if self.active == 0 else p.IRQ_RISING
        try:
            p.irq(handler=self._irq, trigger=trig, hard=True)
        except TypeError:
            p.irq(handler=self._irq, trigger=trig)

    def _irq(self, pin):
        self._last = self._ticks_ms()
        self.edges += 1

    def present(self):
        """True if mains is seen behind the relay now."""
        if self.pin.value() == self.active:
            return True
        last = self._last
        return last is not None and self._ticks_diff(self._ticks_ms(), last) < self.window_ms


class WeldCheck:
    """Debounces "AC present with every relay open" into a weld flag (non-wrapping now_ms)."""

    def __init__(self, hold_ms=WELD_HOLD_MS, settle_ms=_SETTLE_MS):
        self.hold_ms = hold_ms
        self.settle_ms = settle_ms
        self._open_since = 0
        self._all_open = True
        self._ac_since = None

    def update(self, now_ms, ac_present, all_open):
        """Returns True once AC was present behind open relays for more than hold_ms.

        The hold time counts from the later of "AC first seen" and "relays open + settle_ms".
        """
        if all_open and not self._all_open:
            self._open_since = now_ms
        self._all_open = all_open
        if not ac_present:
            self._ac_since = None
            return False
        if self._ac_since is None:
            self._ac_since = now_ms
        if not all_open:
            return False
        start = self._open_since + self.settle_ms
        if self._ac_since > start:
            start = self._ac_since
        return now_ms - start > self.hold_ms
