"""Residual-current monitor (6 mA DC RCM module): trip input, interrupt and self-test pin.

The trip input gets a pin IRQ (`arm()`): the handler drives every relay pin to its OPEN level
itself (a `pin.value()` per relay, no allocation, so it may run as a hard IRQ) and latches the
trip, so a residual-current trip opens the contactor even when the asyncio loop is stuck (evse.md
section 6, OpenEVSE opens from the interrupt path too). Ports with hard pin IRQs get one; the
ESP32 port has none (ports/esp32/machine_pin.c hands every pin handler to mp_sched_schedule), so
there the handler runs at the next bytecode boundary: independent of the asyncio loop, but late
while the VM sits in a long C call (TLS handshake, DNS). Wire the RCM's trip contact into the
contactor coil circuit as well where the hardware allows. `tripped()` reads the level,
`take_latch()` reports a trip seen since the last call (a short pulse is never lost between two
control steps).

Self-test (esp32-evse style, evse.md section 6): drive the test pin active and expect the trip
input within `trip_ms`; release it and expect the input to clear within `clear_ms`. It blocks
the caller for the trip time (typically tens of ms, at most trip_ms + clear_ms) because the
charger calls it synchronously; the watchdog timeout must be longer. A module with a test
winding that needs a mains-frequency waveform (OpenEVSE's AC CT) is not supported.
"""

from micropython import const
import time

_POLL_MS = const(1)


class RCD:
    def __init__(self, fault_pin, fault_active_high=True, test_pin=None, test_active_high=True,
                 trip_ms=500, clear_ms=1000, ticks_ms=None, ticks_diff=None, sleep_ms=None):
        self.fault_pin = fault_pin
        self.fault_level = 1 if fault_active_high else 0
        self.test_pin = test_pin
        self.test_on = 1 if test_active_high else 0
        self.trip_ms = trip_ms
        self.clear_ms = clear_ms
        self.trips = 0  # IRQ count since boot
        self.latched = False
        self.last_selftest = None  # None (never), True, False
        self._relays = ()
        self._ticks_ms = ticks_ms or time.ticks_ms
        self._ticks_diff = ticks_diff or time.ticks_diff
        self._sleep_ms = sleep_ms or time.sleep_ms
        if test_pin is not None:
            test_pin.value(1 - self.test_on)

    @property
    def selftest_supported(self):
        return self.test_pin is not None

    def tripped(self):
        """True while the trip input is active."""
        return self.fault_pin.value() == self.fault_level

    def arm(self, relays):
        """Install the trip IRQ; `relays` (a tuple of drivers.relay.Relay) are opened from it."""
        self._relays = tuple(relays)
        p = self.fault_pin
        trig = p.IRQ_RISING if self.fault_level else p.IRQ_FALLING
        try:
            p.irq(handler=self._irq, trigger=trig, hard=True)
        except TypeError:  # a port without hard IRQs: still opens, from the scheduler
            p.irq(handler=self._irq, trigger=trig)

    def _irq(self, pin):
        # Hard-IRQ context: no allocation, no exceptions on purpose; open first, book-keep after.
        for r in self._relays:
            r.open()
        self.latched = True
        self.trips += 1

    def take_latch(self):
        """True if a trip was latched since the last call (clears the latch)."""
        was = self.latched
        self.latched = False
        return was

    def _wait(self, level, ms):
        t0 = self._ticks_ms()
        while self._ticks_diff(self._ticks_ms(), t0) < ms:
            if (self.fault_pin.value() == self.fault_level) == level:
                return True
            self._sleep_ms(_POLL_MS)
        return (self.fault_pin.value() == self.fault_level) == level

    def selftest(self):
        """Pulse the test pin; True if the RCD tripped in time and released again.

        False without a test pin, when the input was already tripped, when no trip came within
        trip_ms, or when the input stayed tripped clear_ms after the test pin was released.
        """
        ok = False
        if self.test_pin is not None and not self.tripped():
            self.test_pin.value(self.test_on)
            try:
                ok = self._wait(True, self.trip_ms)
            finally:
                self.test_pin.value(1 - self.test_on)
            if ok:
                ok = self._wait(False, self.clear_ms)
        self.latched = False  # the trip we caused is not a residual-current fault
        self.last_selftest = ok
        return ok
