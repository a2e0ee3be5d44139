"""The simulated board: the charger's hardware, played by tools/sim.py over a local "hardware bus".

Replaces only the hardware: the pilot generator and ADC, relay, LED, RFID reader, meter, service
button, the network link and the BLE radio (provisioning frames from tools/sim.py's provisioning
port arrive as `prov_*` bus messages and go to lib/provision's ProvService). The application, OCPP client and state machines are the same code
the ESP32 runs. tools/sim.py (CPython) owns the simulated world (EV, cable, meter register, faults,
energy manager, network) so it survives firmware restarts; this module mirrors what the world
sends (JSON lines, `{"in": ...}`), reports outputs (`{"out": ...}`) and answers queries
(`{"q": "status"}`). The network goes through the simulator's gateway (`CONNECT host port`), so a
network cut is a real TCP cut. Bounds: `_OUT_QUEUE` lines waiting for the bus.
"""

import asyncio
import json
import os
import sys
from micropython import const

import log
from net.link import SocketLink, ConnectError

_OUT_QUEUE = const(64)
_RESTART_EXIT = const(75)  # tools/sim.py restarts the firmware process on this exit code
_VOLTS = 230.0
_BUTTON_WINDOW_MS = const(60000)
_BUTTON_MIN_MS = const(3000)
_FACTORY_RESET_MS = const(10000)  # a very long press wipes provisioning and stored state


def failsafe():
    """Nothing to drive on the simulated board: relays start open in the world."""


class GatewayLink(SocketLink):
    """The simulated Wi-Fi: TCP through tools/sim.py's gateway, which can cut it."""

    def __init__(self, board, port):
        self.board = board
        self.port = port

    def isconnected(self):
        return self.board.net_up

    async def _open_socket(self, host, port, timeout_ms):
        if not self.board.net_up:
            raise ConnectError("offline", "network down")
        try:
            reader, writer = await asyncio.wait_for_ms(
                asyncio.open_connection("127.0.0.1", self.port), timeout_ms
            )
        except (OSError, asyncio.TimeoutError) as e:
            raise ConnectError("offline", "gateway unreachable: {}".format(e))
        writer.write("CONNECT {} {}\n".format(host, port).encode())
        await writer.drain()
        try:
            line = await asyncio.wait_for_ms(reader.readline(), timeout_ms)
        except asyncio.TimeoutError:
            await writer.wait_closed()
            raise ConnectError("timeout", "connect to {}:{} timed out".format(host, port))
        line = line.decode().strip()
        if line != "OK":
            await writer.wait_closed()
            parts = line.split(" ", 2)
            stage = parts[1] if len(parts) > 1 and parts[0] == "ERR" else "tcp"
            raise ConnectError(stage, parts[2] if len(parts) > 2 else line)
        return reader.s


class ProvLink:
    """The simulated BLE link: provisioning bytes travel over the bus to tools/sim.py's
    provisioning port (one bus session per TCP client, u16-length-prefixed frames)."""

    def __init__(self, board):
        self.board = board

    def send(self, conn, data):
        self.board._send({"out": "prov_data", "session": conn, "hex": data.hex()})

    def close(self, conn):
        self.board._send({"out": "prov_close", "session": conn})


class SimBoard:
    vendor = "OpenEVSE-MP"
    model = "Simulator"
    ventilation = False
    has_lock = True  # a socket outlet with a cable lock
    rcd_selftest_supported = True
    txq_budget = 1024 * 1024  # flash for queued transaction messages (README "Storage")
    voltage = _VOLTS

    def __init__(self, args, state_dir):
        self.args = args
        self.state_dir = state_dir
        self.connectors = int(args.get("connectors", 1))
        self.phases = int(args.get("phases", 1))
        self.max_current = float(args.get("max_current", 32))
        self.serial = "SIM-" + (args.get("device_secret") or "0000")[-4:].upper()
        n = self.connectors
        self.ev_state = ["A"] * n
        self.cable_a = [32] * n
        self.duty = [1.0] * n
        self.relays = [False] * n
        self.meters = [None] * n
        self.faults_in = {}
        self.ems = None
        self.net_up = True
        self.window_until = -1
        self.flash = None
        self.charger = None
        self.prov = None  # provision.service.ProvService once started
        self.link = GatewayLink(self, int(os.getenv("EVSE_SIM_GATEWAY") or 0))
        self._out = []
        self._out_event = asyncio.Event()
        self._writer = None
        self._tasks = []
        self.exit_code = _RESTART_EXIT
        # Bench instruments (tools/sim.py --bench): {"monitor": True, "gc_threshold": N}.
        self.bench = args.get("bench") or {}

    # ---- hardware interface used by the charger -----------------------------------------
    def pilot_levels(self, cid):
        """(high, low) volts as the ADC would sample them in the PWM high and low phases."""
        i = cid - 1
        pwm = self.duty[i] < 1.0
        if self.faults_in.get("pilot_short"):
            return 0.0, 0.0
        high = {"A": 12.0, "B": 9.0, "C": 6.0, "D": 3.0}[self.ev_state[i]]
        if not pwm:
            return high, high  # steady +12 V source: no low phase to sample
        if self.ev_state[i] != "A" and self.faults_in.get("diode"):
            return high, -high  # no diode: the EV loads the negative half too
        return high, -12.0

    def set_duty(self, cid, duty):
        self.duty[cid - 1] = duty
        self._send({"out": "duty", "connector": cid, "value": duty})

    def relay(self, cid, closed):
        self.relays[cid - 1] = closed
        self._send({"out": "relay", "connector": cid, "closed": closed})

    def led(self, pattern):
        self._send({"out": "led", "pattern": pattern})

    def led_flash(self, kind):
        self._send({"out": "led_flash", "kind": kind})

    def rcd_selftest(self, cid):
        """Pulse the RCD test winding: a healthy RCD trips. A tripped or faulty one fails."""
        return not self.faults_in.get("rcd")

    def unlock(self, cid):
        self._send({"out": "unlock", "connector": cid})
        return True

    def meter(self, cid):
        if self.faults_in.get("meter_lost"):
            return None
        return self.meters[cid - 1]

    def cable_amps(self, cid):
        return self.cable_a[cid - 1]

    def ems_limit(self):
        return self.ems

    def faults(self):
        f = self.faults_in
        weld = f.get("weld") and not any(self.relays)  # mains sensed behind an open relay
        return {
            "rcd": f.get("rcd", False),
            "weld": bool(weld),
            "overtemp": f.get("overtemp", False),
            "meter_lost": f.get("meter_lost", False),
            "pilot_short": f.get("pilot_short", False),
            "diode": f.get("diode", False) and any(s != "A" for s in self.ev_state),
        }

    def provisioning_window(self):
        if self.window_until < 0 or self.charger is None:
            return False
        return self.charger.clock.now_ms() < self.window_until

    def open_window(self, ms):
        """Open (or extend) the provisioning window for `ms` from now."""
        if self.charger is not None:
            self.window_until = max(self.window_until, self.charger.clock.now_ms() + ms)

    def device_secret(self):
        """The per-device provisioning secret (bytes): `--device-secret`, or sim.py's own."""
        text = self.args.get("device_secret")
        try:
            return bytes.fromhex(text) if text else None
        except ValueError:
            return None

    def reset(self):
        log.info("board", "restart" if self.exit_code else "shutdown")
        sys.exit(self.exit_code)

    async def close(self):
        """Deliver what is still queued for the world (the answer to `shutdown`) before exit."""
        if self._writer is not None:
            while self._out:
                self._writer.write(self._out.pop(0).encode() + b"\n")
            await self._writer.drain()

    # ---- the bus ---------------------------------------------------------------------------
    def _send(self, obj):
        if len(self._out) >= _OUT_QUEUE:
            self._out.pop(0)  # the world re-reads state on reconnect; never block the control loop
        self._out.append(json.dumps(obj))
        self._out_event.set()

    async def start(self, charger):
        """Connect to the simulator's bus and serve it (tasks kept for close())."""
        self.charger = charger
        port = int(os.getenv("EVSE_SIM_BUS") or 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        self._writer = writer
        self._tasks = [
            asyncio.create_task(self._bus_reader(reader)),
            asyncio.create_task(self._bus_writer(writer)),
        ]
        for i in range(self.connectors):  # tell the world our outputs after a (re)boot
            self.set_duty(i + 1, self.duty[i])
            self.relay(i + 1, self.relays[i])
        from provision.service import ProvService

        self.prov = ProvService(charger.store, self, charger, ProvLink(self))
        self._tasks.append(self.prov.start())

    async def _bus_writer(self, writer):
        while True:
            await self._out_event.wait()
            self._out_event.clear()
            while self._out:
                writer.write(self._out.pop(0).encode() + b"\n")
            await writer.drain()

    async def _bus_reader(self, reader):
        while True:
            line = await reader.readline()
            if not line:
                log.error("board", "simulator bus closed: stopping")
                sys.exit(1)
            try:
                msg = json.loads(line)
                self._on_bus(msg)
            except Exception as e:  # a bad bus line must not stop the firmware
                log.exception("board", "bus message failed", e)

    def _on_bus(self, msg):
        kind = msg.get("in")
        if kind == "connector":
            i = msg["connector"] - 1
            self.ev_state[i] = msg["ev_state"]
            self.cable_a[i] = msg["cable_a"]
        elif kind == "meter":
            i = msg["connector"] - 1
            self.meters[i] = msg
        elif kind == "faults":
            self.faults_in = msg
        elif kind == "ems":
            self.ems = msg["limit_a"]
        elif kind == "net":
            self.net_up = bool(msg["up"])
            log.info("board", "network %s", "up" if self.net_up else "down")
        elif kind == "tap":
            self.charger.tap(msg["uid"])
        elif kind == "button":
            if msg["ms"] >= _FACTORY_RESET_MS and self.prov is not None:
                self.prov.factory_reset("service button held {} ms".format(msg["ms"]))
            elif msg["ms"] >= _BUTTON_MIN_MS:
                self.window_until = self.charger.clock.now_ms() + _BUTTON_WINDOW_MS
                log.info("board", "service button: provisioning window open")
        elif msg.get("q") == "status":
            ans = self.charger.snapshot()
            ans["a"] = msg.get("id")
            self._send(ans)
        elif msg.get("q") == "shutdown":
            self._send({"a": msg.get("id"), "ok": True})
            self.charger.request_restart("shutdown")
            self.exit_code = 0
        elif kind in ("prov_open", "prov_data", "prov_close") and self.prov is not None:
            conn = msg["session"]
            if kind == "prov_open":
                self.prov.open(conn)
            elif kind == "prov_data":
                self.prov.data(conn, bytes.fromhex(msg["hex"]))
            else:
                self.prov.closed(conn)


def make_board(settings):
    """settings: dict from EVSE_SIM_ARGS (tools/sim.py)."""
    return SimBoard(settings, os.getenv("EVSE_STATE_DIR") or "state")
