"""Charging sessions of the Core profile, end to end: the real firmware against the lab CSMS.

Each test plays one session variant through the simulator's control port (issue 4): plug then
tap, tap then plug (ConnectionTimeOut), StopTransactionOnEVSideDisconnect, StopTransactionOnInvalidId,
same card / same parentIdTag / a different card, UnlockConnectorOnEVSideDisconnect, EV and EVSE
suspending, two connectors, free vend and the idTag format; they check the StatusNotification
sequence, the transaction messages and relay and pilot. The lab CSMS validates every message
(schemas and RFC 3339 timestamps): `violations()` must stay empty.
"""

import pytest

from charger_helpers import CP, conn, ok
from core_helpers import (
    TAG, TAG2, UID, UID2, boot, payloads, plug_and_charge, start_charging, statuses, tap,
    wait_charging, wait_idle, wait_msg, wait_statuses,
)  # fmt: skip


def test_plug_then_tap_then_same_card_stops(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms)
    st = start_charging(sim)
    assert conn(st)["pilot"] == "C" and conn(st)["duty"] < 1.0
    start = wait_msg(csms, "StartTransaction")
    assert start["idTag"] == TAG and start["connectorId"] == 1
    assert [p["idTag"] for p in payloads(csms, "Authorize")] == [TAG]
    tap(sim)  # the same card: stops without a new Authorize
    st = sim.wait_for(lambda s: conn(s)["status"] == "Finishing")
    assert not conn(st)["relay"] and conn(st)["duty"] == 1.0 and conn(st)["pilot"] == "C"
    stop = wait_msg(csms, "StopTransaction")
    assert stop["reason"] == "Local" and stop["idTag"] == TAG and stop["transactionId"] == 1
    assert len(payloads(csms, "Authorize")) == 1
    ok(sim, {"cmd": "unplug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["status"] == "Available")
    wait_idle(sim)
    wait_statuses(csms, ["Available", "Preparing", "Charging", "Finishing", "Available"])
    assert csms.violations() == []


def test_tap_then_plug_within_connection_timeout(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, {"ConnectionTimeOut": "30"})
    tap(sim)
    st = sim.wait_for(lambda s: conn(s)["status"] == "Preparing")
    assert conn(st)["transaction_id"] is None and conn(st)["pilot"] == "A"
    plug_and_charge(sim)
    wait_charging(sim)
    assert wait_msg(csms, "StartTransaction")["idTag"] == TAG
    wait_statuses(csms, ["Available", "Preparing", "Charging"])
    assert csms.violations() == []


def test_tap_without_plug_times_out(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, {"ConnectionTimeOut": "2"})
    tap(sim)
    sim.wait_for(lambda s: conn(s)["status"] == "Preparing")
    sim.wait_for(lambda s: conn(s)["status"] == "Available", timeout=6)
    plug_and_charge(sim)  # too late: the authorisation has lapsed
    st = sim.wait_for(lambda s: conn(s)["status"] == "Preparing")
    assert conn(st)["transaction_id"] is None and not conn(st)["relay"]
    assert payloads(csms, "StartTransaction") == []
    assert csms.violations() == []


def test_tapping_the_waiting_card_again_cancels_it(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, {"ConnectionTimeOut": "60"})
    tap(sim)
    sim.wait_for(lambda s: conn(s)["status"] == "Preparing")
    tap(sim)
    sim.wait_for(lambda s: conn(s)["status"] == "Available")
    wait_statuses(csms, ["Available", "Preparing", "Available"])


def test_unplug_stops_with_ev_disconnected_and_unlocks(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms)
    start_charging(sim)
    ok(sim, {"cmd": "unplug", "connector": 1})
    st = sim.wait_for(lambda s: conn(s)["status"] == "Available")
    assert not conn(st)["relay"] and conn(st)["pilot"] == "A"
    stop = wait_msg(csms, "StopTransaction")
    assert stop["reason"] == "EVDisconnected" and "idTag" not in stop
    wait_statuses(csms, ["Available", "Preparing", "Charging", "Finishing", "Available"])
    # UnlockConnectorOnEVSideDisconnect (default true): the cable lock opened.
    assert "EV side disconnected, unlocked" in sim.log()


def test_no_unlock_when_unlock_on_ev_side_disconnect_is_false(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, {"UnlockConnectorOnEVSideDisconnect": "false"})
    start_charging(sim)
    ok(sim, {"cmd": "unplug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["status"] == "Available")
    assert wait_msg(csms, "StopTransaction")["reason"] == "EVDisconnected"
    assert "EV side disconnected, unlocked" not in sim.log()


def test_unplug_keeps_the_transaction_without_stop_on_ev_side_disconnect(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, {"StopTransactionOnEVSideDisconnect": "false"})
    st = start_charging(sim)
    txid = conn(st)["transaction_id"]
    ok(sim, {"cmd": "unplug", "connector": 1})
    st = sim.wait_for(lambda s: conn(s)["status"] == "SuspendedEV", timeout=8)
    assert conn(st)["transaction_id"] == txid and not conn(st)["relay"]
    plug_and_charge(sim)  # the same transaction goes on
    st = wait_charging(sim)
    assert conn(st)["transaction_id"] == txid
    assert payloads(csms, "StopTransaction") == []
    tap(sim)
    stop = wait_msg(csms, "StopTransaction")
    assert stop["reason"] == "Local" and stop["transactionId"] == txid
    assert csms.violations() == []


def test_start_rejected_by_the_csms_stops_deauthorized(labcsms, sim_factory):
    csms = labcsms
    csms.configure(id_tags={"FREEVEND": "Invalid"})
    sim = boot(sim_factory, csms, {"AuthEnabled": "false"})
    plug_and_charge(sim)
    stop = wait_msg(csms, "StopTransaction")
    assert stop["reason"] == "DeAuthorized"
    st = sim.wait_for(lambda s: conn(s)["status"] == "Finishing")
    assert not conn(st)["relay"] and conn(st)["transaction_id"] is None
    assert "Charging" not in statuses(csms)
    assert csms.violations() == []


def test_start_rejected_without_stop_on_invalid_id_suspends(labcsms, sim_factory):
    csms = labcsms
    csms.configure(id_tags={"FREEVEND": "Blocked"})
    sim = boot(sim_factory, csms, {"AuthEnabled": "false", "StopTransactionOnInvalidId": "false"})
    plug_and_charge(sim)
    st = sim.wait_for(lambda s: conn(s)["status"] == "SuspendedEVSE" and conn(s)["transaction_id"])
    assert not conn(st)["relay"] and conn(st)["duty"] == 1.0
    assert payloads(csms, "StopTransaction") == []
    call_stop = csms.call(CP, "RemoteStopTransaction",
                          {"transactionId": conn(st)["transaction_id"]})
    assert call_stop["result"]["status"] == "Accepted"
    assert wait_msg(csms, "StopTransaction")["reason"] == "Remote"
    assert csms.violations() == []


def test_same_parent_stops_a_different_card_does_not(labcsms, sim_factory):
    csms = labcsms
    csms.configure(id_tags={
        TAG: {"status": "Accepted", "parentIdTag": "FLEET1"},
        TAG2: {"status": "Accepted", "parentIdTag": "FLEET1"},
        "CCDDEEFF": {"status": "Accepted", "parentIdTag": "OTHER"},
    })
    sim = boot(sim_factory, csms)
    start_charging(sim)
    tap(sim, "FFEEDDCC")  # idTag CCDDEEFF: another group, does not stop the session
    wait_msg(csms, "Authorize", lambda p: p["idTag"] == "CCDDEEFF")
    st = sim.status()
    assert conn(st)["status"] == "Charging" and conn(st)["relay"]
    tap(sim, UID2)  # same parentIdTag FLEET1: stops it
    stop = wait_msg(csms, "StopTransaction")
    assert stop["reason"] == "Local" and stop["idTag"] == TAG2
    st = sim.wait_for(lambda s: conn(s)["status"] == "Finishing")
    assert not conn(st)["relay"]
    assert csms.violations() == []


def test_rejected_card_starts_nothing(labcsms, sim_factory):
    csms = labcsms
    csms.configure(id_tags={TAG: "Blocked"})
    sim = boot(sim_factory, csms)
    plug_and_charge(sim)
    tap(sim)
    wait_msg(csms, "Authorize")
    st = sim.wait_for(lambda s: conn(s)["status"] == "Preparing")
    assert conn(st)["transaction_id"] is None and not conn(st)["relay"]
    assert payloads(csms, "StartTransaction") == []


def test_ev_suspends_and_resumes(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms)
    start_charging(sim)
    ok(sim, {"cmd": "ev", "connector": 1, "state": "B"})
    st = sim.wait_for(lambda s: conn(s)["status"] == "SuspendedEV", timeout=8)
    assert not conn(st)["relay"] and conn(st)["duty"] < 1.0  # still offering
    ok(sim, {"cmd": "ev", "connector": 1, "state": "C"})
    wait_charging(sim)
    wait_statuses(csms, ["Available", "Preparing", "Charging", "SuspendedEV", "Charging"])
    assert csms.violations() == []


def test_charger_suspends_at_limit_zero(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms)
    start_charging(sim)
    ok(sim, {"cmd": "ems", "limit_a": 0})
    st = sim.wait_for(lambda s: conn(s)["status"] == "SuspendedEVSE")
    assert not conn(st)["relay"] and conn(st)["duty"] == 1.0 and conn(st)["transaction_id"]
    ok(sim, {"cmd": "ems", "limit_a": None})
    wait_charging(sim, timeout=12)
    wait_statuses(csms, ["Available", "Preparing", "Charging", "SuspendedEVSE", "Charging"])
    assert csms.violations() == []


def test_two_connectors_run_independently(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, connectors=2)
    st = start_charging(sim, 1, UID)
    assert conn(st, 2)["status"] == "Available"
    st = start_charging(sim, 2, UID2)
    assert conn(st, 1)["status"] == "Charging" and conn(st, 2)["status"] == "Charging"
    tx2 = conn(st, 2)["transaction_id"]
    assert tx2 != conn(st, 1)["transaction_id"]
    starts = payloads(csms, "StartTransaction")
    assert {(p["connectorId"], p["idTag"]) for p in starts} == {(1, TAG), (2, TAG2)}
    tap(sim, UID2)  # stops connector 2 only
    st = sim.wait_for(lambda s: conn(s, 2)["status"] == "Finishing")
    assert conn(st, 1)["status"] == "Charging" and conn(st, 1)["relay"]
    assert not conn(st, 2)["relay"]
    stop = wait_msg(csms, "StopTransaction")
    assert stop["idTag"] == TAG2 and stop["transactionId"] == tx2
    ok(sim, {"cmd": "unplug", "connector": 1})
    sim.wait_for(lambda s: conn(s, 1)["status"] == "Available")
    wait_statuses(csms, ["Available", "Preparing", "Charging", "Finishing", "Available"], 1)
    wait_statuses(csms, ["Available", "Preparing", "Charging", "Finishing"], 2)
    assert csms.violations() == []


def test_card_goes_to_the_connector_plugged_in_last(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, connectors=2)
    ok(sim, {"cmd": "plug", "connector": 2})
    sim.wait_for(lambda s: conn(s, 2)["status"] == "Preparing")
    ok(sim, {"cmd": "plug", "connector": 1})
    sim.wait_for(lambda s: conn(s, 1)["status"] == "Preparing")
    tap(sim)
    assert wait_msg(csms, "StartTransaction")["connectorId"] == 1


def test_waiting_card_goes_to_the_first_connector_plugged_in(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, {"ConnectionTimeOut": "30"}, connectors=2)
    tap(sim)
    sim.wait_for(lambda s: "Preparing" in (conn(s, 1)["status"], conn(s, 2)["status"]))
    plug_and_charge(sim, 2)
    wait_charging(sim, 2)
    assert wait_msg(csms, "StartTransaction")["connectorId"] == 2
    st = sim.wait_for(lambda s: conn(s, 1)["status"] == "Available")
    assert conn(st, 1)["transaction_id"] is None


def test_free_vend_charges_without_authorisation(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, {"AuthEnabled": "false", "FreeVendIdTag": "OPENHOUSE"})
    assert sim.status()["led"] == "free_vend"
    plug_and_charge(sim)
    st = wait_charging(sim)
    assert st["led"] == "charging"
    start = wait_msg(csms, "StartTransaction")
    assert start["idTag"] == "OPENHOUSE"
    assert payloads(csms, "Authorize") == []
    ok(sim, {"cmd": "unplug", "connector": 1})
    st = sim.wait_for(lambda s: conn(s)["status"] == "Available")
    assert st["led"] == "free_vend"
    assert wait_msg(csms, "StopTransaction")["reason"] == "EVDisconnected"
    assert csms.violations() == []


@pytest.mark.parametrize("order,case,uid,tag", [
    ("little", "upper", "04A1B2C3", "C3B2A104"),
    ("big", "upper", "04a1b2c3", "04A1B2C3"),
    ("little", "lower", "04A1B2C3D4E5F6", "f6e5d4c3b2a104"),
    ("big", "lower", "00112233445566778899", "00112233445566778899"),
])
def test_id_tag_from_the_card_uid(labcsms, sim_factory, order, case, uid, tag):
    csms = labcsms
    sim = boot(sim_factory, csms, {"IdTagByteOrder": order, "IdTagCase": case})
    tap(sim, uid)
    assert wait_msg(csms, "Authorize")["idTag"] == tag
    assert len(tag) <= 20


@pytest.mark.parametrize("kind,code,reason", [
    ("rcd", "GroundFailure", "EmergencyStop"),
    ("diode", "EVCommunicationError", "Other"),
])
def test_fault_that_ends_the_session(labcsms, sim_factory, kind, code, reason):
    csms = labcsms
    sim = boot(sim_factory, csms)
    start_charging(sim)
    ok(sim, {"cmd": "fault", "kind": kind, "on": True})
    st = sim.wait_for(lambda s: conn(s)["error_code"] == code and not conn(s)["relay"])
    assert conn(st)["transaction_id"] is None
    stop = wait_msg(csms, "StopTransaction")
    assert stop["reason"] == reason
    assert csms.violations() == []


def test_over_temperature_keeps_the_transaction(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms)
    st = start_charging(sim)
    ok(sim, {"cmd": "fault", "kind": "overtemp", "on": True})
    st2 = sim.wait_for(lambda s: conn(s)["status"] == "Faulted")
    assert not conn(st2)["relay"] and conn(st2)["transaction_id"] == conn(st)["transaction_id"]
    assert conn(st2)["error_code"] == "HighTemperature"
    assert payloads(csms, "StopTransaction") == []
