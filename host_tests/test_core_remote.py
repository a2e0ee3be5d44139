"""CSMS-initiated Core operations on a live charger: remote start/stop, unlock, availability.

RemoteStartTransaction (AuthorizeRemoteTxRequests, a TxProfile inside, busy and unknown
connectors), RemoteStopTransaction, UnlockConnector, ChangeAvailability (Accepted, Scheduled
during a transaction, connector 0 = the whole charger, persisted across a reboot), ClearCache and
DataTransfer (UnknownVendorId), each checked on the wire (lab CSMS, strict validation) and on the
simulator's relay, pilot and status.
"""

import time

from charger_helpers import conn, ok
from core_helpers import (
    TAG, boot, call, call_error, payloads, plug_and_charge, start_charging, wait_charging,
    wait_msg, wait_ready, wait_statuses,
)  # fmt: skip

TX_PROFILE = {
    "chargingProfileId": 7,
    "stackLevel": 0,
    "chargingProfilePurpose": "TxProfile",
    "chargingProfileKind": "Relative",
    "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
        {"startPeriod": 0, "limit": 10.0}]},
}


def test_remote_start_authorizes_then_starts_on_plug(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, {"ConnectionTimeOut": "30"})
    assert call(csms, "RemoteStartTransaction", {"idTag": "REMOTE1"})["status"] == "Accepted"
    assert wait_msg(csms, "Authorize")["idTag"] == "REMOTE1"
    sim.wait_for(lambda s: conn(s)["status"] == "Preparing")
    plug_and_charge(sim)
    wait_charging(sim)
    start = wait_msg(csms, "StartTransaction")
    assert start["idTag"] == "REMOTE1" and start["connectorId"] == 1
    wait_statuses(csms, ["Available", "Preparing", "Charging"])
    assert csms.violations() == []


def test_remote_start_without_authorize_when_not_required(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, {"AuthorizeRemoteTxRequests": "false"})
    plug_and_charge(sim)
    sim.wait_for(lambda s: conn(s)["status"] == "Preparing")
    r = call(csms, "RemoteStartTransaction", {"idTag": "REMOTE2", "connectorId": 1})
    assert r["status"] == "Accepted"
    wait_charging(sim)
    assert wait_msg(csms, "StartTransaction")["idTag"] == "REMOTE2"
    assert payloads(csms, "Authorize") == []


def test_remote_start_not_authorised_starts_nothing(labcsms, sim_factory):
    csms = labcsms
    csms.configure(id_tags={"BADTAG": "Invalid"})
    sim = boot(sim_factory, csms)
    plug_and_charge(sim)
    sim.wait_for(lambda s: conn(s)["status"] == "Preparing")
    assert call(csms, "RemoteStartTransaction", {"idTag": "BADTAG"})["status"] == "Accepted"
    wait_msg(csms, "Authorize")
    st = sim.status()
    assert conn(st)["transaction_id"] is None and not conn(st)["relay"]
    assert payloads(csms, "StartTransaction") == []


def test_remote_start_with_tx_profile(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, {"AuthorizeRemoteTxRequests": "false"})
    plug_and_charge(sim)
    r = call(csms, "RemoteStartTransaction",
             {"idTag": "REMOTE3", "connectorId": 1, "chargingProfile": TX_PROFILE})
    assert r["status"] == "Accepted"
    st = wait_charging(sim)
    assert conn(st)["duty"] < 0.5333  # 10 A, below the 32 A the cable and board allow
    bad = dict(TX_PROFILE, chargingProfilePurpose="TxDefaultProfile")
    r = call(csms, "RemoteStartTransaction", {"idTag": "REMOTE3", "chargingProfile": bad})
    assert r["status"] == "Rejected"
    assert csms.violations() == []


def test_remote_start_rejected_on_busy_or_unknown_connector(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms)
    start_charging(sim)
    assert call(csms, "RemoteStartTransaction",
                {"idTag": "X", "connectorId": 1})["status"] == "Rejected"
    assert call(csms, "RemoteStartTransaction",
                {"idTag": "X", "connectorId": 2})["status"] == "Rejected"
    assert call(csms, "RemoteStartTransaction", {"idTag": "X"})["status"] == "Rejected"
    assert len(payloads(csms, "StartTransaction")) == 1


def test_remote_stop(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms)
    st = start_charging(sim)
    txid = conn(st)["transaction_id"]
    assert call(csms, "RemoteStopTransaction", {"transactionId": txid + 100})["status"] == "Rejected"
    assert call(csms, "RemoteStopTransaction", {"transactionId": txid})["status"] == "Accepted"
    stop = wait_msg(csms, "StopTransaction")
    assert stop["reason"] == "Remote" and stop["transactionId"] == txid
    st = sim.wait_for(lambda s: conn(s)["status"] == "Finishing")
    assert not conn(st)["relay"] and conn(st)["duty"] == 1.0
    assert csms.violations() == []


def test_unlock_connector_stops_the_transaction_first(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms)
    st = start_charging(sim)
    assert call(csms, "UnlockConnector", {"connectorId": 1})["status"] == "Unlocked"
    stop = wait_msg(csms, "StopTransaction")
    assert stop["reason"] == "UnlockCommand" and stop["transactionId"] == conn(st)["transaction_id"]
    st = sim.wait_for(lambda s: not conn(s)["relay"])
    assert conn(st)["transaction_id"] is None
    assert call_error(csms, "UnlockConnector", {"connectorId": 3})["code"] == \
        "PropertyConstraintViolation"
    assert csms.violations() == []


def test_change_availability_of_an_idle_connector(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms)
    r = call(csms, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert r["status"] == "Accepted"
    sim.wait_for(lambda s: conn(s)["status"] == "Unavailable")
    plug_and_charge(sim)  # an Unavailable connector charges nobody
    ok(sim, {"cmd": "tap", "uid": "04A1B2C3"})
    st = sim.wait_for(lambda s: conn(s)["pilot"] == "C")
    assert conn(st)["status"] == "Unavailable" and not conn(st)["relay"]
    assert call(csms, "RemoteStartTransaction", {"idTag": TAG})["status"] == "Rejected"
    r = call(csms, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert r["status"] == "Accepted"  # already so: Accepted again (5.2)
    r = call(csms, "ChangeAvailability", {"connectorId": 1, "type": "Operative"})
    assert r["status"] == "Accepted"
    sim.wait_for(lambda s: conn(s)["status"] == "Preparing")
    wait_statuses(csms, ["Available", "Unavailable", "Preparing"])
    assert payloads(csms, "StartTransaction") == []
    assert csms.violations() == []


def test_change_availability_during_a_transaction_is_scheduled(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms)
    start_charging(sim)
    r = call(csms, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert r["status"] == "Scheduled"
    st = sim.status()
    assert conn(st)["status"] == "Charging" and conn(st)["relay"]
    ok(sim, {"cmd": "tap", "uid": "04A1B2C3"})
    sim.wait_for(lambda s: conn(s)["status"] == "Unavailable")
    wait_statuses(csms, ["Available", "Preparing", "Charging", "Unavailable"])
    assert csms.violations() == []


def test_whole_charger_inoperative_persists_across_a_reboot(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, connectors=2)
    r = call(csms, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})
    assert r["status"] == "Accepted"
    sim.wait_for(lambda s: all(c["status"] == "Unavailable" for c in s["connectors"]))
    wait_msg(csms, "StatusNotification",
             lambda p: p["connectorId"] == 0 and p["status"] == "Unavailable")
    assert st_led(sim) == "unavailable"
    since = time.time()  # the lab CSMS stamps messages with this host's clock
    assert call(csms, "Reset", {"type": "Soft"})["status"] == "Accepted"
    sim.wait_for(lambda s: s.get("firmware_restarts") == 1 and s.get("registration") == "Accepted",
                 timeout=20)
    for cid in (0, 1, 2):
        p = wait_msg(csms, "StatusNotification", lambda p, c=cid: p["connectorId"] == c,
                     since=since)
        assert p["status"] == "Unavailable"
    r = call(csms, "ChangeAvailability", {"connectorId": 0, "type": "Operative"})
    assert r["status"] == "Accepted"
    wait_ready(sim)
    wait_msg(csms, "StatusNotification",
             lambda p: p["connectorId"] == 0 and p["status"] == "Available", since=since)
    assert csms.violations() == []


def st_led(sim):
    return sim.wait_for(lambda s: s["led"] == "unavailable")["led"]


def test_clear_cache_and_data_transfer(labcsms, sim_factory):
    csms = labcsms
    boot(sim_factory, csms)
    assert call(csms, "ClearCache")["status"] == "Accepted"
    r = call(csms, "DataTransfer", {"vendorId": "com.example", "messageId": "Hello", "data": "x"})
    assert r == {"status": "UnknownVendorId"}
    assert csms.violations() == []
