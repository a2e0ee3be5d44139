"""Fault kinds of the EVSE: OCPP error code, LED pattern, recovery rule, and a latch.

One table (`FAULTS`) says, for each fault kind, which OCPP 1.6 ChargePointErrorCode the
StatusNotification carries, whether the connector reports Faulted, which LED pattern shows it and
how it recovers. `FaultLatch` is the pure logic: the app reports conditions with `set()` and
unplugs with `unplugged()`; `active(now_ms)` gives the fault that blocks charging, or None.
Every fault in the table blocks charging (relay open, PWM off). State is a few small lists,
sized once by the table.
"""

from micropython import const

# Recovery modes.
AUTO = const(0)  # clears once the condition has been off for hold_ms
UNPLUG = const(1)  # clears once the condition is off and the EV was unplugged after the fault
LATCH = const(2)  # never clears: needs a power cycle (a new FaultLatch); OCPP Reset does it

# kind: (ChargePointErrorCode, vendorErrorCode, Faulted?, LED pattern, mode, hold_ms, max_count)
# Order = priority: active() reports the first active kind. max_count > 0: the (max_count+1)-th
# occurrence since power-up latches the kind until a power cycle.
FAULTS = {
    # Relay contacts welded (AC present with the relay open): a switch failure, always a hard
    # fault (UL, OpenEVSE STUCK_RELAY); the EV cannot be disconnected from the mains.
    "weld": ("PowerSwitchFailure", "RelayWelded", True, "fault_hard", LATCH, 0, 0),
    # The residual-current monitor failed its self-test: no ground-fault trip happened, the
    # protective device itself is broken -> InternalError (an internal hardware component), not
    # GroundFailure. Only a reboot (with its power-on self-test) can show it works again.
    "rcd_selftest": ("InternalError", "RcdSelfTest", True, "fault_hard", LATCH, 0, 0),
    # Residual current tripped: "ground fault circuit interrupter has been activated" is
    # GroundFailure verbatim. No automatic re-close onto a possible fault through a person: the
    # user must unplug; the 4th trip since power-up latches (OpenEVSE latches after 6 retries).
    "rcd": ("GroundFailure", "ResidualCurrent", True, "fault_ground", UNPLUG, 0, 3),
    # Temperature cut-off (limiter: >= 71 C, clears at <= 68 C): HighTemperature. Auto-clears
    # one minute after the temperature is back, so it cannot chatter around the threshold.
    "overtemp": ("HighTemperature", "OverTemperature", True, "fault_temp", AUTO, 60000, 0),
    # Pilot shorted / state E: a Mode 3 signalling failure -> EVCommunicationError; OCPP 1.6 says
    # this need not be Faulted (SuspendedEVSE). Auto-clear after 60 s (esp32-evse).
    "pilot_short": ("EVCommunicationError", "PilotShort", False, "fault_ev", AUTO, 60000, 0),
    # Diode check failed with PWM on (IEC 61851-1 / J1772): the EV or cable is at fault, Mode 3
    # signalling again -> EVCommunicationError. Re-checked on the next plug-in.
    "diode": ("EVCommunicationError", "DiodeCheck", False, "fault_ev", UNPLUG, 0, 0),
    # Proximity resistor missing or out of band: the cable coding is part of Mode 3 (IEC 61851-1
    # annex B) and the cable, not the charge point, is at fault -> EVCommunicationError with a
    # vendor code. A new cable means a new plug-in.
    "pp_invalid": ("EVCommunicationError", "ProximityInvalid", False, "fault_cable", UNPLUG, 0, 0),
    # EV asks for ventilation (state D) and the site has none: nothing failed, the EV cannot be
    # served -> OtherError with a vendor code, not Faulted. Clears when the pilot leaves D.
    "ventilation": ("OtherError", "VentilationRequired", False, "fault_ev", AUTO, 0, 0),
    # Energy meter not answering: PowerMeterFailure verbatim. Blocks charging because billing and
    # over-current supervision depend on it; clears 10 s after the meter answers again.
    "meter_lost": ("PowerMeterFailure", "MeterLost", True, "fault_meter", AUTO, 10000, 0),
}
KINDS = ("weld", "rcd_selftest", "rcd", "overtemp", "pilot_short", "diode", "pp_invalid",
         "ventilation", "meter_lost")
_N = const(9)


def _index(kind):
    _info(kind)
    return KINDS.index(kind)


def _info(kind):
    row = FAULTS.get(kind) if isinstance(kind, str) else None
    if row is None:
        raise ValueError("unknown fault kind: {}".format(kind))
    return row


def error_code(kind):
    """OCPP 1.6 ChargePointErrorCode for `kind` ('NoError' for None). Raises ValueError."""
    return "NoError" if kind is None else _info(kind)[0]


def vendor_error_code(kind):
    """vendorErrorCode (CiString50) for the StatusNotification; None for None."""
    return None if kind is None else _info(kind)[1]


def reports_faulted(kind):
    """True when the connector status should be Faulted (else SuspendedEVSE / as it is)."""
    return kind is not None and _info(kind)[2]


def led_pattern(kind):
    """LED pattern name for `kind`; the LED module maps names to blink patterns."""
    return None if kind is None else _info(kind)[3]


class FaultLatch:
    """Latches fault conditions and applies the recovery rules of `FAULTS`.

    A condition going on raises its fault at once. A raised fault stays raised until its
    recovery rule is met, even if the condition disappears sooner. Methods take `now_ms`
    (non-wrapping monotonic ms).
    """

    def __init__(self):
        self._cond = [False] * _N  # condition as last reported
        self._raised = [False] * _N  # fault blocks charging
        self._hard = [False] * _N  # latched until power cycle (LATCH mode or max_count)
        self._off_ms = [0] * _N  # when the condition last went off
        self._unplug = [False] * _N  # EV unplugged since the fault was raised
        self._count = [0] * _N  # times raised since power-up

    def set(self, kind, on, now_ms):
        """Report the condition of `kind` (on = present). Unknown kind -> ValueError."""
        row = _info(kind)
        i = _index(kind)
        if on:
            if not self._cond[i]:
                # Rising edge: an unplug counts only if it comes after the condition was last on.
                self._cond[i] = True
                self._unplug[i] = False
            if not self._raised[i]:
                self._raised[i] = True
                self._count[i] += 1
                if row[4] == LATCH or (row[6] and self._count[i] > row[6]):
                    self._hard[i] = True
        elif self._cond[i]:
            self._cond[i] = False
            self._off_ms[i] = now_ms

    def unplugged(self, now_ms):
        """The EV was unplugged (pilot A): UNPLUG faults may clear once their condition is off."""
        for i in range(_N):
            if self._raised[i]:
                self._unplug[i] = True

    def _clears(self, i, now_ms):
        if self._cond[i] or self._hard[i]:
            return False
        row = FAULTS[KINDS[i]]
        if row[4] == UNPLUG and not self._unplug[i]:
            return False
        return now_ms - self._off_ms[i] >= row[5]

    def is_active(self, kind, now_ms):
        """True while `kind` is raised (applies its recovery rule first)."""
        i = _index(kind)
        if self._raised[i] and self._clears(i, now_ms):
            self._raised[i] = False
        return self._raised[i]

    def active(self, now_ms):
        """The highest-priority raised fault kind, or None. Clears recovered faults first."""
        found = None
        for i in range(_N):
            if self._raised[i]:
                if self._clears(i, now_ms):
                    self._raised[i] = False
                elif found is None:
                    found = KINDS[i]
        return found

    def latched(self, kind):
        """True when `kind` now needs a power cycle to clear."""
        return self._hard[_index(kind)]

    def count(self, kind):
        """How often `kind` was raised since power-up."""
        return self._count[_index(kind)]
