"""A fake firmware (CPython) for testing tools/sim.py without MicroPython.

Launched by sim.py through its test hook `SIM_FIRMWARE_CMD`. It connects to the hardware bus, keeps
the world it is told about, drives duty and relay like a minimal charger (offer the smallest of
cable, board rating and EMS limit; close the relay in state C/D when that is at least 6 A) and
answers `status` with the contract's fields plus a `fake` object holding everything it saw.
Magic card taps steer it: DEAD0075 exits with 75 (restart request), DEADDEAD exits with 3 (crash),
DEAD0001 makes it ignore `shutdown` from then on, DEAD0BAD sends malformed bus lines.
The provisioning stream is echoed back prefixed with `echo:`; a client sending `close` is closed.
"""

import json
import os
import socket
import sys

RESTART_UID = "DEAD0075"
CRASH_UID = "DEADDEAD"
STUBBORN_UID = "DEAD0001"  # from then on, ignore shutdown
GARBAGE_UID = "DEAD0BAD"  # send malformed bus lines
GARBAGE = [
    b"not json", b"[1, 2]", b'{"a": [1]}', b'{"a": 999999}', b'{"out": "mystery"}',
    b'{"out": "duty", "connector": 9, "value": 0.5}',
    b'{"out": "duty", "connector": 1, "value": 2}',
    b'{"out": "relay", "connector": 1, "closed": "yes"}', b'{"out": "led", "pattern": 5}',
    b'{"out": "prov_data", "session": [1], "hex": "zz"}', b'{"out": "prov_close"}', b"\xff",
]


class Fake:
    def __init__(self):
        self.args = json.loads(os.environ["EVSE_SIM_ARGS"])
        n = self.args["connectors"]
        self.conn = {i: {"ev_state": None, "cable_a": None, "duty": None, "relay": None}
                     for i in range(1, n + 1)}
        self.meter = {}
        self.meter_count = 0
        self.faults = None
        self.ems = "unset"
        self.net = None
        self.taps = []
        self.buttons = []
        self.prov = []
        self.led = "booting"
        self.stubborn = False
        self.sock = socket.create_connection(("127.0.0.1", int(os.environ["EVSE_SIM_BUS"])))
        self.file = self.sock.makefile("rwb")

    def send(self, msg):
        self.file.write(json.dumps(msg).encode() + b"\n")
        self.file.flush()

    def limit(self):
        limits = [self.args["max_current"]]
        if self.ems not in (None, "unset"):
            limits.append(self.ems)
        return limits

    def drive(self):
        for cid, c in self.conn.items():
            limit = min(self.limit() + [c["cable_a"] or 0])
            offering = limit >= 6 and c["ev_state"] not in ("A", None)
            duty = round(limit / 60.0, 4) if offering else 1.0
            relay = duty < 1.0 and c["ev_state"] in ("C", "D")
            if duty != c["duty"]:
                c["duty"] = duty
                self.send({"out": "duty", "connector": cid, "value": duty})
            if relay != c["relay"]:
                c["relay"] = relay
                self.send({"out": "relay", "connector": cid, "closed": relay})

    def status(self, qid):
        conns = []
        for cid, c in self.conn.items():
            m = self.meter.get(cid, {})
            conns.append({"id": cid, "status": "Available", "pilot": c["ev_state"],
                          "duty": c["duty"], "relay": c["relay"], "transaction_id": None,
                          "id_tag": None, "energy_wh": m.get("energy_wh"),
                          "power_w": m.get("power_w"), "meter": m})
        env = {k: os.environ.get(k) for k in ("EVSE_BOARD", "EVSE_STATE_DIR", "EVSE_SIM_BUS",
                                              "EVSE_SIM_GATEWAY", "MICROPYPATH")}
        fake = {"pid": os.getpid(), "args": self.args, "env": env, "faults": self.faults,
                "ems": self.ems, "net": self.net, "taps": self.taps, "buttons": self.buttons,
                "prov": self.prov, "meter_count": self.meter_count}
        self.send({"a": qid, "ocpp": "Offline", "registration": None, "led": self.led,
                   "limit_a": float(min(self.limit())), "queued_messages": 0, "heap_free": 1,
                   "heap_used": 1, "connectors": conns, "fake": fake})

    def handle(self, msg):
        kind = msg.get("in")
        if kind == "connector":
            c = self.conn[msg["connector"]]
            c["ev_state"], c["cable_a"] = msg["ev_state"], msg["cable_a"]
        elif kind == "meter":
            self.meter[msg["connector"]] = msg
            self.meter_count += 1
        elif kind == "faults":
            self.faults = {k: v for k, v in msg.items() if k != "in"}
        elif kind == "ems":
            self.ems = msg["limit_a"]
        elif kind == "net":
            self.net = msg["up"]
        elif kind == "tap":
            self.taps.append(msg["uid"])
            if msg["uid"] == RESTART_UID:
                sys.exit(75)
            if msg["uid"] == CRASH_UID:
                sys.exit(3)
            self.stubborn = self.stubborn or msg["uid"] == STUBBORN_UID
            if msg["uid"] == GARBAGE_UID:
                self.file.write(b"\n".join(GARBAGE) + b"\n")
        elif kind == "button":
            self.buttons.append(msg["ms"])
        elif kind in ("prov_open", "prov_close"):
            self.prov.append([kind, msg["session"]])
        elif kind == "prov_data":
            data = bytes.fromhex(msg["hex"])
            self.prov.append(["prov_data", msg["session"], data.decode()])
            if data.strip() == b"close":
                self.send({"out": "prov_close", "session": msg["session"]})
            else:
                self.send({"out": "prov_data", "session": msg["session"],
                           "hex": (b"echo:" + data).hex()})
        elif msg.get("q") == "status":
            self.status(msg["id"])
        elif msg.get("q") == "shutdown" and not self.stubborn:
            self.send({"a": msg["id"]})
            sys.stderr.write("fake firmware: shutdown\n")
            sys.exit(0)
        self.drive()

    def run(self):
        sys.stderr.write("fake firmware up, first_boot {}\n".format(self.args["first_boot"]))
        sys.stderr.flush()
        self.send({"out": "led", "pattern": self.led})
        for line in self.file:
            self.handle(json.loads(line))
        sys.exit(1)  # the bus went away


if __name__ == "__main__":
    Fake().run()
