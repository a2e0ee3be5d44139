"""The measurement framework of `make bench` (tools/bench.py) keeps working as the firmware grows.

Not the benchmarks themselves (they report, they never fail on a number): the instruments they
read - the simulator's --bench monitor and --trace, the status fields heap_peak, loop_stall_max_ms,
loop_stall_by_s and uptime_ms, the two MicroPython bench scripts - and the small pure helpers.
"""

import json
import time

import bench
from charger_helpers import CP, charger, conn, ok  # noqa: F401


def test_monitor_and_trace_instruments(labcsms, sim_factory, tmp_path):
    trace = tmp_path / "sim.trace"
    sim = sim_factory(csms=labcsms.url, cp_id=CP, config={"AuthEnabled": "false"},
                      extra_args=["--bench", "monitor", "--bench", "gc_threshold=4096",
                                  "--trace", str(trace)])
    sim.wait_for(lambda s: conn(s)["status"] == "Available" and s["registration"] == "Accepted",
                 timeout=20)
    ok(sim, {"cmd": "plug", "connector": 1})
    ok(sim, {"cmd": "ev", "connector": 1, "state": "C"})
    sim.wait_for(lambda s: conn(s)["relay"], timeout=20)
    ok(sim, {"cmd": "unplug", "connector": 1})
    st = sim.wait_for(lambda s: not conn(s)["relay"] and s["uptime_ms"] > 1500, timeout=20)
    assert st["heap_peak"] >= st["heap_used"] > 0
    assert st["loop_stall_max_ms"] > 0
    ring = st["loop_stall_by_s"]
    assert ring and all(0 <= sec <= st["uptime_ms"] // 1000 for sec, _ in ring)
    assert max(ms for _, ms in ring) <= st["loop_stall_max_ms"]
    time.sleep(0.2)
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    kinds = {e["ev"] for e in events}
    assert {"fw_start", "fw_line", "control", "out"} <= kinds
    unplug = [e["t"] for e in events if e["ev"] == "control" and e["req"]["cmd"] == "unplug"]
    opened = [e["t"] for e in events if e["ev"] == "out" and e["msg"].get("out") == "relay"
              and e["msg"]["closed"] is False and e["t"] >= unplug[0]]
    assert unplug and opened and opened[0] - unplug[0] < 5.0


def test_without_bench_options_the_monitor_is_off(charger):
    sim, _ = charger
    st = sim.status()
    assert st["loop_stall_max_ms"] is None and st["loop_stall_by_s"] is None
    assert st["heap_peak"] >= st["heap_used"]


def test_simulated_clock_latency_script(tmp_path):
    out = bench.run_mp("latency_mp.py", bench.control_period_ms(), tmp_path)
    period = out["control_ms"]
    assert out["unplug_open_ms"]["max"] <= period  # no debounce towards A: the next cycle
    assert out["c_to_b_open_ms"]["max"] <= period
    assert out["b_to_c_close_ms"]["min"] >= 250  # towards C is debounced (lib/evse/pilot.py)


def test_queue_capacity_script(tmp_path):
    out = bench.run_mp("queue_mp.py", tmp_path, 5)
    s = out["sessions"]
    assert s["full"] > 0 and out["bytes_per_session"] > 0
    b = out["bytes_per_message"]
    assert set(b) == {"StartTransaction", "MeterValues", "StopTransaction"}


def test_local_list_is_sized_to_the_frame_bound():
    n, frame = bench._fit_local_list(10000)
    assert 0 < n < 10000 and len(frame.encode()) <= bench.MAX_MESSAGE
    n2, frame2 = bench._fit_local_list(3)
    assert n2 == 3 and len(json.loads(frame2)[3]["localAuthorizationList"]) == 3


def test_stall_window_takes_only_the_seconds_after_the_gap():
    before = {"uptime_ms": 10500}
    after = {"uptime_ms": 15200, "loop_stall_by_s": [[10, 50.0], [11, 40.0], [12, 3.0],
                                                     [15, 4.0], [16, 99.0]]}
    assert bench._window(before, after, 2) == 4.0
