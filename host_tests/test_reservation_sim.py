"""Reservation profile end to end: ReserveNow, CancelReservation, status Reserved, reboot.

The real firmware in the simulator against the lab CSMS (OCPP 1.6 5.15, 5.1): every ReserveNow
answer (Accepted, Occupied, Faulted, Unavailable, Rejected), only the reserved idTag (or one with
the reservation's parentIdTag) starts on a reserved connector and its StartTransaction carries
the reservationId, expiry, cancellation, connector 0 with and without
ReserveConnectorZeroSupported, and a reservation that survives a power cut.
"""

from datetime import datetime, timedelta, timezone

from charger_helpers import CP, charger, conn, ok, statuses  # noqa: F401

MINE = "04A1B2C3"  # card UID; idTag C3B2A104
MINE_TAG = "C3B2A104"
OTHER = "0A0B0C0D"  # idTag 0D0C0B0A


def later(seconds):
    t = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def reserve(csms, rid, cid=1, tag=MINE_TAG, seconds=3600, parent=None):
    p = {"connectorId": cid, "expiryDate": later(seconds), "idTag": tag, "reservationId": rid}
    if parent:
        p["parentIdTag"] = parent
    r = csms.call(CP, "ReserveNow", p)
    assert "result" in r, r
    return r["result"]["status"]


def status_is(sim, want, cid=1, timeout=10):
    return sim.wait_for(lambda s: conn(s, cid)["status"] == want, timeout=timeout)


def test_reserved_connector_starts_only_for_its_idtag(charger):
    sim, csms = charger
    assert reserve(csms, 7) == "Accepted"
    status_is(sim, "Reserved")
    ok(sim, {"cmd": "plug", "connector": 1})  # a foreign EV: the connector stays Reserved
    ok(sim, {"cmd": "tap", "uid": OTHER})
    csms.wait_for(lambda m: m["action"] == "Authorize" and m["payload"]["idTag"] == "0D0C0B0A")
    st = status_is(sim, "Reserved")
    assert conn(st)["transaction_id"] is None and st["queued_messages"] == 0
    ok(sim, {"cmd": "tap", "uid": MINE})
    sim.wait_for(lambda s: conn(s)["transaction_id"] is not None)
    start = csms.wait_for("StartTransaction")["payload"]
    assert start["idTag"] == MINE_TAG and start["reservationId"] == 7
    ok(sim, {"cmd": "unplug", "connector": 1})
    status_is(sim, "Available")
    # The transaction used the reservation up: nothing left to cancel.
    assert csms.call(CP, "CancelReservation", {"reservationId": 7})["result"]["status"] == \
        "Rejected"
    seq = statuses(csms)
    assert seq[:3] == ["Available", "Reserved", "Preparing"], seq  # G2, never Reserved -> tx
    assert csms.violations() == []


def test_reserve_now_answers_each_status(charger):
    sim, csms = charger
    assert reserve(csms, 1, cid=2) == "Rejected"  # no such connector
    assert reserve(csms, 1, seconds=-60) == "Rejected"  # already expired
    assert reserve(csms, 1) == "Accepted"
    assert reserve(csms, 2) == "Occupied"  # reserved by another reservation
    assert reserve(csms, 2, cid=0) == "Occupied"  # the only connector is held
    assert reserve(csms, 1, tag="NEWTAG") == "Accepted"  # same id: replaced
    assert csms.call(CP, "CancelReservation", {"reservationId": 1})["result"]["status"] == \
        "Accepted"
    assert csms.call(CP, "CancelReservation", {"reservationId": 1})["result"]["status"] == \
        "Rejected"
    status_is(sim, "Available")
    ok(sim, {"cmd": "plug", "connector": 1})
    status_is(sim, "Preparing")
    assert reserve(csms, 3) == "Occupied"  # Preparing
    ok(sim, {"cmd": "unplug", "connector": 1})
    status_is(sim, "Available")
    ok(sim, {"cmd": "plug", "connector": 1})
    ok(sim, {"cmd": "fault", "kind": "rcd", "on": True})
    status_is(sim, "Faulted")
    assert reserve(csms, 4) == "Faulted"
    ok(sim, {"cmd": "fault", "kind": "rcd", "on": False})
    ok(sim, {"cmd": "unplug", "connector": 1})  # a residual-current trip clears on unplug
    status_is(sim, "Available")
    r = csms.call(CP, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert r["result"]["status"] == "Accepted"
    status_is(sim, "Unavailable")
    assert reserve(csms, 5) == "Unavailable"
    assert reserve(csms, 5, cid=0) == "Unavailable"
    csms.call(CP, "ChangeAvailability", {"connectorId": 1, "type": "Operative"})
    status_is(sim, "Available")
    # A reservation ends when its connector goes Unavailable (5.15).
    assert reserve(csms, 6) == "Accepted"
    status_is(sim, "Reserved")
    csms.call(CP, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    status_is(sim, "Unavailable")
    csms.call(CP, "ChangeAvailability", {"connectorId": 1, "type": "Operative"})
    status_is(sim, "Available")
    assert csms.call(CP, "CancelReservation", {"reservationId": 6})["result"]["status"] == \
        "Rejected"
    assert csms.violations() == []


def test_reservation_expires_and_parent_idtag_may_use_it(charger):
    sim, csms = charger
    assert reserve(csms, 11, seconds=3) == "Accepted"
    status_is(sim, "Reserved")
    status_is(sim, "Available", timeout=10)  # expired: Available again, reported
    assert csms.call(CP, "CancelReservation", {"reservationId": 11})["result"]["status"] == \
        "Rejected"
    # Reserved for another idTag of the same fleet: a card with that parent may start.
    csms.configure(id_tags={MINE_TAG: {"status": "Accepted", "parentIdTag": "FLEET42"}})
    assert reserve(csms, 12, tag="SOMEONE", parent="FLEET42") == "Accepted"
    status_is(sim, "Reserved")
    ok(sim, {"cmd": "tap", "uid": MINE})
    status_is(sim, "Preparing")
    ok(sim, {"cmd": "plug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["transaction_id"] is not None)
    assert csms.wait_for("StartTransaction")["payload"]["reservationId"] == 12
    assert csms.violations() == []


def test_connector_zero_and_its_configuration_key(labcsms, sim_factory):
    csms = labcsms
    sim = sim_factory(csms=csms.url, cp_id=CP, connectors=2,
                      config={"MeterValueSampleInterval": "0"})
    sim.wait_for(lambda s: s.get("registration") == "Accepted"
                 and conn(s, 2)["status"] == "Available", timeout=20)
    key = csms.call(CP, "GetConfiguration", {"key": ["ReserveConnectorZeroSupported"]})
    assert key["result"]["configurationKey"] == [
        {"key": "ReserveConnectorZeroSupported", "readonly": True, "value": "true"}]
    assert reserve(csms, 21, cid=0) == "Accepted"
    # Two free connectors: neither is held yet. A foreign session takes connector 1 ...
    ok(sim, {"cmd": "plug", "connector": 1})
    ok(sim, {"cmd": "tap", "uid": OTHER})
    sim.wait_for(lambda s: conn(s, 1)["transaction_id"] is not None)
    # ... so the last free one is kept for the reservation.
    status_is(sim, "Reserved", cid=2)
    assert reserve(csms, 22, cid=2) == "Occupied"
    ok(sim, {"cmd": "plug", "connector": 2})
    ok(sim, {"cmd": "tap", "uid": MINE})
    sim.wait_for(lambda s: conn(s, 2)["transaction_id"] is not None)
    starts = [m["payload"] for m in csms.messages(CP, "StartTransaction")]
    assert "reservationId" not in starts[0] and starts[1]["reservationId"] == 21
    assert csms.violations() == []
    sim.stop()
    # Read-only, set before boot: without it connector 0 is Rejected.
    sim2 = sim_factory(csms=csms.url, cp_id="CP2", config={
        "ReserveConnectorZeroSupported": "false"})
    sim2.wait_for(lambda s: s.get("registration") == "Accepted", timeout=20)
    r = csms.call("CP2", "ReserveNow", {"connectorId": 0, "expiryDate": later(600),
                                        "idTag": MINE_TAG, "reservationId": 1})
    assert r["result"]["status"] == "Rejected"
    assert csms.violations() == []


def test_reservation_survives_a_power_cut(labcsms, sim_factory, tmp_path):
    csms = labcsms
    state = tmp_path / "state"
    sim = sim_factory(csms=csms.url, cp_id=CP, state_dir=state,
                      config={"MeterValueSampleInterval": "0"})
    sim.wait_for(lambda s: s.get("registration") == "Accepted"
                 and conn(s)["status"] == "Available", timeout=20)
    assert reserve(csms, 31) == "Accepted"
    status_is(sim, "Reserved")
    sim.kill9()
    sim = sim_factory(csms=csms.url, cp_id=CP, state_dir=state)
    st = sim.wait_for(lambda s: s.get("registration") == "Accepted", timeout=20)
    status_is(sim, "Reserved")
    assert csms.call(CP, "CancelReservation", {"reservationId": 31})["result"]["status"] == \
        "Accepted"
    status_is(sim, "Available")
    assert st["ok"] and csms.violations() == []
