#!/usr/bin/env python3
"""make bench: measure the firmware and print one table (also written to bench/results.json).

Eight benchmarks, each against the real firmware (the simulator, tools/sim.py) and the lab CSMS:
  1. the smallest `-X heapsize` at which the reference scenario completes (bisection): boot over
     wss with Basic auth, an RFID session with MeterValues, a smart-charging profile, an offline
     period with a session, reconnect and replay;
  2. peak gc.mem_alloc() during that scenario (gc.threshold 4 KB, sampled every 1 ms), and
     heap_used after gc.collect() at idle;
  3. the worst asyncio loop stall (lateness of a 1 ms monitor task) while the CSMS sends a
     maximum-size SendLocalList, GetConfiguration of all keys and 50 TriggerMessages;
  4. pilot event -> relay command latency (simulated clock: bench/latency_mp.py; wall clock:
     the simulator's --trace);
  5. incoming CALL throughput of our charger vs the `ocpp` package's ChargePoint (CPython), the
     same message mix in the same run, as a ratio;
  6. boot to Available, network excluded;
  7. the firmware as .mpy files (mpy-cross), per package;
  8. the offline transaction queue capacity (bench/queue_mp.py through store.queue).
Benchmarks report, they never fail on a number: a missing prerequisite (a feature not built yet,
answered NotImplemented) makes that line "n/a: <reason>" and the rest goes on. Exit status 1 only
when a benchmark itself broke (a traceback, printed).

    python tools/bench.py [--only 1,3] [--quick] [--offline-s 120] [--json bench/results.json]
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "tools", ROOT / "host_tests"):
    sys.path.insert(0, str(_p))

from labcsms import LabCSMSProcess  # noqa: E402

CP = "CP1"
PASSWORD = "bench-Passw0rd"
UID = "04A1B2C3"  # the RFID card: idTag C3B2A104
MAX_MESSAGE = 8192  # lib/net/ws.py DEFAULT_MAX_MESSAGE
HEAP_LO_WK, HEAP_HI_WK = 32, 512  # bisection range in wK: 64K..1024K on a 64-bit Unix port
MIX = [  # incoming CALL mix of benchmark 5
    ("GetConfiguration", {"key": ["HeartbeatInterval"]}),
    ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "3600"}),
    ("TriggerMessage", {"requestedMessage": "Heartbeat"}),
    ("DataTransfer", {"vendorId": "bench", "messageId": "ping", "data": "x"}),
]
TITLES = {
    1: "smallest heap for the reference scenario",
    2: "heap: peak during the scenario / idle after gc",
    3: "worst loop stall under a CSMS burst",
    4: "pilot event -> relay command",
    5: "incoming CALL throughput, ours / ocpp package",
    6: "boot to Available (network excluded)",
    7: "firmware size (.mpy, mpy-cross)",
    8: "offline queue capacity",
}


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


# ---- 1 and 2: the reference scenario ----------------------------------------------------------


class ScenarioFailed(Exception):
    pass


def run_scenario(work, pki, heap, offline_s, bench=()):
    """The reference scenario once; returns its data dict or raises ScenarioFailed(reason)."""
    notes = []
    with Lab(work, "scenario-{}-{}".format(heap, int(time.time() * 1000) % 100000)) as lab:
        csms = lab.csms(tls_cert=pki.cert, tls_key=pki.key, auth={CP: PASSWORD})
        extra = []
        for item in bench:
            extra += ["--bench", item]
        sim = lab.sim(csms="wss://localhost:{}/ocpp".format(csms.ws_port), cp_id=CP,
                      password=PASSWORD, ca=pki.ca_cert, heapsize=heap, extra_args=extra,
                      config={"MeterValueSampleInterval": "2", "ReconnectBackoffMin": "1",
                              "ReconnectBackoffMax": "2", "TransactionMessageRetryInterval": "1"},
                      wait_firmware=False)

        def check_alive():
            log = sim.log()
            if "firmware crashed" in log or "MemoryError" in log:
                lines = [ln for ln in log.splitlines() if "Error" in ln or "crashed" in ln]
                raise ScenarioFailed("firmware crashed: " + (lines[-1] if lines else "?"))

        def until(pred, timeout, what):
            deadline = time.monotonic() + timeout
            while True:
                check_alive()
                st = status(sim)
                try:
                    if st.get("ok") and pred(st):
                        return st
                except (KeyError, IndexError, TypeError):
                    pass
                if time.monotonic() > deadline:
                    raise ScenarioFailed("timed out: {} (last {})".format(
                        what, {k: st.get(k) for k in ("ocpp", "registration", "last_error")}))
                time.sleep(0.1)

        t0 = time.monotonic()
        until(lambda s: s["registration"] == "Accepted" and conn(s)["status"] == "Available", 90,
              "boot over wss with Basic auth")
        # A smart-charging profile, once the firmware has smart charging.
        profile = {"connectorId": 0, "csChargingProfiles": {
            "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative", "chargingSchedule": {
                "chargingRateUnit": "A", "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 16.0}]}}}
        r = csms.call(CP, "SetChargingProfile", profile)
        smart = call_code(r) if "call_error" in r else r["result"].get("status")
        if smart != "Accepted":
            notes.append("smart-charging step n/a: SetChargingProfile {}".format(smart))
        # An RFID session with MeterValues.
        cmd(sim, {"cmd": "plug", "connector": 1})
        until(lambda s: conn(s)["status"] == "Preparing", 20, "Preparing")
        cmd(sim, {"cmd": "tap", "uid": UID})
        until(lambda s: conn(s)["transaction_id"] is not None, 30, "transaction started")
        cmd(sim, {"cmd": "ev", "connector": 1, "state": "C"})
        st = until(lambda s: conn(s)["relay"], 30, "charging")
        limit_seen = st.get("limit_a")
        wait(lambda: len(csms.messages(CP, "MeterValues")) >= 2, 30, "MeterValues online")
        cmd(sim, {"cmd": "unplug", "connector": 1})
        wait(lambda: csms.messages(CP, "StopTransaction"), 30, "StopTransaction online")
        until(lambda s: conn(s)["status"] == "Available", 20, "Available after the session")
        # Offline period with a session: an offline tap when offline authorisation exists,
        # else (logged in the notes) a free-vend session.
        for key in ("LocalAuthorizeOffline", "AllowOfflineTxForUnknownId"):
            csms.call(CP, "ChangeConfiguration", {"key": key, "value": "true"})
        cmd(sim, {"cmd": "net", "up": False})
        until(lambda s: s["ocpp"] != "Connected", 30, "offline")
        q0 = status(sim).get("queued_messages", 0)
        cmd(sim, {"cmd": "plug", "connector": 1})
        until(lambda s: conn(s)["status"] == "Preparing", 20, "Preparing offline")
        cmd(sim, {"cmd": "tap", "uid": UID})
        try:
            until(lambda s: s["queued_messages"] > q0, 8, "offline start")
        except ScenarioFailed:
            notes.append("offline tap refused (no offline authorisation yet): free vend instead")
            cmd(sim, {"cmd": "unplug", "connector": 1})
            cmd(sim, {"cmd": "net", "up": True})
            until(lambda s: s["ocpp"] == "Connected", 30, "back online for AuthEnabled")
            csms.call(CP, "ChangeConfiguration", {"key": "AuthEnabled", "value": "false"})
            cmd(sim, {"cmd": "net", "up": False})
            until(lambda s: s["ocpp"] != "Connected", 30, "offline again")
            q0 = status(sim).get("queued_messages", 0)
            cmd(sim, {"cmd": "plug", "connector": 1})
            until(lambda s: s["queued_messages"] > q0, 20, "offline free-vend start")
        offline_started = time.monotonic()
        cmd(sim, {"cmd": "ev", "connector": 1, "state": "C"})
        until(lambda s: conn(s)["relay"], 30, "charging offline")
        time.sleep(max(0.0, offline_s - (time.monotonic() - offline_started)))
        cmd(sim, {"cmd": "unplug", "connector": 1})
        st = until(lambda s: conn(s)["status"] == "Available", 20, "Available offline")
        queued = st["queued_messages"]
        # Reconnect and replay.
        cmd(sim, {"cmd": "net", "up": True})
        until(lambda s: s["ocpp"] == "Connected" and s["queued_messages"] == 0, 120,
              "reconnect and replay")
        if len(csms.messages(CP, "StopTransaction")) < 2:
            raise ScenarioFailed("the offline session's StopTransaction never arrived")
        time.sleep(2.0)  # idle
        st = until(lambda s: True, 10, "idle status")
        violations = csms.violations()
        if violations:
            raise ScenarioFailed("protocol violations: {}".format(violations[:2]))
        if st.get("firmware_crashes") or st.get("firmware_restarts"):
            raise ScenarioFailed("firmware restarted {} times".format(st["firmware_restarts"]))
        return {"heap_used_idle": st["heap_used"], "heap_peak": st.get("heap_peak"),
                "heap_total": st["heap_used"] + st["heap_free"],
                "loop_stall_max_ms": st.get("loop_stall_max_ms"), "queued_offline": queued,
                "limit_a_during_session": limit_seen, "duration_s": time.monotonic() - t0,
                "notes": notes}


def bench_heap(ctx):
    """1 and 2: bisect the heap in wK steps, then the full scenario once with the heap peak."""
    from certs import make_server_pki

    pki = make_server_pki(Path(ctx.work) / "pki")
    step = 16 if ctx.args.quick else 8
    short = ctx.args.bisect_offline_s
    tries = []

    def passes(wk, offline_s, bench=()):
        say("scenario at {}wK ({} s offline)...".format(wk, offline_s))
        try:
            data = run_scenario(ctx.work, pki, "{}wK".format(wk), offline_s, bench)
            tries.append((wk, "ok"))
            say("  {}wK completes".format(wk))
            return data
        except ScenarioFailed as e:
            tries.append((wk, str(e)[:160]))
            say("  {}wK fails: {}".format(wk, str(e)[:200]))
            return None

    lo, hi = HEAP_LO_WK, HEAP_HI_WK
    if not passes(hi, short):
        raise NotAvailable("the scenario does not complete even at {}wK: {}".format(
            hi, tries[-1][1]))
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if mid <= lo:
            break
        if passes(mid, short):
            hi = mid
        else:
            lo = mid
    full = None
    for _ in range(3):  # the full scenario at the minimum; a step up if it does not complete
        full = passes(hi, ctx.args.offline_s, ("monitor", "gc_threshold=4096"))
        if full is not None:
            break
        hi += step
    if full is None:
        raise NotAvailable("the full scenario failed near {}wK".format(hi))
    word = 8 if sys.maxsize > 2**32 else 4
    raw_k = hi * word // 4
    notes = full["notes"]
    one = {"value": hi, "unit": "wK",
           "text": "{}wK = {}K on this {}-bit port (-X heapsize={}wK); ~{}K on a 32-bit ESP32".format(
               hi, raw_k, word * 8, hi, hi),
           "data": {"heapsize_wk": hi, "heapsize_raw_k": raw_k, "word_bytes": word,
                    "step_wk": step, "bisection": tries, "offline_s": ctx.args.offline_s,
                    "bisection_offline_s": short},
           "note": "; ".join(notes)}
    two = {"value": full["heap_peak"], "unit": "B",
           "text": "peak {} B, idle {} B (at {}wK; gc.threshold 4 KB, 1 ms samples)".format(
               full["heap_peak"], full["heap_used_idle"], hi),
           "data": full, "note": "; ".join(notes)}
    return {1: one, 2: two}


# ---- 3: loop stall under a CSMS burst -----------------------------------------------------------


def _local_list(n, version=1):
    return {"listVersion": version, "updateType": "Full", "localAuthorizationList": [
        {"idTag": "B{:07d}".format(i), "idTagInfo": {"status": "Accepted",
                                                     "expiryDate": "2030-01-01T00:00:00Z"}}
        for i in range(n)]}


def _fit_local_list(limit):
    """The longest SendLocalList (at most `limit` entries) whose CALL fits the 8192-byte bound."""
    n = limit
    while n > 0:
        frame = json.dumps([2, "b-sll", "SendLocalList", _local_list(n)], separators=(",", ":"))
        if len(frame.encode()) <= MAX_MESSAGE:
            return n, frame
        n -= 1
    return 0, None


def _window(status_before, status_after, gap_s):
    """Worst per-second lateness inside (before + gap, after], from the monitor's ring."""
    first = status_before["uptime_ms"] // 1000 + gap_s
    last = status_after["uptime_ms"] // 1000
    ring = status_after.get("loop_stall_by_s") or []
    values = [ms for sec, ms in ring if first <= sec <= last]
    return max(values) if values else 0.0


def bench_stall(ctx):
    with Lab(ctx.work, "stall") as lab:
        csms = lab.csms()
        sim = lab.sim(csms=csms.url, cp_id=CP, extra_args=["--bench", "monitor"],
                      config={"MeterValueSampleInterval": "0"})
        wait(lambda: status(sim).get("registration") == "Accepted", 60, "boot")
        keys = csms.call(CP, "GetConfiguration", {})["result"]["configurationKey"]
        values = {k["key"]: k.get("value") for k in keys}
        notes = []
        limit = values.get("SendLocalListMaxLength")
        if limit is None:
            notes.append("SendLocalListMaxLength not declared: list sized to the frame bound")
            limit = 10000
        n, sll = _fit_local_list(int(limit))
        frames = [(sll, "SendLocalList")]
        frames.append((json.dumps([2, "b-gc", "GetConfiguration", {}]), "GetConfiguration"))
        for i in range(50):
            msg = ("Heartbeat", "StatusNotification")[i % 2]
            payload = {"requestedMessage": msg}
            if msg == "StatusNotification":
                payload["connectorId"] = 1
            frames.append((json.dumps([2, "b-tm{}".format(i), "TriggerMessage", payload]),
                           "TriggerMessage"))
        ctl = Control(csms)
        try:
            s0 = status(sim)
            time.sleep(3.2)
            s1 = status(sim)
            idle = _window(s0, s1, 2)
            time.sleep(2.2)
            t = time.monotonic()
            for text, _ in frames[:-1]:
                ctl.request({"cmd": "raw", "cp": CP, "text": text})
            last = json.loads(frames[-1][0])[1]
            ctl.request({"cmd": "raw", "cp": CP, "text": frames[-1][0], "wait_id": last,
                         "timeout": 120})
            burst_s = time.monotonic() - t
            time.sleep(1.5)
            s2 = status(sim)
        finally:
            ctl.close()
        worst = _window(s1, s2, 2)
        answers = {}
        for m in csms.read_log():
            msg = m.get("msg")
            if m.get("dir") == "in" and isinstance(msg, list) and len(msg) > 2 \
                    and isinstance(msg[1], str) and msg[1].startswith("b-"):
                action = {"b-sll": "SendLocalList", "b-gc": "GetConfiguration"}.get(
                    msg[1], "TriggerMessage")
                code = "ok" if msg[0] == 3 else msg[2]
                answers.setdefault(action, {}).setdefault(code, 0)
                answers[action][code] += 1
        for action, codes in sorted(answers.items()):
            if "NotImplemented" in codes:
                notes.append("{} n/a (NotImplemented)".format(action))
        return {3: {"value": worst, "unit": "ms",
                    "text": "{:.1f} ms (idle {:.1f} ms; burst of {} CALLs in {:.2f} s)".format(
                        worst, idle, len(frames), burst_s),
                    "data": {"burst_worst_ms": worst, "idle_worst_ms": idle,
                             "burst_s": burst_s, "calls": len(frames),
                             "send_local_list_entries": n, "send_local_list_bytes": len(sll),
                             "get_configuration_keys": len(keys), "answers": answers},
                    "note": "; ".join(notes)}}


# ---- 4: pilot -> relay latency ------------------------------------------------------------------


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


def bench_latency(ctx):
    period = control_period_ms()
    with tempfile.TemporaryDirectory() as d:
        simclock = run_mp("latency_mp.py", period, d)
    runs = 5 if ctx.args.quick else 20
    trace = Path(ctx.work) / "latency.trace"
    with Lab(ctx.work, "latency") as lab:
        csms = lab.csms()
        sim = lab.sim(csms=csms.url, cp_id=CP, extra_args=["--trace", str(trace)],
                      config={"AuthEnabled": "false", "MeterValueSampleInterval": "0"})
        wait(lambda: conn(status(sim))["status"] == "Available", 60, "boot")
        for _ in range(runs):
            cmd(sim, {"cmd": "plug", "connector": 1})
            cmd(sim, {"cmd": "ev", "connector": 1, "state": "C"})
            wait(lambda: conn(status(sim))["relay"], 30, "relay closed")
            time.sleep(0.2)
            cmd(sim, {"cmd": "unplug", "connector": 1})
            wait(lambda: conn(status(sim))["status"] == "Available"
                 and not conn(status(sim))["relay"], 30, "Available")
    events = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    wall = []
    pending = None
    for e in events:
        if e["ev"] == "control" and e["req"].get("cmd") == "unplug":
            pending = e["t"]
        elif (pending is not None and e["ev"] == "out" and e["msg"].get("out") == "relay"
              and e["msg"].get("closed") is False):
            wall.append((e["t"] - pending) * 1000)
            pending = None
    if not wall:
        raise RuntimeError("no unplug -> relay open pair in the trace")
    sim_ms = simclock["unplug_open_ms"]
    text = "unplug -> open: <= {} ms simulated (one {} ms cycle); wall median {:.1f} ms, " \
           "max {:.1f} ms".format(sim_ms["max"], period, statistics.median(wall), max(wall))
    return {4: {"value": sim_ms["max"], "unit": "ms", "text": text,
                "data": {"simulated": simclock, "wall_unplug_open_ms": {
                    "median": statistics.median(wall), "max": max(wall), "min": min(wall),
                    "runs": len(wall)}}, "note": ""}}


# ---- 5: incoming CALL throughput vs the ocpp package ------------------------------------------


def ocpp_peer(url, cp_id):
    """A charger built on the `ocpp` package (CPython) answering the benchmark-5 mix."""
    import asyncio

    import websockets
    from ocpp.routing import after, on
    from ocpp.v16 import ChargePoint, call, call_result

    keys = {"HeartbeatInterval": "300"}

    class Peer(ChargePoint):
        @on("GetConfiguration")
        def on_get_configuration(self, key=None, **_):
            wanted = key or list(keys)
            return call_result.GetConfiguration(
                configuration_key=[{"key": k, "readonly": False, "value": keys[k]}
                                   for k in wanted if k in keys],
                unknown_key=[k for k in wanted if k not in keys] or None)

        @on("ChangeConfiguration")
        def on_change_configuration(self, key, value, **_):
            if key not in keys:
                return call_result.ChangeConfiguration(status="NotSupported")
            keys[key] = value
            return call_result.ChangeConfiguration(status="Accepted")

        @on("TriggerMessage")
        def on_trigger_message(self, requested_message, **_):
            ok = requested_message == "Heartbeat"
            return call_result.TriggerMessage(status="Accepted" if ok else "NotImplemented")

        @after("TriggerMessage")
        def after_trigger_message(self, requested_message, **_):
            if requested_message == "Heartbeat":  # a task: start() must keep reading
                self.tasks.append(asyncio.ensure_future(self.call(call.Heartbeat())))

        @on("DataTransfer")
        def on_data_transfer(self, **_):
            return call_result.DataTransfer(status="UnknownVendorId")

    async def run():
        async with websockets.connect("{}/{}".format(url, cp_id),
                                      subprotocols=["ocpp1.6"]) as ws:
            cp = Peer(cp_id, ws)
            cp.tasks = []
            reader = asyncio.ensure_future(cp.start())
            await cp.call(call.BootNotification(charge_point_model="ocpp-peer",
                                                charge_point_vendor="bench"))
            await reader

    asyncio.run(run())


def _sequential(ctl, cp, rounds):
    """One CALL at a time through the lab CSMS's `call` (request and answer validated)."""
    t = time.monotonic()
    codes = {}
    for _ in range(rounds):
        for action, payload in MIX:
            r = ctl.request({"cmd": "call", "cp": cp, "action": action, "payload": payload,
                             "timeout": 30})
            code = call_code(r)
            codes.setdefault(action, {}).setdefault(code, 0)
            codes[action][code] += 1
    return rounds * len(MIX), time.monotonic() - t, codes


class BurstCSMS:
    """A minimal CSMS (websockets, in a thread) that sends CALLs back to back and times them.

    The lab CSMS's control port costs about a millisecond per frame, more than a charger needs
    to answer one; this server keeps the CSMS out of the measurement. It answers the chargers'
    own CALLs (boot, status, heartbeat) with minimal valid results.
    """

    ANSWERS = {"BootNotification": lambda: {"currentTime": _now(), "interval": 300,
                                             "status": "Accepted"},
               "Heartbeat": lambda: {"currentTime": _now()},
               "DataTransfer": lambda: {"status": "UnknownVendorId"}}

    def __init__(self):
        import asyncio
        import threading

        self.asyncio = asyncio
        self.loop = asyncio.new_event_loop()
        self.links = {}  # cp id -> (websocket, queue of answers to our CALLs)
        self.n = 0
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.port = self._run(self._start())

    def _run(self, coro, timeout=120):
        return self.asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self):
        from websockets.asyncio.server import serve

        self.server = await serve(self._handle, "127.0.0.1", 0, subprotocols=["ocpp1.6"],
                                  max_size=None, ping_interval=None)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, ws):
        cp = ws.request.path.rstrip("/").rsplit("/", 1)[-1]
        answers = self.asyncio.Queue()
        self.links[cp] = (ws, answers)
        async for text in ws:
            msg = json.loads(text)
            if msg[0] == 2:
                result = self.ANSWERS.get(msg[2], dict)()
                await ws.send(json.dumps([3, msg[1], result]))
            else:
                answers.put_nowait(msg)

    def connected(self, cp):
        return cp in self.links

    def burst(self, cp, rounds):
        """Send the mix `rounds` times back to back; (calls, seconds, answer codes)."""
        return self._run(self._burst(cp, rounds))

    async def _burst(self, cp, rounds):
        ws, answers = self.links[cp]
        frames = []
        for _ in range(rounds):
            for action, payload in MIX:
                self.n += 1
                frames.append(json.dumps([2, "tp{}".format(self.n), action, payload]))
        t = time.monotonic()
        for text in frames:
            await ws.send(text)
        codes = {}
        for _ in frames:
            msg = await self.asyncio.wait_for(answers.get(), 60)
            code = "ok" if msg[0] == 3 else msg[2]
            codes[code] = codes.get(code, 0) + 1
        return len(frames), time.monotonic() - t, codes

    def close(self):
        async def stop():
            self.server.close()

        self._run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _peer(url, cp, log_path):
    log = open(log_path, "w")
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--ocpp-peer", url,
                             cp], stdout=log, stderr=log, start_new_session=True)


def bench_throughput(ctx):
    rounds = 30 if ctx.args.quick else 120
    burst = BurstCSMS()
    peers = []
    try:
        with Lab(ctx.work, "throughput") as lab:
            # Back to back through the burst CSMS: the number reported.
            url = "ws://127.0.0.1:{}/ocpp".format(burst.port)
            sim_b = lab.sim(csms=url, cp_id=CP, config={"MeterValueSampleInterval": "0"})
            peers.append(_peer(url, "PY1", Path(lab.dir) / "peer-burst.log"))
            wait(lambda: burst.connected(CP) and burst.connected("PY1"), 30, "burst links")
            time.sleep(1.0)  # boot traffic over
            totals = {CP: [0, 0.0], "PY1": [0, 0.0]}
            burst_codes = {}
            for who in (CP, "PY1"):  # warm-up
                burst.burst(who, 3)
            for _ in range(3):  # interleaved batches: both see the same machine load
                for who in (CP, "PY1"):
                    n, dt, burst_codes[who] = burst.burst(who, rounds // 3)
                    totals[who][0] += n
                    totals[who][1] += dt
            sim_b.stop()
            # One at a time through the lab CSMS (requests and answers validated): context.
            csms = lab.csms()
            sim = lab.sim(csms=csms.url, cp_id=CP, config={"MeterValueSampleInterval": "0"})
            peers.append(_peer(csms.url, "PY1", Path(lab.dir) / "peer-lab.log"))
            wait(lambda: status(sim).get("registration") == "Accepted", 60, "boot")
            csms.wait_connected("PY1", timeout=20)
            ctl = Control(csms)
            seq = {CP: [0, 0.0], "PY1": [0, 0.0]}
            codes = {}
            for who in (CP, "PY1"):
                _sequential(ctl, who, 2)
            for _ in range(3):
                for who in (CP, "PY1"):
                    n, dt, codes[who] = _sequential(ctl, who, max(2, rounds // 12))
                    seq[who][0] += n
                    seq[who][1] += dt
            ctl.close()
            violations = csms.violations(CP)
    finally:
        for peer in peers:
            peer.terminate()
            peer.wait(5)
        burst.close()
    ours = totals[CP][0] / totals[CP][1]
    theirs = totals["PY1"][0] / totals["PY1"][1]
    seq_ours = seq[CP][0] / seq[CP][1]
    seq_theirs = seq["PY1"][0] / seq["PY1"][1]
    notes = ["{}: ours {}".format(a, ", ".join(sorted(c))) for a, c in sorted(codes[CP].items())
             if set(c) != {"ok"}]
    if violations:
        notes.append("{} violations".format(len(violations)))
    return {5: {"value": round(ours / theirs, 3), "unit": "x",
                "text": "{:.2f}x ({:.0f} vs {:.0f} msg/s back to back; one at a time through "
                        "the CSMS's call: {:.0f} vs {:.0f} msg/s)".format(
                            ours / theirs, ours, theirs, seq_ours, seq_theirs),
                "data": {"ours_msgs_per_s": ours, "ocpp_msgs_per_s": theirs,
                         "sequential_ours_msgs_per_s": seq_ours,
                         "sequential_ocpp_msgs_per_s": seq_theirs,
                         "calls_each": totals[CP][0], "mix": [a for a, _ in MIX],
                         "answers_back_to_back": burst_codes, "answers": codes},
                "note": "; ".join(notes)}}


# ---- 6: boot to Available -----------------------------------------------------------------------


def bench_boot(ctx):
    runs = 2 if ctx.args.quick else 5
    local, at_csms = [], []
    with Lab(ctx.work, "boot") as lab:
        csms = lab.csms()
        offset = time.time() - time.monotonic()  # CLOCK_MONOTONIC is shared with sim.py
        for i in range(runs):
            trace = Path(lab.dir) / "boot{}.trace".format(i)
            cp = "BOOT{}".format(i)
            sim = lab.sim(csms=csms.url, cp_id=cp, extra_args=["--trace", str(trace)])
            msg = wait(lambda: [m for m in csms.messages(cp, "StatusNotification")
                                if m["payload"]["connectorId"] == 1
                                and m["payload"]["status"] == "Available"], 60, "Available")[0]
            sim.stop()
            events = [json.loads(x) for x in trace.read_text().splitlines() if x.strip()]
            start = next(e["t"] for e in events if e["ev"] == "fw_start")
            ready = next(e["t"] for e in events if e["ev"] == "fw_line"
                         and "status: connector 1 Available" in e["line"])
            local.append((ready - start) * 1000)
            at_csms.append((msg["t"] - offset - start) * 1000)
    med = statistics.median(local)
    return {6: {"value": round(med), "unit": "ms",
                "text": "{:.0f} ms (median of {}; Available at the CSMS, network included: "
                        "{:.0f} ms)".format(med, runs, statistics.median(at_csms)),
                "data": {"local_ms": local, "at_csms_ms": at_csms,
                         "method": "simulator trace: firmware process spawned -> its log line "
                                   "'status: connector 1 Available' (decided before any "
                                   "network I/O completes); Python sources compiled at import"},
                "note": ""}}


# ---- 7: firmware size -----------------------------------------------------------------------


def bench_size(ctx):
    import deploy

    with tempfile.TemporaryDirectory() as d:
        deploy.BUILD = Path(d) / "device"  # never disturb build/device (make mpy)
        sizes = deploy.build(quiet=True)
    total = sum(sizes.values())
    per = ", ".join("{} {}".format(k, v) for k, v in sorted(sizes.items(), key=lambda kv: -kv[1]))
    return {7: {"value": total, "unit": "B", "text": "{} B total: {}".format(total, per),
                "data": {"total": total, "packages": sizes}, "note": ""}}


# ---- 8: offline queue capacity ------------------------------------------------------------------


def bench_queue(ctx):
    samples = 60  # a one-hour session at the default MeterValueSampleInterval of 60 s
    with tempfile.TemporaryDirectory() as d:
        q = run_mp("queue_mp.py", d, samples)
    s = q["sessions"]
    budget = q.get("budget_bytes") or 0
    text = "{} sessions of 1 h (Start + {} MeterValues + Stop, {} B each) in the {} KiB " \
           "budget; {} more thinned, {} more as Start/Stop only".format(
               s["full"], samples, q.get("bytes_per_session"), budget // 1024, s["thinned"],
               s["start_stop_only"])
    return {8: {"value": s["full"], "unit": "sessions", "text": text, "data": q, "note": ""}}


# ---- driver -------------------------------------------------------------------------------------

BENCHES = [((1, 2), bench_heap), ((3,), bench_stall), ((4,), bench_latency),
           ((5,), bench_throughput), ((6,), bench_boot), ((7,), bench_size), ((8,), bench_queue)]


class Ctx:
    def __init__(self, args, work):
        self.args = args
        self.work = work


def git_describe():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except OSError:
        return "?"


def table(results):
    lines = ["", "{:<3} {:<48} {}".format("#", "benchmark", "result"), "-" * 100]
    for n in sorted(results):
        r = results[n]
        text = "n/a: " + r["na"] if r.get("na") else r.get("text", "")
        lines.append("{:<3} {:<48} {}".format(n, TITLES[n], text))
        if r.get("note"):
            lines.append("{:<3} {:<48} ({})".format("", "", r["note"]))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated benchmark numbers (default: all)")
    ap.add_argument("--quick", action="store_true",
                    help="coarser bisection, shorter offline period, fewer repetitions")
    ap.add_argument("--offline-s", type=float, default=None,
                    help="offline period of the full scenario (default 120, --quick 30)")
    ap.add_argument("--bisect-offline-s", type=float, default=10.0,
                    help="offline period during the bisection (default 10)")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results.json"), help="output file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--ocpp-peer", nargs=2, metavar=("URL", "CP"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.ocpp_peer:
        ocpp_peer(*args.ocpp_peer)
        return 0
    if args.offline_s is None:
        args.offline_s = 30.0 if args.quick else 120.0
    only = {int(x) for x in args.only.split(",")} if args.only else set(TITLES)
    work = tempfile.mkdtemp(prefix="bench-")
    ctx = Ctx(args, work)
    results = {}
    broke = False
    started = time.monotonic()
    for numbers, fn in BENCHES:
        if not only & set(numbers):
            continue
        say("running {} ({})".format(fn.__name__, ", ".join(map(str, numbers))))
        t = time.monotonic()
        try:
            out = fn(ctx)
        except NotAvailable as e:
            out = {n: {"na": str(e)} for n in numbers}
        except Exception as e:  # a broken benchmark: report it, run the others
            traceback.print_exc()
            broke = True
            out = {n: {"na": "benchmark failed: {!r}".format(e)[:300]} for n in numbers}
        for n in numbers:
            if n in only:
                results[n] = dict(out.get(n, {"na": "not measured"}),
                                  seconds=round(time.monotonic() - t, 1))
    print(table(results))
    doc = {"generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "command": "make bench" + (" (tools/bench.py {})".format(shlex.join(argv or sys.argv[1:]))
                                      if (argv or sys.argv[1:]) else ""),
           "commit": git_describe(), "machine": platform.platform(),
           "python": platform.python_version(), "micropython": micropython(),
           "seconds": round(time.monotonic() - started),
           "results": {str(n): dict(r, title=TITLES[n]) for n, r in sorted(results.items())}}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print("\nwritten to {} ({} s)".format(os.path.relpath(args.json, ROOT), doc["seconds"]))
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print("work directory kept: " + work)
    return 1 if broke else 0


if __name__ == "__main__":
    sys.exit(main())
