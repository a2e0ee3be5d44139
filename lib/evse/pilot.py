"""Control pilot: classify sampled pilot voltages into IEC 61851 states and debounce them.

`classify()` maps the high-phase voltage to a state letter with the tolerance bands of
IEC 61851-1 table A.1 (evse.md section 1); `diode_ok()` is the separate diode check on the low
phase. `PilotFilter` debounces only the direction that can close the relay (towards C or D) and
lets every other change through at once (evse.md section 4). Pure logic: no pins, no time module;
voltages in volts (int or float), time as `now_ms`. No allocation per call.
"""

from micropython import const

# Band edges in volts, IEC 61851-1 table A.1 (as quoted by OpenEVSE J1772EvseController.cpp).
# A accepts up to 13 V: the +12 V generator itself has a tolerance, and nothing else reads high.
A_MAX_V = 13.0
A_MIN_V = 11.40
B_MAX_V = 9.56
B_MIN_V = 8.36
C_MAX_V = 6.49
C_MIN_V = 5.48
D_MAX_V = 3.25
D_MIN_V = 2.62
F_MAX_V = -11.40
F_MIN_V = -13.0
# With PWM on, high and low phases must differ by at least this much; a pilot that does not swing
# (generator stuck, pilot shorted, sampler broken) is state E. A healthy pilot swings >= 14 V; even
# a missing diode in D still swings about 5 V, so 2 V separates "stuck" from every real state.
MIN_SWING_V = 2.0

# Time a reading towards C or D must stay stable before the filter reports it (OpenEVSE 250 ms;
# SmartEVSE 500 ms). Well inside the 3 s close deadline of IEC 61851-1 table A.6 seq. 4.
PILOT_DEBOUNCE_MS = const(250)

STATES = ("A", "B", "C", "D", "E", "F")
# States whose entry may lead to a closed relay: only these are debounced.
_SLOW = ("C", "D")


_REAL = (int, float)  # built once: a tuple literal of names would allocate on every call


def _number(v):
    # True for a finite-or-infinite real number; False for bool, None, NaN, strings.
    # (MicroPython's isinstance(True, int) is False, CPython's is True: exclude bool explicitly.)
    if v is True or v is False:
        return False
    return isinstance(v, _REAL) and v == v


def _band(v):
    # Between two bands the reading takes the neighbour with the stricter rule:
    #   A/B gap (9.56..11.40)  -> B: the relay stays open either way, and the session is kept
    #                             (a glitch must not end it or unlock the cable);
    #   B/C gap (6.49..8.36)   -> B: relay open;
    #   C/D gap (3.25..5.48)   -> D: both may charge, D also demands ventilation;
    #   D/E gap (below 2.62)   -> E: relay open; likewise the gap between E and F.
    # Readings no healthy pilot can produce (above 13 V, below -13 V) are E (error).
    if v > A_MAX_V:
        return "E"
    if v >= A_MIN_V:
        return "A"
    if v >= B_MIN_V:
        return "B"
    if v > C_MAX_V:
        return "B"
    if v >= C_MIN_V:
        return "C"
    if v >= D_MIN_V:
        return "D"
    if v > F_MAX_V:
        return "E"
    if v >= F_MIN_V:
        return "F"
    return "E"


def classify(high_v, low_v=None, pwm_on=False):
    """Return the pilot state letter ('A'..'F') for one sampled period.

    high_v: level of the high phase (or the steady level without PWM), volts.
    low_v: level of the low phase, volts; used only with pwm_on, and only to check that the
        pilot swings (see MIN_SWING_V); None = not sampled, the swing check is skipped.
    pwm_on: the EVSE is generating PWM (duty below 100 %).

    The diode is not judged here: call `diode_ok(low_v)` with PWM on in B, C or D. Bad input
    (None, NaN, non-numbers) gives 'E', which opens the relay.
    """
    if not _number(high_v):
        return "E"
    if pwm_on and low_v is not None:
        if not _number(low_v) or high_v - low_v < MIN_SWING_V:
            return "E"
    return _band(high_v)


def diode_ok(low_v):
    """True when the PWM low phase sits in the -12 V band (the EV's diode blocks it).

    Meaningful only with PWM on and the pilot in B, C or D. A low level above the band (not
    negative enough, e.g. about -9 V with B and no diode) means a missing or shorted diode:
    a fault (IEC 61851-1, J1772; evse.md section 4). Bad input gives False.
    """
    return _number(low_v) and F_MIN_V <= low_v <= F_MAX_V


class PilotFilter:
    """Debounce raw pilot states: slow towards C/D, immediate otherwise.

    A change to C or D (including C <-> D) is reported once the same raw state has been seen on
    every update for `debounce_ms`; any other reading resets that wait. Changes to A, B, E or F
    are reported in the same update (they can only open the relay; IEC 61851-1 table A.6 seq. 8.1
    wants the relay open within 100 ms of C -> B). An unknown letter counts as 'E'.
    C -> D is debounced too, so a charging EV that starts asking for ventilation keeps power for
    up to `debounce_ms` before ConnectorControl sees D.
    """

    def __init__(self, debounce_ms=PILOT_DEBOUNCE_MS, initial="A"):
        self.debounce_ms = debounce_ms
        self.state = initial if initial in STATES else "E"
        self._cand = None
        self._since = 0

    def update(self, now_ms, raw_state):
        """Feed one raw reading; return the stable state letter."""
        if raw_state not in STATES:
            raw_state = "E"
        if raw_state == self.state:
            self._cand = None
        elif raw_state in _SLOW:
            if raw_state != self._cand:
                self._cand = raw_state
                self._since = now_ms
            if now_ms - self._since >= self.debounce_ms:
                self.state = raw_state
                self._cand = None
        else:
            self.state = raw_state
            self._cand = None
        return self.state
