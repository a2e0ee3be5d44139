"""Chaos: charging sessions through a proxy that cuts, stalls, delays, drops and duplicates.

tools/chaosproxy.py sits between the simulated charger and the lab CSMS and injects, at random
(seeded; the seed is printed), connection cuts, half-open stalls, delays and dropped or duplicated
whole WebSocket messages while the test plays free-vend sessions. Afterwards the link is calmed
and the charger must have: 0 firmware crashes or restarts, and 0 lost transaction messages (every
StartTransaction, StopTransaction and MeterValues the charger queued - counted from its
`txq: + <action>` log lines - reached the CSMS at least once; duplicates are counted and printed,
as retries after a lost answer are allowed to produce them). Every message stays schema-valid.

`make test` runs CHAOS_SECONDS=35 of chaos; `make chaos` runs long (CHAOS_SECONDS=600) and
CHAOS_SEED=N replays a run.
"""

import json
import os
import random
import re
import time
from collections import Counter

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from chaosproxy import ChaosProxyThread
from charger_helpers import CP, conn, ok

CHAOS_SECONDS = float(os.environ.get("CHAOS_SECONDS", "35"))
TX_ACTIONS = ("StartTransaction", "StopTransaction", "MeterValues")
CONFIG = {
    "AuthEnabled": "false",  # plug-in starts the session: no Authorize round trip to lose
    "MeterValueSampleInterval": "1",
    "WebSocketPingInterval": "2",  # a half-open link is noticed within about 4 s
    "ReconnectBackoffMin": "1",
    "ReconnectBackoffMax": "2",
    "TransactionMessageRetryInterval": "1",
}


def _seed():
    text = os.environ.get("CHAOS_SEED")
    return int(text) if text else random.randrange(1 << 30)


def _key(action, payload):
    """What makes two received copies the same message (a retry resends it unchanged)."""
    return action, json.dumps(payload, sort_keys=True)


def _created(log_text):
    """Transaction messages the charger queued, per action (its `txq: +` log lines)."""
    return Counter(m.group(1) for m in re.finditer(r"txq: \+ (\w+) tx ", log_text))


def _session(sim, rng):
    ok(sim, {"cmd": "plug", "connector": 1})
    ok(sim, {"cmd": "ev", "connector": 1, "state": "C"})
    sim.wait_for(lambda s: conn(s)["relay"], timeout=20)
    time.sleep(rng.uniform(1.0, 4.0))
    ok(sim, {"cmd": "unplug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["status"] == "Available" and not conn(s)["relay"], timeout=20)


@pytest.mark.allow_violations("unknown_reply")  # a duplicated answer of the charger
def test_sessions_through_chaos_lose_no_transaction_message(labcsms, sim_factory, capsys):
    seed = _seed()
    rng = random.Random(seed)
    proxy = ChaosProxyThread(labcsms.ws_port, seed=seed, gap_s=(1.0, 3.0))
    try:
        proxy.calm()  # a clean boot first; chaos during the sessions
        sim = sim_factory(csms=proxy.url(), cp_id=CP, config=CONFIG)
        sim.wait_for(lambda s: s.get("registration") == "Accepted"
                     and conn(s)["status"] == "Available", timeout=30)
        proxy.resume()
        sessions = 0
        end = time.monotonic() + CHAOS_SECONDS
        while time.monotonic() < end:
            _session(sim, rng)
            sessions += 1
        proxy.calm()
        st = sim.wait_for(lambda s: s["ocpp"] == "Connected" and s["queued_messages"] == 0,
                          timeout=90)
        stats = proxy.stats()
    finally:
        proxy.close()
    created = _created(sim.log())
    got = {a: labcsms.messages(CP, a) for a in TX_ACTIONS}
    unique = {a: len({_key(a, m["payload"]) for m in got[a]}) for a in TX_ACTIONS}
    dups = {a: len(got[a]) - unique[a] for a in TX_ACTIONS}
    with capsys.disabled():  # the summary also without -s (make chaos)
        print("\nchaos (seed %d, CHAOS_SEED to replay): %d sessions in %.0f s, faults %s" % (
            seed, sessions, CHAOS_SECONDS, stats))
        print("transaction messages created %s, received %s (duplicates %s)" % (
            dict(created), unique, dups))
    assert st["firmware_crashes"] == 0 and st["firmware_restarts"] == 0
    assert created["StartTransaction"] == sessions and created["StopTransaction"] == sessions
    lost = {a: created[a] - unique[a] for a in TX_ACTIONS}
    assert lost == {a: 0 for a in TX_ACTIONS}, (lost, seed)
    # Every Stop carries the transactionId the CSMS gave one of its session's Starts.
    ids = {m["payload"]["transactionId"] for m in got["StopTransaction"]}
    assert len(ids) == sessions
    bad = [v for v in labcsms.violations() if v["kind"] != "unknown_reply"]
    assert bad == []


# ---- the proxy itself, with a plain WebSocket client ---------------------------------------


def _heartbeat(ws, uid):
    ws.send(json.dumps([2, uid, "Heartbeat", {}]))


def test_proxy_keeps_frames_whole_and_injects_each_fault(labcsms):
    proxy = ChaosProxyThread(labcsms.ws_port, seed=1, weights={})
    try:
        with connect(proxy.url() + "/CPX", subprotocols=["ocpp1.6"], open_timeout=5) as ws:
            _heartbeat(ws, "h1")
            assert json.loads(ws.recv(timeout=5))[:2] == [3, "h1"]
            proxy.inject("dup", "up")
            _heartbeat(ws, "h2")
            assert [json.loads(ws.recv(timeout=5))[1] for _ in range(2)] == ["h2", "h2"]
            proxy.inject("drop", "down")
            _heartbeat(ws, "h3")  # its answer is dropped
            _heartbeat(ws, "h4")
            assert json.loads(ws.recv(timeout=5))[1] == "h4"
            proxy.inject("delay", "up")
            _heartbeat(ws, "h5")
            assert json.loads(ws.recv(timeout=5))[1] == "h5"
            big = "x" * 70000  # 64-bit length field, still one message
            ws.send(json.dumps([2, "h6", "DataTransfer", {"vendorId": "v", "data": big}]))
            assert json.loads(ws.recv(timeout=5))[1] == "h6"
            assert [m["id"] for m in labcsms.messages("CPX")] == [
                "h1", "h2", "h2", "h3", "h4", "h5", "h6"]
            proxy.inject("stall")
            _heartbeat(ws, "h7")
            with pytest.raises(TimeoutError):
                ws.recv(timeout=1.0)  # half-open: nothing comes back, nothing is closed
            proxy.calm()  # closes the stalled link
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=5)
        with connect(proxy.url() + "/CPX", subprotocols=["ocpp1.6"], open_timeout=5) as ws:
            assert proxy.inject("cut")
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=5)
        stats = proxy.stats()
        assert stats["links"] == 2 and stats["cut"] == 1 and stats["stall"] == 1
        assert stats["drop"] == 1 and stats["dup"] == 1 and stats["delay"] == 1
    finally:
        proxy.close()
