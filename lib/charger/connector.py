"""One charging connector: its session (authorisation, transaction), status and EVSE control.

Pure decisions live in lib/evse (pilot filter, relay/PWM control); this module applies the OCPP
session rules on top (OCPP 1.6 sections 4.9 and 5, `ocpp16.md` section 6): which
ChargePointStatus to report, when a transaction starts and stops and with which reason. It talks
to the outside only through the charger (`self.ch`): board I/O, OCPP messages, storage.
"""

from micropython import const

import log
from evse.pilot import PilotFilter, classify, diode_ok
from evse.control import ConnectorControl, RELAY, DUTY, SELFTEST, FAULT, FAULT_OFF
from evse.faults import FaultLatch, reports_faulted, error_code
from evse.limiter import Limiter

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
        self.pending_tag = None  # authorised idTag waiting for a plug-in (ConnectionTimeOut)
        self.pending_parent = None
        self.pending_until = 0
        self.operative = True
        self.scheduled_operative = None  # ChangeAvailability Scheduled: applied after the tx
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
        m = board.meter(self.id)
        self.meter = m
        if m is not None:
            self.energy_wh = m["energy_wh"]
            self.power_w = m["power_w"]
        return self.pilot

    @property
    def plugged(self):
        return self.pilot in ("B", "C", "D")

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
        self.fault = fault
        if self.pilot == "A":
            if self.tx is not None and ch.config.get("StopTransactionOnEVSideDisconnect"):
                ch.stop_transaction(self, "EVDisconnected")
                self.update_status()  # Charging -> Finishing (C6), then Available (F1)
            self.finishing = False
        if self.tx is None and self.scheduled_operative is not None:
            self.operative = self.scheduled_operative
            self.scheduled_operative = None
            ch.store.save("availability", [c.operative for c in ch.connectors])
        if self.pending_tag is not None:
            if self.plugged and self.tx is None and not self.finishing:
                tag, parent = self.pending_tag, self.pending_parent
                self.pending_tag = None
                ch.start_transaction(self, tag, parent)
            elif now_ms >= self.pending_until:
                log.info("session", "connector %d: no cable within ConnectionTimeOut", self.id)
                self.pending_tag = None
        if (
            self.tx is None
            and self.plugged
            and not self.finishing
            and self.operative
            and fault is None
            and not ch.config.get("AuthEnabled")
        ):
            ch.start_transaction(self, ch.config.get("FreeVendIdTag"), None)
        allowed = self.tx is not None and self.operative and not self.tx.get("suspended")
        board = ch.board
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
        self.update_status()

    def compute_status(self):
        if self.fault is not None and reports_faulted(self.fault):
            return "Faulted"
        tx = self.tx
        if tx is None:
            self.idle_since = None
            if not self.operative:
                return "Unavailable"
            if self.finishing:
                return "Finishing"
            if self.plugged or self.pending_tag is not None:
                return "Preparing"
            return "Available"
        if self.limit_a < 6.0 or not self.operative:
            return "SuspendedEVSE"  # the charger cannot offer the 6 A minimum (IEC 61851)
        if self.relay and self.pilot in ("C", "D"):
            self.idle_since = None
            return "Charging"
        # Not (yet) charging: right after the start the PWM waits its turn and the EV takes a
        # moment to close S2; the relay waits for its checks. Report SuspendedEV only once that
        # lasted _SUSPEND_SETTLE_MS; until then keep what was reported (Preparing or Charging).
        now = self.ch.clock.now_ms()
        if self.idle_since is None:
            self.idle_since = now
        if now - self.idle_since < _SUSPEND_SETTLE_MS and self.status in ("Preparing", "Charging"):
            return self.status
        return "SuspendedEV"

    def update_status(self):
        s = self.compute_status()
        code = error_code(self.fault)  # 'NoError' without a fault
        if s != self.status or code != self.error_code:
            self.status = s
            self.error_code = code
            self.ch.status_changed(self)
