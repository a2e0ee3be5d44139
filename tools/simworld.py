"""The simulated physical world around the charger: EVs, cables, faults, network and meter.

Pure state, no sockets and no asyncio: `tools/sim.py` feeds it control commands and firmware
outputs, ticks its physics and forwards the bus messages it returns. The world outlives firmware
restarts; only the meter's energy register survives a restart of `tools/sim.py` itself (it lives in
`<state-dir>/.sim-meter.json`). Pilot duty to current follows IEC 61851-1 Annex A (table A.8).
"""

import json
import math
import os

VOLTAGE_V = 230.0
CABLE_AMPS = (0, 13, 20, 32, 63)
EV_STATES = ("B", "C", "D")
FAULT_KINDS = ("rcd", "diode", "weld", "overtemp", "pilot_short", "meter_lost")
UID_LENGTHS = (4, 7, 10)  # ISO 14443-3 single, double and triple size UIDs
MAX_BUTTON_MS = 3_600_000
MAX_WATTS = 1_000_000
METER_FILE = ".sim-meter.json"


class CommandError(ValueError):
    """A control request with a bad argument; the text goes back as `error`."""


def current_for_duty(duty):
    """Current (A) a pilot duty cycle (fraction) offers, 0.0 outside the charging range."""
    pct = duty * 100.0
    if 8.0 <= pct < 10.0:
        return 6.0
    if 10.0 <= pct <= 85.0:
        return pct * 0.6
    if 85.0 < pct <= 96.0:
        return (pct - 64.0) * 2.5
    if 96.0 < pct <= 97.0:
        return 80.0
    return 0.0


def _is_number(value):
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


class Connector:
    """One outlet: the EV behind it, its cable, the firmware's outputs and its meter."""

    def __init__(self, cid, phases):
        self.id = cid
        self.phases = phases
        self.plugged = False
        self.ev_state = "A"
        self.ev_power_w = None  # None: the EV draws all it is offered
        self.cable_a = 32
        self.duty = 1.0  # steady +12 V until the firmware says otherwise
        self.relay = False
        self.energy_wh = 0.0
        self.current_a = 0.0  # per phase
        self.power_w = 0.0

    def connector_message(self):
        return {"in": "connector", "connector": self.id, "ev_state": self.ev_state,
                "cable_a": self.cable_a}

    def meter_message(self):
        return {"in": "meter", "connector": self.id, "energy_wh": round(self.energy_wh, 3),
                "power_w": round(self.power_w, 3),
                "current_a": [round(self.current_a, 3)] * self.phases,
                "voltage_v": [VOLTAGE_V] * self.phases}


class World:
    """Everything outside the charger's firmware, plus the meter the firmware reads."""

    def __init__(self, connectors=1, phases=1):
        self.phases = phases
        self.connectors = [Connector(i + 1, phases) for i in range(connectors)]
        self.faults = dict.fromkeys(FAULT_KINDS, False)
        self.ems_limit_a = None
        self.net_up = True
        self.led = None

    # -- state pushed to the firmware ---------------------------------------------------------

    def faults_message(self):
        msg = {"in": "faults"}
        msg.update(self.faults)
        return msg

    def full_state(self):
        """Every input message, sent first on each new bus connection."""
        msgs = [c.connector_message() for c in self.connectors]
        msgs.append(self.faults_message())
        msgs.append({"in": "ems", "limit_a": self.ems_limit_a})
        msgs.append({"in": "net", "up": self.net_up})
        return msgs + self.meter_messages()

    def meter_messages(self):
        """One meter reading per connector; none while the meter is lost (fault `meter_lost`)."""
        if self.faults["meter_lost"]:
            return []
        return [c.meter_message() for c in self.connectors]

    # -- physics ------------------------------------------------------------------------------

    def tick(self, dt_s):
        """Advance time by dt_s seconds: integrate energy at the present power, then recompute."""
        if dt_s > 0:
            for c in self.connectors:
                c.energy_wh += c.power_w * dt_s / 3600.0
        self.update_physics()

    def update_physics(self):
        """Recompute current and power from relay, pilot duty and the EV (no time passes)."""
        for c in self.connectors:
            # A welded contact conducts whatever the relay coil is told.
            conducting = c.relay or self.faults["weld"]
            offered = current_for_duty(c.duty) if c.ev_state in ("C", "D") else 0.0
            if not conducting or offered <= 0.0:
                c.current_a = 0.0
            elif c.ev_power_w is None:
                c.current_a = offered
            else:
                c.current_a = min(offered, c.ev_power_w / (VOLTAGE_V * self.phases))
            c.power_w = c.current_a * VOLTAGE_V * self.phases

    def reset_outputs(self):
        """The firmware is gone: the relay coil drops out and the pilot stops switching."""
        for c in self.connectors:
            c.relay = False
            c.duty = 1.0
        self.update_physics()

    # -- firmware outputs ---------------------------------------------------------------------

    def output(self, msg):
        """Apply one firmware output; returns "relay" or "led" when that changed, else None.

        Raises CommandError for a malformed output (the runner logs it and goes on).
        """
        kind = msg.get("out")
        if kind == "led":
            pattern = msg.get("pattern")
            if not isinstance(pattern, str):
                raise CommandError("led pattern must be a string")
            changed = pattern != self.led
            self.led = pattern
            return "led" if changed else None
        if kind == "led_flash":  # a short blink (card accepted, ...): nothing to keep
            return None
        if kind == "unlock":  # the cable lock opens; the simulated EV keeps its plug state
            self._connector(msg)
            return "unlock"
        if kind not in ("duty", "relay"):
            raise CommandError("unknown output {!r}".format(kind))
        c = self._connector(msg)
        if kind == "duty":
            value = msg.get("value")
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise CommandError("duty value must be a number in 0..1")
            c.duty = float(value)
            self.update_physics()
            return None
        closed = msg.get("closed")
        if not isinstance(closed, bool):
            raise CommandError("relay closed must be true or false")
        changed = closed != c.relay
        c.relay = closed
        self.update_physics()
        return "relay" if changed else None

    # -- control commands ---------------------------------------------------------------------

    def apply(self, req):
        """Apply one world control command.

        Returns the list of bus messages to push to the firmware. Raises CommandError for bad
        arguments (the world is left unchanged) and for commands the world does not know.
        """
        cmd = req.get("cmd")
        handler = getattr(self, "_cmd_" + cmd, None) if isinstance(cmd, str) else None
        if handler is None:
            raise CommandError("unknown command {!r}".format(cmd))
        return handler(req)

    def _connector(self, req):
        cid = req.get("connector")
        if not isinstance(cid, int) or isinstance(cid, bool):
            raise CommandError("connector must be an integer")
        if not 1 <= cid <= len(self.connectors):
            raise CommandError("connector must be in 1..{}".format(len(self.connectors)))
        return self.connectors[cid - 1]

    def _cmd_plug(self, req):
        c = self._connector(req)
        if not c.plugged:
            c.plugged = True
            c.ev_state = "B"
            self.update_physics()
        return [c.connector_message()]

    def _cmd_unplug(self, req):
        c = self._connector(req)
        c.plugged = False
        c.ev_state = "A"
        self.update_physics()
        return [c.connector_message()]

    def _cmd_ev(self, req):
        c = self._connector(req)
        state = req.get("state")
        if state not in EV_STATES:
            raise CommandError("state must be one of B, C, D")
        if not c.plugged:
            raise CommandError("connector {} has no EV plugged".format(c.id))
        c.ev_state = state
        self.update_physics()
        return [c.connector_message()]

    def _cmd_ev_power(self, req):
        c = self._connector(req)
        if "watts" not in req:
            raise CommandError("watts is required (a number >= 0, or null)")
        watts = req["watts"]
        if watts is not None and (not _is_number(watts) or not 0 <= watts <= MAX_WATTS):
            raise CommandError("watts must be a number in 0..{} or null".format(MAX_WATTS))
        c.ev_power_w = None if watts is None else float(watts)
        self.update_physics()
        return []

    def _cmd_cable(self, req):
        c = self._connector(req)
        amps = req.get("amps")
        if isinstance(amps, bool) or amps not in CABLE_AMPS:
            raise CommandError("amps must be one of 0, 13, 20, 32, 63")
        c.cable_a = int(amps)
        return [c.connector_message()]

    def _cmd_fault(self, req):
        kind = req.get("kind")
        on = req.get("on")
        if kind not in FAULT_KINDS:
            raise CommandError("kind must be one of " + ", ".join(FAULT_KINDS))
        if not isinstance(on, bool):
            raise CommandError("on must be true or false")
        self.faults[kind] = on
        self.update_physics()
        return [self.faults_message()]

    def _cmd_ems(self, req):
        if "limit_a" not in req:
            raise CommandError("limit_a is required (a number >= 0, or null)")
        limit = req["limit_a"]
        if limit is not None and (not _is_number(limit) or limit < 0):
            raise CommandError("limit_a must be a number >= 0 or null")
        self.ems_limit_a = None if limit is None else float(limit)
        return [{"in": "ems", "limit_a": self.ems_limit_a}]

    def _cmd_net(self, req):
        up = req.get("up")
        if not isinstance(up, bool):
            raise CommandError("up must be true or false")
        self.net_up = up
        return [{"in": "net", "up": up}]

    def _cmd_tap(self, req):
        uid = req.get("uid")
        if not isinstance(uid, str):
            raise CommandError("uid must be a hex string")
        try:
            raw = bytes.fromhex(uid)
        except ValueError:
            raise CommandError("uid must be hex") from None
        if len(raw) not in UID_LENGTHS or len(uid) != 2 * len(raw):
            raise CommandError("uid must be 4, 7 or 10 bytes of hex")
        return [{"in": "tap", "uid": raw.hex().upper()}]

    def _cmd_button(self, req):
        ms = req.get("ms")
        if not isinstance(ms, int) or isinstance(ms, bool) or not 0 < ms <= MAX_BUTTON_MS:
            raise CommandError("ms must be an integer in 1..{}".format(MAX_BUTTON_MS))
        return [{"in": "button", "ms": ms}]

    # -- meter persistence --------------------------------------------------------------------

    def load_meter(self, state_dir):
        """Restore the energy registers; a missing or unreadable file means zero."""
        try:
            with open(os.path.join(state_dir, METER_FILE)) as f:
                data = json.load(f)
            energy = data["energy_wh"]
        except (OSError, ValueError, KeyError, TypeError):
            return
        for c in self.connectors:
            value = energy.get(str(c.id)) if isinstance(energy, dict) else None
            if _is_number(value) and value >= 0:
                c.energy_wh = float(value)

    def save_meter(self, state_dir):
        """Write the energy registers atomically (temporary file, then rename)."""
        path = os.path.join(state_dir, METER_FILE)
        tmp = path + ".tmp"
        data = {"energy_wh": {str(c.id): c.energy_wh for c in self.connectors}}
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
