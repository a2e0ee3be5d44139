"""One charging connector: its session (authorisation, transaction), status and EVSE control.

Pure decisions live in lib/evse (pilot filter, relay/PWM control); this module applies the OCPP
session rules on top (OCPP 1.6 sections 4.9 and 5, `ocpp16.md` section 6): which
ChargePointStatus it is in, when a transaction starts and stops and with which reason (the rules
themselves are in charger.session). It talks to the outside only through the charger
(`self.ch`): board I/O, OCPP messages, storage; charger.status decides what reaches the CSMS.
Status rules: Faulted for faults that say so (evse.faults), Unavailable while Inoperative (this
connector or the whole charge point), Finishing after a transaction until the cable goes,
Preparing while plugged in or while an authorised card waits for the cable, Reserved while
`reserved` holds a reservation (set by the reservation module), SuspendedEVSE while the charger
withholds energy (limit below 6 A, a non-Faulted fault, an exhausted invalidated idTag),
SuspendedEV while the EV does not take the energy offered (after `_SUSPEND_SETTLE_MS`).
"""

from micropython import const

import log
from evse.pilot import PilotFilter, classify, diode_ok
from evse.control import ConnectorControl, RELAY, DUTY, SELFTEST, FAULT, FAULT_OFF
from evse.faults import FaultLatch, reports_faulted, error_code, vendor_error_code
from evse.limiter import Limiter
from charger import session as sess

# Board fault inputs -> latch kinds (evse.faults); the rest come from the pilot and control.
_BOARD_FAULTS = ("rcd", "weld", "overtemp", "meter_lost", "pilot_short")


_SUSPEND_SETTLE_MS = const(3000)


class Connector:
    def __init__(self, cid, charger):
        self.id = cid
        self.ch = charger
        self.filter = PilotFilter()
        board = charger.board
        self.control = ConnectorControl(ventilation=board.ventilation,
                                        selftest=board.rcd_selftest_supported)
        self.latch = FaultLatch()
        self.limiter = Limiter(board.max_current, on_change=self._limit_changed)
        self.limit_a = 0.0
        self.low_v = None
        self.pilot = "A"
        self.duty = 1.0
        self.relay = False
        self.status = None  # last status computed
        self.error_code = "NoError"
        self.fault = None
        self.tx = None  # running transaction: dict(ref, id_tag, parent, meter_start, start_ms, tx_id)
        self.finishing = False  # transaction ended, connector not yet free
        self.last_owner = None  # {"id_tag", "parent"} of the last transaction (Finishing)
        self.pending_tag = None  # authorised idTag waiting for a plug-in (ConnectionTimeOut)
        self.pending_parent = None
        self.pending_until = 0
        self.pending_profile = None  # chargingProfile of a RemoteStartTransaction waiting
        self.reserved = None  # reservation module: {"id", "id_tag", "parent"} or None
        self.operative = True  # this connector's own availability (ChangeAvailability)
        self.scheduled_operative = None  # ChangeAvailability Scheduled: applied after the tx
        self.plugged_ms = 0  # when the EV was last plugged in (which connector a card picks)
        self._unplugged = False  # the EV went from B/C/D to A since the last step
        self.energy_wh = 0.0
        self.power_w = 0.0
        self.meter = None
        self.next_sample_ms = 0
        self.idle_since = None

    # ---- inputs ---------------------------------------------------------------------------
    def sense(self, now_ms):
        """Read the pilot and the meter from the board; returns the debounced pilot state."""
        board = self.ch.board
        high, low = board.pilot_levels(self.id)
        raw = classify(high, low, self.duty < 1.0)
        was = self.pilot
        self.pilot = self.filter.update(now_ms, raw)
        self.low_v = low
        if was != "A" and self.pilot == "A":
            self.latch.unplugged(now_ms)
            self._unplugged = True
        elif was == "A" and self.pilot != "A":
            self.plugged_ms = now_ms
        m = board.meter(self.id)
        self.meter = m
        if m is not None:
            self.energy_wh = m["energy_wh"]
            self.power_w = m["power_w"]
        return self.pilot

    @property
    def plugged(self):
        return self.pilot in ("B", "C", "D")

    def is_operative(self):
        """Operative: neither this connector nor the whole charge point is Inoperative."""
        return self.operative and self.ch.operative

    # ---- session --------------------------------------------------------------------------
    def _limit_changed(self, amps, reason, now_ms):
        log.info("limit", "connector %d: %.1f A (%s)", self.id, amps, reason)

    def limit(self, now_ms):
        """The current this connector may offer now: the most restrictive source."""
        ch = self.ch
        lim = self.limiter
        lim.set("config", ch.config.get("MaxCurrent"), now_ms)
        cable = ch.board.cable_amps(self.id)
        lim.set("cable", cable if cable else None, now_ms)
        lim.set("ems", ch.board.ems_limit(), now_ms)
        temp = getattr(ch.board, "temperature", None)
        if temp is not None:  # thermal derating 65/68 C (evse.limiter); the 71 C cut-off is a fault
            lim.set_temperature(temp(), now_ms)
        if ch.smart is not None:  # OCPP smart charging (ocpp16.smartcharging)
            lim.set("ocpp", ch.smart.limit_a(self, now_ms), now_ms)
        self.limit_a, _reason = lim.effective(now_ms)
        return self.limit_a

    def faults(self, now_ms, board_faults):
        """Feed the latch from the board's inputs and the pilot; the blocking fault or None."""
        latch = self.latch
        for kind in _BOARD_FAULTS:
            latch.set(kind, bool(board_faults.get(kind)), now_ms)
        cable = self.ch.board.cable_amps(self.id)
        latch.set("pp_invalid", self.plugged and cable == 0, now_ms)
        # Diode check: with our PWM on and the EV in B/C/D, the low phase must reach -12 V.
        if self.control.duty < 1.0 and self.pilot in ("B", "C", "D") and self.low_v is not None:
            if diode_ok(self.low_v):
                self.control.diode_seen(now_ms)
            else:
                latch.set("diode", True, now_ms)
        elif self.pilot == "A":
            latch.set("diode", False, now_ms)
        return latch.active(now_ms)

    def step(self, now_ms, limit_a, fault):
        """One control cycle: session rules, then the EVSE state machine, then the outputs."""
        ch = self.ch
        cfg = ch.config
        self.fault = fault
        if self.tx is not None and fault in sess.FAULT_STOP_REASONS:
            ch.stop_transaction(self, sess.FAULT_STOP_REASONS[fault])
        if self._unplugged:
            self._unplugged = False
            if (self.tx is not None or self.finishing) and ch.board.has_lock and cfg.get(
                "UnlockConnectorOnEVSideDisconnect"
            ):
                log.info("session", "connector %d: EV side disconnected, unlocked", self.id)
                ch.board.unlock(self.id)
        if self.pilot == "A":
            if self.tx is not None and cfg.get("StopTransactionOnEVSideDisconnect"):
                ch.stop_transaction(self, "EVDisconnected")
                self.update_status()  # Charging -> Finishing (C6), then Available (F1)
            self.finishing = False
        if self.tx is None and self.scheduled_operative is not None:
            self.operative = self.scheduled_operative
            self.scheduled_operative = None
            ch.save_availability()
        if not self.is_operative():
            sess.clear_pending(self)
        self._pending_step(now_ms)
        if (
            self.tx is None
            and self.plugged
            and not self.finishing
            and self.reserved is None
            and self.is_operative()
            and fault is None
            and not cfg.get("AuthEnabled")
        ):
            ch.start_transaction(self, cfg.get("FreeVendIdTag"), None)
        allowed = (
            self.tx is not None and self.is_operative() and not sess.energy_blocked(ch, self)
        )
        board = ch.board
        latched = False
        # Actions come in a safe order: relay open before the PWM changes, PWM before a close.
        for name, value in self.control.update(now_ms, self.pilot, allowed, limit_a, fault):
            if name == RELAY:
                board.relay(self.id, value)
                self.relay = value
            elif name == DUTY:
                board.set_duty(self.id, value)
                self.duty = value
            elif name == SELFTEST:
                ok = board.rcd_selftest(self.id)
                self.control.selftest_result(now_ms, ok)
            elif name == FAULT or name == FAULT_OFF:
                self.latch.set(value, name == FAULT, now_ms)
                latched = True
        if latched:
            # A fault the control machine found (ventilation, RCD self-test) shows in the same
            # cycle as the relay it opened.
            self.fault = self.latch.active(now_ms)
        self.update_status()

    def _pending_step(self, now_ms):
        """An authorised card waiting for a cable: start on plug-in, drop after the timeout.
        A card waiting on another connector goes to this one when this one is plugged first."""
        free = self.plugged and self.tx is None and self.is_operative() and self.fault is None
        if self.pending_tag is None and free and not self.finishing:
            for o in self.ch.connectors:
                if o is not self and o.pending_tag is not None and not o.plugged:
                    if self.reserved is None or sess.holds(self.reserved, o.pending_tag,
                                                           o.pending_parent):
                        self.pending_tag, self.pending_parent = o.pending_tag, o.pending_parent
                        self.pending_profile = o.pending_profile
                        sess.clear_pending(o)
                        o.update_status()
                        break
        if self.pending_tag is None:
            return
        if free:
            self.ch.start_transaction(self, self.pending_tag, self.pending_parent,
                                      self.pending_profile)
        elif now_ms >= self.pending_until:
            log.info("session", "connector %d: no cable within ConnectionTimeOut", self.id)
            sess.clear_pending(self)

    def compute_status(self):
        if self.fault is not None and reports_faulted(self.fault):
            return "Faulted"
        tx = self.tx
        if tx is None:
            self.idle_since = None
            if not self.is_operative():
                return "Unavailable"
            if self.finishing:
                return "Finishing"
            if self.pending_tag is not None:
                return "Preparing"
            if self.reserved is not None:
                return "Reserved"
            if self.plugged:
                return "Preparing"
            return "Available"
        if (
            self.limit_a < 6.0  # the charger cannot offer the 6 A minimum (IEC 61851)
            or not self.is_operative()
            or self.fault is not None
            or sess.energy_blocked(self.ch, self)
        ):
            self.idle_since = None
            return "SuspendedEVSE"
        if self.relay and self.pilot in ("C", "D"):
            self.idle_since = None
            return "Charging"
        # Not (yet) charging: right after the start the PWM waits its turn (the advertised
        # current rises at most every few seconds), the EV takes a moment to close S2 and the
        # relay waits for its checks. While the EV is there and the PWM is not on yet, keep
        # what was reported; once we offer current (or the EV left), report SuspendedEV only
        # after _SUSPEND_SETTLE_MS without charging (SuspendedEV: current offered, none taken).
        now = self.ch.clock.now_ms()
        if self.pilot != "A" and self.control.offered_a <= 0:
            self.idle_since = None
            return self._held()
        if self.idle_since is None:
            self.idle_since = now
        if now - self.idle_since < _SUSPEND_SETTLE_MS:
            return self._held()
        return "SuspendedEV"

    def _held(self):
        # A new transaction shows Preparing, and SuspendedEVSE after a Faulted spell: the
        # transitions OCPP 1.6 allows from those states.
        if self.status in ("Preparing", "Charging", "SuspendedEV", "SuspendedEVSE"):
            return self.status
        return "SuspendedEVSE" if self.status == "Faulted" else "Preparing"

    def update_status(self):
        s = self.compute_status()
        code = error_code(self.fault)  # 'NoError' without a fault
        if s != self.status or code != self.error_code:
            self.status = s
            self.error_code = code
            self.ch.status_changed(self)

    def vendor_error(self):
        """vendorErrorCode of the current fault (evse.faults), or None."""
        return vendor_error_code(self.fault)
