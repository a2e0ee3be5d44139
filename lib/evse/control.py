"""Per-connector safety state machine: pilot PWM duty and relay from pilot state and permissions.

IEC 61851-1 annex A, evse.md sections 2, 3 and 6. Each `update()` takes the debounced pilot
state, the app's permission, the effective current limit and the active fault, and returns the
actions the app must execute, in order. The machine keeps these invariants after every update:

1. The relay is closed only in C, or in D when the site has ventilation.
2. ... only while charge_allowed, with no fault, advertising at least 6 A (PWM on).
3. ... only after the diode check passed with PWM on during this plug-in, and after an RCD
   self-test that passed for this very close (unless built with selftest=False).
4. Leaving C/D, E, F, a fault, a limit below 6 A or charge_allowed False open it in the same
   update; a lower limit lowers the advertised current in the same update.
5. The advertised current rises at most once per RAISE_INTERVAL_MS, counted from the last change
   in either direction (no chatter; EVerest/EVerest#762). Starting the PWM counts as a rise.

The "6 s" rule (IEC 61851-1 table A.6 seq. 10.2: if the PWM stops and the EV stays in C, open at
the latest after 6 s) is met by opening at once: the PWM stops only when charging is no longer
allowed, and invariant 2 forbids a closed relay without an advertised current, so the relay opens
in the same update as the PWM stops. The EV gets no grace time to ramp down; opening under load
is the accepted price of never offering 0 A with the relay closed.

Pure logic: no pins, no time; `now_ms` is a non-wrapping monotonic ms counter. The returned
list is reused by the next call (copy it to keep it); actions are allocated only on change.
"""

from micropython import const

from evse.duty import duty_permille, offer_deciamps

RAISE_INTERVAL_MS = const(5000)
# The RCD self-test result must arrive within this time of the request; then it counts as
# failed. Leaves room for the close deadline of 3 s after C (IEC 61851-1 table A.6 seq. 4):
# OpenEVSE's test takes 0.5 s, esp32-evse waits at most 500 ms.
SELFTEST_TIMEOUT_MS = const(2000)
_MIN_DA = const(60)

# RCD self-test state for the next relay close.
_ST_NONE = const(0)  # no test requested
_ST_PENDING = const(1)  # requested, waiting for selftest_result()
_ST_PASSED = const(2)  # passed; valid for one close while the close conditions keep holding
_ST_BLOCKED = const(3)  # failed or timed out; no new request until the EV is unplugged

PILOT_STATES = ("A", "B", "C", "D", "E", "F")
_PWM_STATES = ("B", "C", "D")
# Sub-states (esp32-evse evse.c): x1 = steady +12 V, x2 = PWM on. Tables, so no string building.
_SUB_PWM = {"B": "B2", "C": "C2", "D": "D2"}
_SUB_STEADY = {"B": "B1", "C": "C1", "D": "D1"}

# Action names: every action is a 2-tuple (name, value).
# Order within one update: fault/fault_off, relay open, duty, selftest, relay close, substate
# (the relay opens before the PWM changes; the PWM is on before the relay closes).
RELAY = "relay"  # ("relay", bool): drive the relay
DUTY = "duty"  # ("duty", fraction): 1.0 = steady +12 V, else PWM at that duty
SELFTEST = "selftest"  # ("selftest", None): run the RCD self-test, answer selftest_result()
FAULT = "fault"  # ("fault", kind): a fault this machine detected; latch it (evse.faults)
FAULT_OFF = "fault_off"  # ("fault_off", kind): that condition is gone
SUBSTATE = "substate"  # ("substate", "C2"): new sub-state, for status and LED


class ConnectorControl:
    """Safety state machine of one connector; see the module docstring for the invariants.

    ventilation: the site ventilates, so state D may charge; without it D opens and raises the
        'ventilation' fault.
    selftest: request an RCD self-test before every relay close (boards whose residual-current
        device cannot be tested from the MCU pass False).

    Outputs after each update: `duty` (fraction, 1.0 = steady +12 V), `relay` (bool),
    `offered_a` (advertised current, 0.0 without PWM), `substate` ('A', 'B1', 'B2', 'C1', 'C2',
    'D1', 'D2', 'E', 'F'), `pilot` (the state letter used).
    """

    def __init__(self, ventilation=False, selftest=True):
        self.ventilation = bool(ventilation)
        self.selftest = bool(selftest)
        self.duty = 1.0
        self.relay = False
        self.offered_a = 0.0
        self.substate = "A"
        self.pilot = "A"
        self.diode = False  # diode check passed with PWM on during this plug-in
        self._da = 0  # advertised current in deci-amps, 0 = no PWM
        self._changed_ms = None  # last change of the advertised current
        self._st = _ST_NONE
        self._st_ms = 0
        self._st_report = False  # a self-test failure to report in the next update
        self._vent_fault = False
        self._actions = []

    def update(self, now_ms, pilot, charge_allowed, limit_a, fault=None):
        """Run one step; return the list of actions to execute in order.

        pilot: debounced state letter; anything else counts as 'E' (relay opens).
        charge_allowed: the app's decision (authorised, session running, operative, not
            suspended); taken as a truth value.
        limit_a: effective current limit (A); below 6 A, None or not a number = no charging.
        fault: None or the active fault kind; any true value blocks charging.
        """
        acts = self._actions
        if acts:
            acts.clear()  # only when needed: clear() reallocates even an empty list
        if pilot not in PILOT_STATES:
            pilot = "E"
        self.pilot = pilot
        if pilot in ("A", "E", "F"):
            # A new plug-in (or a pilot that was not a healthy B/C/D) needs a new diode check.
            self.diode = False
            if pilot == "A":
                # A new plug-in is a new EV: the 5 s raise spacing protects one EV from
                # chatter, it must not delay the next driver's start.
                self._changed_ms = None
                if self._st == _ST_BLOCKED:
                    self._st = _ST_NONE

        vent = pilot == "D" and not self.ventilation
        if vent != self._vent_fault:
            self._vent_fault = vent
            acts.append((FAULT if vent else FAULT_OFF, "ventilation"))
        if self._st == _ST_PENDING and now_ms - self._st_ms >= SELFTEST_TIMEOUT_MS:
            self._st = _ST_BLOCKED
            self._st_report = True
        if self._st_report:
            self._st_report = False
            acts.append((FAULT, "rcd_selftest"))

        allowed = bool(charge_allowed) and not fault and not vent and pilot in _PWM_STATES
        target = offer_deciamps(limit_a) if allowed else 0

        # Advertised current: decreases at once, increases at most once per RAISE_INTERVAL_MS.
        da = self._da
        if target < da:
            da = target
        elif target > da:
            if self._changed_ms is None or now_ms - self._changed_ms >= RAISE_INTERVAL_MS:
                da = target

        close = False
        request = False
        if (allowed and da >= _MIN_DA and self.diode
                and (pilot == "C" or (pilot == "D" and self.ventilation))):
            if self.relay or not self.selftest:
                close = True
            elif self._st == _ST_PASSED:
                close = True
                self._st = _ST_NONE  # used up: the next close needs a new test
            elif self._st == _ST_NONE:
                self._st = _ST_PENDING
                self._st_ms = now_ms
                request = True
        elif self._st == _ST_PENDING or self._st == _ST_PASSED:
            # The close conditions broke before the close: a later close needs a fresh test.
            self._st = _ST_NONE

        if self.relay and not close:
            self.relay = False
            acts.append((RELAY, False))
        if da != self._da:
            self._da = da
            self._changed_ms = now_ms
            self.offered_a = da / 10
            self.duty = duty_permille(da) / 1000
            acts.append((DUTY, self.duty))
        if request:
            acts.append((SELFTEST, None))
        if close and not self.relay:
            self.relay = True
            acts.append((RELAY, True))

        sub = (_SUB_PWM if da else _SUB_STEADY).get(pilot, pilot)
        if sub != self.substate:
            self.substate = sub
            acts.append((SUBSTATE, sub))
        return acts

    def diode_seen(self, now_ms):
        """The app saw the low phase in the -12 V band (`pilot.diode_ok`).

        Counts only while this machine has PWM on and the pilot is B, C or D; returns whether it
        counted. A failed check is a fault the app latches ('diode') and passes to update().
        """
        if self._da and self.pilot in _PWM_STATES:
            self.diode = True
            return True
        return False

    def selftest_result(self, now_ms, ok):
        """Answer a ('selftest', None) action; returns whether the answer was taken.

        Only `ok is True` passes, and a pass counts only for a pending request (a late or
        unrequested pass is ignored: False). Anything else is a failure, always taken: it blocks
        closing until the EV is unplugged, and the next update emits ('fault', 'rcd_selftest').
        """
        if ok is True:
            if self._st == _ST_PENDING:
                self._st = _ST_PASSED
                return True
            return False
        self._st = _ST_BLOCKED
        self._st_report = True
        return True
