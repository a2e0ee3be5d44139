"""Offline durability: sessions while the CSMS is unreachable, and damaged flash files.

- 20 complete sessions with the network down, then the network back: every StartTransaction,
  MeterValues and StopTransaction arrives in order and with the transaction id the CSMS assigned.
- Each persisted file in turn truncated or garbled between two boots: the charger boots, logs
  the damage, reconnects, and delivers every queued message that was intact.
"""

import shutil

import pytest

from charger_helpers import CP, conn, ok

FREE = {"AuthEnabled": "false", "MeterValueSampleInterval": "1",
        "TransactionMessageRetryInterval": "1"}


def _session(sim, seconds=0.0):
    ok(sim, {"cmd": "plug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["transaction_id"] is not None or s["queued_messages"] > 0)
    ok(sim, {"cmd": "ev", "connector": 1, "state": "C"})
    st = sim.wait_for(lambda s: conn(s)["relay"])
    if seconds:
        e0 = conn(st)["energy_wh"]
        sim.wait_for(lambda s: conn(s)["energy_wh"] > e0, timeout=10)
    ok(sim, {"cmd": "unplug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["status"] == "Available")


def _check_transactions(csms, n):
    order = [(m["action"], m["payload"]) for m in csms.messages(CP)
             if m["action"] in ("StartTransaction", "StopTransaction", "MeterValues")]
    starts = [p for a, p in order if a == "StartTransaction"]
    stops = [p for a, p in order if a == "StopTransaction"]
    assert len(starts) == n and len(stops) == n, (len(starts), len(stops))
    open_tx = None
    next_id = 1
    for a, p in order:
        if a == "StartTransaction":
            assert open_tx is None, "a Start before the previous Stop"
            open_tx = next_id
            next_id += 1
        else:
            assert p.get("transactionId") == open_tx, (a, p, open_tx)
            if a == "StopTransaction":
                open_tx = None
    for s, e in zip(starts, stops):
        assert e["meterStop"] >= s["meterStart"]
    return order


def test_twenty_sessions_offline_then_delivered_in_order(labcsms, sim_factory):
    sim = sim_factory(csms=labcsms.url, cp_id=CP, config=FREE)
    sim.wait_for(lambda s: s.get("registration") == "Accepted")
    ok(sim, {"cmd": "net", "up": False})
    sim.wait_for(lambda s: s["ocpp"] == "Offline")
    for i in range(20):
        _session(sim, seconds=1.0 if i % 5 == 0 else 0.0)
    st = sim.status()
    assert st["queued_messages"] >= 40
    ok(sim, {"cmd": "net", "up": True})
    sim.wait_for(lambda s: s["ocpp"] == "Connected" and s["queued_messages"] == 0, timeout=60)
    order = _check_transactions(labcsms, 20)
    assert any(a == "MeterValues" for a, _ in order)
    for _, p in order:  # no 1970 dates, every message stamped
        stamp = p.get("timestamp") or p["meterValue"][0]["timestamp"]
        assert stamp.startswith("20") and not stamp.startswith("1970")
    assert labcsms.violations() == []


def _damage(path, mode):
    data = path.read_bytes()
    if mode == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:
        b = bytearray(data)
        for i in range(len(b) // 3, min(len(b), len(b) // 3 + 8)):
            b[i] ^= 0x5A
        path.write_bytes(bytes(b))


@pytest.fixture(scope="module")
def offline_state(tmp_path_factory):
    """A state dir with configuration, queued sessions and counters, cut by a power loss."""
    from labcsms import LabCSMSProcess
    from sim_fixtures import SimFactory

    work = tmp_path_factory.mktemp("offline-state")
    state = work / "flash"
    factory = SimFactory(work)
    with LabCSMSProcess(work / "csms.jsonl") as csms:
        sim = factory(csms=csms.url, cp_id=CP, state_dir=state, config=FREE)
        sim.wait_for(lambda s: s.get("registration") == "Accepted")
        r = csms.call(CP, "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "77"})
        assert r["result"]["status"] == "Accepted", r
        ok(sim, {"cmd": "net", "up": False})
        sim.wait_for(lambda s: s["ocpp"] == "Offline")
        for _ in range(3):
            _session(sim)
        sim.kill9()
    factory.cleanup()
    return state


def _files(state):
    return sorted(p for p in state.rglob("*") if p.is_file() and not p.name.startswith(".sim-"))


@pytest.mark.parametrize("mode", ["truncate", "garble"])
def test_damaged_files_never_stop_the_boot(offline_state, labcsms, sim_factory, tmp_path, mode):
    files = [p.relative_to(offline_state) for p in _files(offline_state)]
    assert any(str(f).endswith(".seg") for f in files) and len(files) >= 4, files
    for rel in files:
        state = tmp_path / (mode + "-" + str(rel).replace("/", "_"))
        shutil.copytree(offline_state, state)
        _damage(state / rel, mode)
        sim = sim_factory(csms=labcsms.url, cp_id=CP, state_dir=state, config=FREE)
        st = sim.wait_for(lambda s: s.get("registration") == "Accepted"
                          and s["queued_messages"] == 0, timeout=30)
        assert st["ok"], rel
        sim.stop()
    # Every boot delivered what was intact: each damaged copy of the 3 queued sessions arrives
    # whole unless a queue segment itself was damaged.
    starts = labcsms.messages(CP, "StartTransaction")
    n_intact = sum(1 for f in files if not str(f).endswith(".seg"))
    assert len(starts) >= 3 * n_intact
    assert labcsms.violations() == []


def test_session_before_the_clock_is_known_gets_true_timestamps(labcsms_factory, sim_factory,
                                                                 tmp_path):
    """No CSMS yet at boot, so no wall time: the session's messages are stamped from the
    monotonic clock once BootNotification gives the time - never 1970, never the send time."""
    import datetime
    import time

    from sim_fixtures import free_port

    port = free_port()
    sim = sim_factory(csms="ws://127.0.0.1:%d/ocpp" % port, cp_id=CP, config=FREE)
    t_plug = time.time()
    _session(sim, seconds=1.0)
    time.sleep(3.0)  # the CSMS comes later; its clock then dates what happened before
    csms = labcsms_factory(port=port, log_path=tmp_path / "late.jsonl")
    sim.wait_for(lambda s: s.get("registration") == "Accepted" and s["queued_messages"] == 0,
                 timeout=60)
    start = csms.messages(CP, "StartTransaction")[0]["payload"]
    stamp = datetime.datetime.fromisoformat(start["timestamp"].replace("Z", "+00:00"))
    assert abs(stamp.timestamp() - t_plug) < 2.5, (start["timestamp"], t_plug)
    assert csms.violations() == []
