"""Benchmarks 1 and 2 of tools/bench.py: the smallest heap for the reference scenario, heap peak.

The reference scenario (`run_scenario`): boot over wss:// with Basic auth, a TxDefaultProfile
(SetChargingProfile; a note when the firmware cannot take it), an RFID session with MeterValues, an
offline period with a session (a tap when offline authorisation answers, else free vend), then
reconnect and replay; it completes when the queue drained, nothing was lost, the lab CSMS saw no
violation and the firmware never restarted. `bench_heap` bisects `-X heapsize` in wK (comparable
with a 32-bit ESP32) with a short offline period, then runs the full scenario at the minimum with
the heap monitor (`--bench monitor --bench gc_threshold=4096`) for the peak.
"""

import sys
import time
from pathlib import Path

from benchkit import CP, PASSWORD, UID, Lab, NotAvailable, call_code, cmd, conn, say, status, wait

HEAP_LO_WK, HEAP_HI_WK = 32, 512  # bisection range in wK: 64K..1024K on a 64-bit Unix port

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

