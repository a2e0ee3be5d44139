"""Shared helpers for whole-charger tests: a lab CSMS plus the real simulated charger."""

import pytest

CP = "CP1"


def conn(st, i=1):
    return st["connectors"][i - 1]


@pytest.fixture
def charger(labcsms, sim_factory):
    """A booted simulated charger (real firmware) on the lab CSMS; returns (sim, csms)."""
    sim = sim_factory(csms=labcsms.url, cp_id=CP, config={"MeterValueSampleInterval": "0"})
    sim.wait_for(
        lambda s: s.get("registration") == "Accepted" and conn(s)["status"] == "Available",
        timeout=20,
    )
    return sim, labcsms


def statuses(csms, cid=1):
    """The connector's StatusNotification statuses as the CSMS received them (repeats folded)."""
    seq = []
    for m in csms.messages(CP, "StatusNotification"):
        if m["payload"]["connectorId"] == cid:
            s = m["payload"]["status"]
            if not seq or seq[-1] != s:
                seq.append(s)
    return seq


def ok(sim, req):
    r = sim.request(req)
    assert r.get("ok"), (req, r)
    return r


def start_session(sim, csms, uid="04A1B2C3"):
    """Plug, tap, EV to C: returns the status once charging."""
    ok(sim, {"cmd": "plug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["status"] == "Preparing")
    ok(sim, {"cmd": "tap", "uid": uid})
    sim.wait_for(lambda s: conn(s)["transaction_id"] is not None)
    ok(sim, {"cmd": "ev", "connector": 1, "state": "C"})
    return sim.wait_for(lambda s: conn(s)["status"] == "Charging" and conn(s)["relay"])
