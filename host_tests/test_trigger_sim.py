"""Remote Trigger end to end: TriggerMessage for each 1.6 message, per connector, refusals.

The real firmware in the simulator against the lab CSMS (OCPP 1.6 5.18, 4.2): every
requestedMessage answered Accepted and followed by its message (StatusNotification and
MeterValues for one connector, connector 0, or all), MeterValues with context Trigger and the
transactionId of a running transaction, Rejected for a connector that does not exist,
NotImplemented for a name outside the 1.6 list, and TriggerMessage while the BootNotification is
Pending (the triggered messages go out; a triggered BootNotification gets the charger accepted).
"""

import json
import time

from charger_helpers import CP, charger, conn, ok, start_session  # noqa: F401


def trigger(csms, what, cid=None):
    p = {"requestedMessage": what}
    if cid is not None:
        p["connectorId"] = cid
    r = csms.call(CP, "TriggerMessage", p)
    assert "result" in r, r
    return r["result"]["status"]


def new(csms, action, since, pred=lambda p: True, timeout=10):
    """Payload of the first `action` received after `since` matching pred."""
    m = csms.wait_for(lambda m: m["action"] == action and m["t"] >= since and pred(m["payload"]),
                      timeout=timeout)
    return m["payload"]


def test_each_message_and_connector(charger):
    sim, csms = charger
    r = csms.call(CP, "GetConfiguration", {"key": ["SupportedFeatureProfiles"]})["result"]
    profiles = r["configurationKey"][0]["value"].split(",")
    assert {"RemoteTrigger", "Reservation", "LocalAuthListManagement"} <= set(profiles)
    t = time.time()
    assert trigger(csms, "Heartbeat") == "Accepted"
    new(csms, "Heartbeat", t)
    t = time.time()
    assert trigger(csms, "BootNotification") == "Accepted"
    assert new(csms, "BootNotification", t)["chargePointModel"]
    for what in ("DiagnosticsStatusNotification", "FirmwareStatusNotification"):
        t = time.time()
        assert trigger(csms, what) == "Accepted"
        assert new(csms, what, t) == {"status": "Idle"}
    # StatusNotification: all (charge point + connector), connector 1, connector 0.
    t = time.time()
    assert trigger(csms, "StatusNotification") == "Accepted"
    new(csms, "StatusNotification", t, lambda p: p["connectorId"] == 0)
    assert new(csms, "StatusNotification", t, lambda p: p["connectorId"] == 1)["status"] == \
        "Available"
    t = time.time()
    assert trigger(csms, "StatusNotification", 1) == "Accepted"
    new(csms, "StatusNotification", t, lambda p: p["connectorId"] == 1)
    t = time.time()
    assert trigger(csms, "StatusNotification", 0) == "Accepted"
    new(csms, "StatusNotification", t, lambda p: p["connectorId"] == 0)
    # MeterValues without a transaction: context Trigger, no transactionId.
    t = time.time()
    assert trigger(csms, "MeterValues", 1) == "Accepted"
    mv = new(csms, "MeterValues", t)
    assert mv["connectorId"] == 1 and "transactionId" not in mv
    values = mv["meterValue"][0]["sampledValue"]
    assert {v["context"] for v in values} == {"Trigger"}
    assert "Energy.Active.Import.Register" in {v["measurand"] for v in values}
    # Refusals.
    assert trigger(csms, "StatusNotification", 2) == "Rejected"
    assert trigger(csms, "MeterValues", 7) == "Rejected"
    assert trigger(csms, "Heartbeat", -1) == "Rejected"
    frame = json.dumps([2, "trig-x", "TriggerMessage",
                        {"requestedMessage": "SignChargePointCertificate"}])
    assert csms.raw(CP, frame, wait_id="trig-x") == [3, "trig-x", {"status": "NotImplemented"}]
    # During a transaction MeterValues carries its transactionId.
    st = start_session(sim, csms)
    txid = conn(st)["transaction_id"]
    t = time.time()
    assert trigger(csms, "MeterValues") == "Accepted"
    mv = new(csms, "MeterValues", t, lambda p: p["meterValue"][0]["sampledValue"][0]["context"]
             == "Trigger")
    assert mv["transactionId"] == txid
    assert csms.violations() == []


def test_trigger_while_boot_is_pending(labcsms, sim_factory):
    csms = labcsms
    csms.configure(boot_status="Pending", boot_interval=300)
    sim = sim_factory(csms=csms.url, cp_id=CP)
    sim.wait_for(lambda s: s.get("registration") == "Pending", timeout=20)
    csms.wait_connected(CP)
    t = time.time()
    assert trigger(csms, "StatusNotification", 1) == "Accepted"
    assert new(csms, "StatusNotification", t)["connectorId"] == 1
    assert trigger(csms, "Heartbeat") == "Accepted"
    new(csms, "Heartbeat", t)
    assert len(csms.messages(CP, "BootNotification")) == 1  # the interval is 300 s
    csms.configure(boot_status="Accepted")
    t = time.time()
    assert trigger(csms, "BootNotification") == "Accepted"
    new(csms, "BootNotification", t)
    sim.wait_for(lambda s: s.get("registration") == "Accepted", timeout=10)
    assert csms.violations() == []
