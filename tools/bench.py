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
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from benchkit import (  # noqa: E402
    CP, MAX_MESSAGE, Control, Lab, NotAvailable, cmd, conn, control_period_ms, micropython,
    run_mp, say, status, wait)
from bench_heap import bench_heap  # noqa: E402
from bench_throughput import bench_throughput, ocpp_peer  # noqa: E402

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


# ---- 3: loop stall under a CSMS burst -----------------------------------------------------------


def _local_list(n, version=1):
    return {"listVersion": version, "updateType": "Full", "localAuthorizationList": [
        {"idTag": "B{:07d}".format(i), "idTagInfo": {"status": "Accepted",
                                                     "expiryDate": "2030-01-01T00:00:00Z"}}
        for i in range(n)]}


def _fit_local_list(limit):
    """The longest SendLocalList (at most `limit` entries) whose CALL fits the 8192-byte bound."""

    def frame(n):
        return json.dumps([2, "b-sll", "SendLocalList", _local_list(n)], separators=(",", ":"))

    lo, hi = 0, limit  # frame(lo) fits (or lo == 0); find the largest n that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(frame(mid).encode()) <= MAX_MESSAGE:
            lo = mid
        else:
            hi = mid - 1
    return lo, frame(lo) if lo else None


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
