"""The real firmware in the simulator against the lab CSMS: the session and every control command.

Whole-charger tests (issue: foundation): a complete charging session as the CSMS sees it, each
control-protocol command with its effect on pilot, duty, relay, LED and status, bad commands
answered `ok: false` with the simulator still running, and a power cut (SIGKILL) followed by a
reboot from the same state dir.
"""

import time

import pytest

from charger_helpers import CP, charger, conn, ok, start_session, statuses  # noqa: F401

CONTRACT_FIELDS = ("ocpp", "registration", "led", "limit_a", "queued_messages", "heap_free",
                   "heap_used", "connectors")
CONNECTOR_FIELDS = ("id", "status", "pilot", "duty", "relay", "transaction_id", "id_tag",
                    "energy_wh", "power_w")


def test_complete_session_as_the_csms_sees_it(charger):
    sim, csms = charger
    st = start_session(sim, csms)
    assert conn(st)["pilot"] == "C" and conn(st)["duty"] == pytest.approx(0.5333, abs=1e-3)
    e0 = conn(st)["energy_wh"]
    sim.wait_for(lambda s: conn(s)["energy_wh"] >= e0 + 3, timeout=10)
    ok(sim, {"cmd": "unplug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["status"] == "Available" and s["queued_messages"] == 0)
    boot = csms.messages(CP, "BootNotification")
    assert boot, "no BootNotification"
    assert statuses(csms) == ["Available", "Preparing", "Charging", "Finishing", "Available"]
    start = csms.messages(CP, "StartTransaction")[0]["payload"]
    stop = csms.messages(CP, "StopTransaction")[0]["payload"]
    assert start["idTag"] == "C3B2A104"  # little-endian hex of 04 A1 B2 C3
    assert stop["reason"] == "EVDisconnected" and stop["transactionId"] == 1
    assert stop["meterStop"] > start["meterStart"]
    assert csms.violations() == []


def test_status_has_every_contract_field(charger):
    sim, _ = charger
    st = sim.status()
    for f in CONTRACT_FIELDS:
        assert f in st, f
    for f in CONNECTOR_FIELDS:
        assert f in conn(st), f
    assert st["ocpp"] == "Connected" and st["registration"] == "Accepted"
    assert conn(st)["duty"] == 1.0 and conn(st)["relay"] is False and conn(st)["pilot"] == "A"
    assert st["heap_free"] > 0 and st["heap_used"] > 0


def test_plug_and_unplug_move_the_pilot(charger):
    sim, _ = charger
    ok(sim, {"cmd": "plug", "connector": 1})
    st = sim.wait_for(lambda s: conn(s)["pilot"] == "B")
    assert conn(st)["status"] == "Preparing" and conn(st)["duty"] == 1.0
    ok(sim, {"cmd": "unplug", "connector": 1})
    st = sim.wait_for(lambda s: conn(s)["pilot"] == "A" and conn(s)["status"] == "Available")


def test_ev_state_d_without_ventilation_does_not_charge(charger):
    sim, csms = charger
    start_session(sim, csms)
    ok(sim, {"cmd": "ev", "connector": 1, "state": "D"})
    # The relay opens in the cycle that sees D; the fault it raises is reported one cycle later.
    st = sim.wait_for(lambda s: conn(s)["pilot"] == "D" and conn(s)["error_code"] == "OtherError")
    assert not conn(st)["relay"]
    ok(sim, {"cmd": "ev", "connector": 1, "state": "B"})
    sim.wait_for(lambda s: conn(s)["pilot"] == "B" and conn(s)["error_code"] == "NoError")


def test_ev_power_limits_what_the_ev_draws(charger):
    sim, csms = charger
    ok(sim, {"cmd": "ev_power", "connector": 1, "watts": 2300})
    start_session(sim, csms)
    st = sim.wait_for(lambda s: 2000 <= conn(s)["power_w"] <= 2400, timeout=5)
    assert conn(st)["relay"]


def test_tap_sends_the_little_endian_id_tag(charger):
    sim, csms = charger
    ok(sim, {"cmd": "tap", "uid": "04a1b2c3d4e5f6"})  # 7-byte UID, case-insensitive
    m = csms.wait_for("Authorize", timeout=10)
    assert m["payload"]["idTag"] == "F6E5D4C3B2A104"
    # Tap first, plug later (ConnectionTimeOut): the session starts on plug-in.
    sim.wait_for(lambda s: conn(s)["status"] == "Preparing")
    ok(sim, {"cmd": "plug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["transaction_id"] is not None)


def test_same_card_stops_the_session(charger):
    sim, csms = charger
    start_session(sim, csms)
    ok(sim, {"cmd": "tap", "uid": "04A1B2C3"})
    st = sim.wait_for(lambda s: conn(s)["status"] == "Finishing")
    assert not conn(st)["relay"] and conn(st)["duty"] == 1.0
    stop = csms.wait_for("StopTransaction", timeout=10)
    assert stop["payload"]["reason"] == "Local"


@pytest.mark.parametrize("kind,code", [
    ("rcd", "GroundFailure"),
    ("overtemp", "HighTemperature"),
    ("meter_lost", "PowerMeterFailure"),
    ("pilot_short", "EVCommunicationError"),
    ("diode", "EVCommunicationError"),
])
def test_fault_opens_the_relay_and_reports_its_error_code(charger, kind, code):
    sim, csms = charger
    start_session(sim, csms)
    ok(sim, {"cmd": "fault", "kind": kind, "on": True})
    st = sim.wait_for(lambda s: not conn(s)["relay"] and conn(s)["error_code"] == code)
    assert conn(st)["duty"] == 1.0
    m = [x["payload"] for x in csms.messages(CP, "StatusNotification")
         if x["payload"]["errorCode"] == code]
    assert m, "no StatusNotification with %s" % code
    assert csms.violations() == []


def test_weld_detected_after_the_relay_opens(charger):
    sim, _ = charger
    ok(sim, {"cmd": "fault", "kind": "weld", "on": True})
    st = sim.wait_for(lambda s: conn(s)["status"] == "Faulted")
    assert conn(st)["error_code"] == "PowerSwitchFailure" and st["led"] == "faulted"


def test_cable_rating_limits_the_duty(charger):
    sim, csms = charger
    ok(sim, {"cmd": "cable", "connector": 1, "amps": 13})
    st = start_session(sim, csms)
    assert st["limit_a"] == 13.0
    assert conn(st)["duty"] == pytest.approx(0.2167, abs=1e-3)


def test_missing_proximity_resistor_is_a_fault(charger):
    sim, _ = charger
    ok(sim, {"cmd": "cable", "connector": 1, "amps": 0})
    ok(sim, {"cmd": "plug", "connector": 1})
    st = sim.wait_for(lambda s: conn(s)["error_code"] == "EVCommunicationError")
    assert not conn(st)["relay"]


def test_energy_manager_lowers_the_duty_at_once(charger):
    sim, csms = charger
    start_session(sim, csms)
    ok(sim, {"cmd": "ems", "limit_a": 10})
    st = sim.wait_for(lambda s: s["limit_a"] == 10.0, timeout=2)
    st = sim.wait_for(lambda s: conn(s)["duty"] == pytest.approx(0.1667, abs=1e-3), timeout=1)
    ok(sim, {"cmd": "ems", "limit_a": 3})  # below 6 A: pause, keep the transaction
    st = sim.wait_for(lambda s: conn(s)["status"] == "SuspendedEVSE")
    assert conn(st)["duty"] == 1.0 and not conn(st)["relay"] and conn(st)["transaction_id"]
    ok(sim, {"cmd": "ems", "limit_a": None})
    sim.wait_for(lambda s: conn(s)["status"] == "Charging", timeout=12)


def test_energy_manager_raise_waits_five_seconds(charger):
    sim, csms = charger
    start_session(sim, csms)
    ok(sim, {"cmd": "ems", "limit_a": 10})
    sim.wait_for(lambda s: conn(s)["duty"] == pytest.approx(0.1667, abs=1e-3), timeout=1)
    t0 = time.monotonic()
    ok(sim, {"cmd": "ems", "limit_a": 20})
    sim.wait_for(lambda s: conn(s)["duty"] == pytest.approx(0.3333, abs=1e-3), timeout=10)
    # IEC 61851 practice (evse.md section 3): at most one rise per 5 s; decreases act at once.
    assert time.monotonic() - t0 >= 4.0


def test_network_cut_and_restore(charger):
    sim, csms = charger
    ok(sim, {"cmd": "net", "up": False})
    sim.wait_for(lambda s: s["ocpp"] == "Offline")
    ok(sim, {"cmd": "net", "up": True})
    sim.wait_for(lambda s: s["ocpp"] == "Connected", timeout=20)


def test_button_opens_the_provisioning_window(charger):
    sim, _ = charger
    ok(sim, {"cmd": "button", "ms": 5000})
    sim.wait_for(lambda s: s["led"] == "provisioning")


@pytest.mark.parametrize("req", [
    {"cmd": "warp"},
    {"cmd": "plug", "connector": 9},
    {"cmd": "ev", "connector": 1, "state": "Z"},
    {"cmd": "tap", "uid": "xyz"},
    {"cmd": "fault", "kind": "lightning", "on": True},
    {"cmd": "cable", "connector": 1, "amps": 17},
    {"cmd": "ems", "limit_a": "lots"},
    {"cmd": "button", "ms": -1},
    {"cmd": "net", "up": "maybe"},
    "not json at all",
])
def test_bad_commands_are_refused_and_the_simulator_keeps_running(charger, req):
    sim, _ = charger
    r = sim.request(req)
    assert r["ok"] is False and r["error"]
    assert sim.status()["ok"] is True


def test_shutdown_exits_zero(charger):
    sim, _ = charger
    assert sim.request({"cmd": "shutdown"})["ok"] is True
    assert sim.wait_exit() == 0


def test_power_cut_then_reboot_from_the_same_state_dir(labcsms, sim_factory):
    sim = sim_factory(csms=labcsms.url, cp_id=CP)
    sim.wait_for(lambda s: s.get("registration") == "Accepted" and conn(s)["status"] == "Available")
    start_session(sim, labcsms)
    sim.kill9()
    sim2 = sim_factory(csms=labcsms.url, cp_id=CP, state_dir=sim.state_dir)
    sim2.wait_for(lambda s: s.get("registration") == "Accepted" and s["queued_messages"] == 0,
                  timeout=30)
    assert len(labcsms.messages(CP, "BootNotification")) == 2
    stop = labcsms.wait_for("StopTransaction", timeout=10)["payload"]
    assert stop["reason"] == "PowerLoss" and stop["transactionId"] == 1
    st = sim2.status()
    assert not conn(st)["relay"] and conn(st)["transaction_id"] is None
    assert labcsms.violations() == []
