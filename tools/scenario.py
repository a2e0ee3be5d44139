"""`make sim`: the lab CSMS, one simulated charger, one complete charging session, a timeline.

Starts tools/labcsms.py and tools/sim.py on free local ports, then plays: plug in, RFID tap,
the EV asks for charge, a few seconds of charging with energy counting, unplug. It prints one
timeline of what the charger shows (pilot state, PWM duty and amps, relay, LED, connector status)
and every OCPP message in and out, as the CSMS logged them. Exit 0 when the session completed as
OCPP 1.6 describes it, non-zero with the reason otherwise.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from labcsms import LabCSMSProcess  # noqa: E402

T0 = time.monotonic()
_print_lock = threading.Lock()


def out(kind, text):
    with _print_lock:
        print("%7.2fs  %-5s %s" % (time.monotonic() - T0, kind, text), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Failed(Exception):
    pass


class Sim:
    """tools/sim.py as a child process in its own process group, driven over its control port."""

    def __init__(self, url, cp_id, state_dir, log_file, extra=()):
        self.port = free_port()
        cmd = [sys.executable, str(ROOT / "tools" / "sim.py"), "--csms", url, "--id", cp_id,
               "--state-dir", state_dir, "--control-port", str(self.port),
               "--provision-port", str(free_port())] + list(extra)
        self.proc = subprocess.Popen(cmd, stdout=log_file, stderr=log_file, start_new_session=True)
        self._sock = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self._sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                self._file = self._sock.makefile("rwb")
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise Failed("the simulator exited at start (code %s)" % self.proc.returncode)
                time.sleep(0.1)
        raise Failed("the simulator's control port did not open")

    def request(self, req):
        self._file.write((json.dumps(req) + "\n").encode())
        self._file.flush()
        line = self._file.readline()
        if not line:
            raise Failed("the simulator closed its control port")
        return json.loads(line)

    def cmd(self, req):
        r = self.request(req)
        if not r.get("ok"):
            raise Failed("simulator refused %s: %s" % (req, r.get("error")))
        return r

    def stop(self):
        try:
            self.request({"cmd": "shutdown"})
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - stopping anyway
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Timeline:
    """Prints status changes of the charger and the CSMS's frame log as they happen."""

    def __init__(self, sim, csms_log):
        self.sim = sim
        self.csms_log = csms_log
        self.last = {}
        self.status = None
        self._pos = 0
        self.names = {}  # message id -> action, to name CALLRESULTs

    def poll(self):
        self._frames()
        st = self.sim.request({"cmd": "status"})
        if not st.get("ok"):
            return None
        self.status = st
        top = {k: st.get(k) for k in ("ocpp", "registration", "led")}
        for k, v in top.items():
            if self.last.get(k) != v:
                out("EVSE", "%s: %s" % (k, v))
                self.last[k] = v
        for c in st["connectors"]:
            key = "c%d" % c["id"]
            view = (c["pilot"], c["duty"], c["relay"], c["status"])
            if self.last.get(key) != view:
                amps = c.get("offered_a") or 0.0
                out("EVSE", "connector %d: pilot %s  duty %5.1f%% (%4.1f A)  relay %-6s status %s"
                    % (c["id"], c["pilot"], c["duty"] * 100, amps,
                       "closed" if c["relay"] else "open", c["status"]))
                self.last[key] = view
        return st

    def _frames(self):
        try:
            with open(self.csms_log) as f:
                f.seek(self._pos)
                data = f.read()
                end = data.rfind("\n") + 1
                self._pos += end
        except FileNotFoundError:
            return
        for line in data[:end].splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            msg = e.get("msg")
            if "dir" not in e or not isinstance(msg, list):
                if e.get("event") in ("violation", "auth_failed"):
                    out("CSMS", "%s %s" % (e["event"], e.get("detail", "")))
                continue
            arrow = "CP->CS" if e["dir"] == "in" else "CS->CP"
            if msg[0] == 2:
                self.names[msg[1]] = msg[2]
                text = "%s %s" % (msg[2], json.dumps(msg[3], separators=(",", ":")))
            elif msg[0] == 3:
                text = "%s.conf %s" % (self.names.get(msg[1], "?"),
                                        json.dumps(msg[2], separators=(",", ":")))
            else:
                text = "CALLERROR %s" % json.dumps(msg[2:], separators=(",", ":"))
            out("OCPP", "%s %s" % (arrow, text[:200]))


def wait(tl, pred, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = tl.poll()
        if st is not None and pred(st):
            return st
        time.sleep(0.05)
    raise Failed("timed out after %.0f s waiting for %s" % (timeout, what))


def conn(st):
    return st["connectors"][0]


def play(sim, tl, charge_s):
    wait(tl, lambda s: s["registration"] == "Accepted" and conn(s)["status"] == "Available",
         "BootNotification Accepted and connector Available", 30)
    out("STEP", "EV plugged in")
    sim.cmd({"cmd": "plug", "connector": 1})
    wait(tl, lambda s: conn(s)["status"] == "Preparing", "Preparing")
    out("STEP", "RFID card 04 A1 B2 C3 presented")
    sim.cmd({"cmd": "tap", "uid": "04A1B2C3"})
    wait(tl, lambda s: conn(s)["transaction_id"] is not None, "a transaction id from the CSMS")
    out("STEP", "EV ready to charge (pilot C)")
    sim.cmd({"cmd": "ev", "connector": 1, "state": "C"})
    st = wait(tl, lambda s: conn(s)["status"] == "Charging" and conn(s)["relay"], "Charging")
    e0 = conn(st)["energy_wh"]
    end = time.monotonic() + charge_s
    while time.monotonic() < end:
        tl.poll()
        time.sleep(0.1)
    st = tl.poll()
    out("STEP", "charged %d Wh at %d W; EV unplugged" % (conn(st)["energy_wh"] - e0,
                                                         conn(st)["power_w"]))
    sim.cmd({"cmd": "unplug", "connector": 1})
    wait(tl, lambda s: conn(s)["status"] == "Available" and s["queued_messages"] == 0,
         "Available with every transaction message delivered")
    time.sleep(0.3)
    tl.poll()


def verify(csms):
    """The session as the CSMS saw it: the Done-when of the foundation issue."""
    problems = []
    boots = csms.messages("CP1", "BootNotification")
    if not boots:
        problems.append("no BootNotification")
    statuses = [m["payload"]["status"] for m in csms.messages("CP1", "StatusNotification")
                if m["payload"]["connectorId"] == 1]
    seq = []
    for s in statuses:
        if not seq or seq[-1] != s:
            seq.append(s)
    want = ["Available", "Preparing", "Charging", "Finishing", "Available"]
    if seq != want:
        problems.append("StatusNotification sequence %s, expected %s" % (seq, want))
    starts = csms.messages("CP1", "StartTransaction")
    stops = csms.messages("CP1", "StopTransaction")
    if len(starts) != 1 or len(stops) != 1:
        problems.append("%d StartTransaction and %d StopTransaction" % (len(starts), len(stops)))
    else:
        m0 = starts[0]["payload"]["meterStart"]
        m1 = stops[0]["payload"]["meterStop"]
        if not m1 > m0:
            problems.append("meterStop %s is not above meterStart %s" % (m1, m0))
        else:
            out("CHECK", "meterStart %d Wh, meterStop %d Wh: %d Wh charged" % (m0, m1, m1 - m0))
    v = csms.violations()
    if v:
        problems.append("%d messages failed the CSMS's validation: %s" % (len(v), v[:3]))
    out("CHECK", "StatusNotification %s" % " -> ".join(seq))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--charge-seconds", type=float, default=5.0)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="evse-sim-")
    csms_log = os.path.join(work, "csms.jsonl")
    sim_log = open(os.path.join(work, "sim.log"), "wb")
    csms = sim = None
    code = 0
    try:
        csms_err = open(os.path.join(work, "csms.log"), "wb")
        csms = LabCSMSProcess(log_path=csms_log, stderr=csms_err)
        csms.start()
        out("CSMS", "lab CSMS listening at %s (frames in %s)" % (csms.url, csms_log))
        sim = Sim(csms.url, "CP1", os.path.join(work, "state"), sim_log,
                  ["--config", "MeterValueSampleInterval=2", "--config", "HeartbeatInterval=30"])
        out("SIM", "simulated charger CP1 started (log in %s)" % sim_log.name)
        tl = Timeline(sim, csms_log)
        play(sim, tl, args.charge_seconds)
        problems = verify(csms)
        if problems:
            for p in problems:
                out("FAIL", p)
            code = 1
        else:
            out("DONE", "complete charging session: OK")
    except Failed as e:
        out("FAIL", str(e))
        out("FAIL", "simulator log: %s" % sim_log.name)
        code = 2
    finally:
        if sim is not None:
            sim.stop()
        if csms is not None:
            csms.stop()
        sim_log.close()
    if code:
        with open(sim_log.name, errors="replace") as f:
            tail = f.read().splitlines()[-30:]
        print("--- last simulator log lines ---\n" + "\n".join(tail))
    return code


if __name__ == "__main__":
    sys.exit(main())
