"""Shared pieces of the benchmarks (tools/bench.py): lab processes, waits, MicroPython runs.

`Lab` starts lab CSMS servers and simulators for one benchmark and stops them all; `Control` is a
persistent connection to the lab CSMS control port; `run_mp` runs a bench/ script in the Unix port.
`NotAvailable(reason)` makes a benchmark report "n/a: reason" instead of a number.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "tools", ROOT / "host_tests"):
    sys.path.insert(0, str(_p))

from labcsms import LabCSMSProcess  # noqa: E402

CP = "CP1"
PASSWORD = "bench-Passw0rd"
UID = "04A1B2C3"  # the RFID card: idTag C3B2A104
MAX_MESSAGE = 8192  # lib/net/ws.py DEFAULT_MAX_MESSAGE


class NotAvailable(Exception):
    """A prerequisite is missing: the benchmark reports n/a with this reason."""


def say(text):
    print("bench: " + text, file=sys.stderr, flush=True)


def micropython():
    return os.environ.get("MICROPYTHON") or str(ROOT / ".venv" / "bin" / "micropython")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def conn(st, i=1):
    return st["connectors"][i - 1]


class Lab:
    """Lab CSMS servers and simulators started by one benchmark, all stopped by close()."""

    def __init__(self, work, name):
        from sim_fixtures import SimFactory

        self.dir = Path(work) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sims = SimFactory(self.dir / "sims")
        self.servers = []

    def csms(self, **options):
        n = len(self.servers)
        err = open(self.dir / "labcsms-{}.err".format(n), "w")
        csms = LabCSMSProcess(self.dir / "labcsms-{}.jsonl".format(n), stderr=err, quiet=True,
                              **options)
        self.servers.append(csms)
        return csms.start()

    def sim(self, **kw):
        return self.sims(**kw)

    def close(self):
        self.sims.cleanup()
        for csms in self.servers:
            csms.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Control:
    """One persistent connection to the lab CSMS control port (less overhead per request)."""

    def __init__(self, csms):
        self.sock = socket.create_connection(("127.0.0.1", csms.control_port), timeout=120)
        self.f = self.sock.makefile("rwb")

    def request(self, req):
        self.f.write(json.dumps(req).encode() + b"\n")
        self.f.flush()
        answer = json.loads(self.f.readline())
        if not answer.get("ok"):
            raise RuntimeError("lab CSMS: {}".format(answer.get("error")))
        return answer

    def close(self):
        self.sock.close()


def wait(pred, timeout, what, poll=0.05):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = pred()
        except (KeyError, IndexError, TypeError, OSError, ValueError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(poll)


def status(sim):
    try:
        return sim.status(timeout=10)
    except (OSError, ValueError):
        return {"ok": False}


def cmd(sim, req):
    r = sim.request(req)
    if not r.get("ok"):
        raise RuntimeError("simulator refused {}: {}".format(req, r.get("error")))


def call_code(result):
    """'ok' for a CALLRESULT, else the CALLERROR code."""
    return "ok" if "result" in result else result["call_error"]["code"]



def control_period_ms():
    text = (ROOT / "lib" / "charger" / "app.py").read_text()
    m = re.search(r"^_CONTROL_MS = const\((\d+)\)", text, re.M)
    return int(m.group(1)) if m else 20


def run_mp(script, *args, heap="4M", timeout=600):
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(ROOT / "lib"), str(ROOT)]))
    p = subprocess.run([micropython(), "-X", "heapsize=" + heap, str(ROOT / "bench" / script)]
                       + [str(a) for a in args], capture_output=True, text=True, env=env,
                       timeout=timeout, cwd=str(ROOT))
    if p.returncode != 0:
        raise RuntimeError("{} failed: {}".format(script, p.stderr[-2000:]))
    return json.loads(p.stdout.strip().splitlines()[-1])
