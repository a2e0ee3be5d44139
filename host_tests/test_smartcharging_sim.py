"""Smart Charging through the real firmware in the simulator and the lab CSMS (issue 7).

The CSMS sets, clears and queries charging profiles; the charger's `limit_a`, PWM duty and
status follow them, a change lands on its period boundary, a RemoteStartTransaction profile
governs the transaction it starts, and the profiles survive a restart. Every answer is checked by
the lab CSMS against the OCPP 1.6 schemas (including `multipleOf: 0.1` on limits). The simulator
board is single-phase at 230 V, 32 A.
"""

import time
from datetime import datetime, timezone

import pytest

from charger_helpers import CP, charger, conn, ok, start_session, statuses  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def iso(t):
    return datetime.fromtimestamp(int(t), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def profile(pid, purpose="TxDefaultProfile", limits=(16,), step=60, stack=0, unit="A",
            start=None, kind="Absolute", duration=None, **extra):
    sched = {"chargingRateUnit": unit,
             "chargingSchedulePeriod": [{"startPeriod": i * step, "limit": v}
                                        for i, v in enumerate(limits)]}
    if duration is not None:
        sched["duration"] = duration
    if kind != "Relative":
        sched["startSchedule"] = iso(time.time() - 60 if start is None else start)
    cp = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
          "chargingProfileKind": kind, "chargingSchedule": sched}
    cp.update(extra)
    return cp


def set_profile(csms, cid, cp):
    r = csms.call(CP, "SetChargingProfile", {"connectorId": cid, "csChargingProfiles": cp})
    assert "result" in r and "violation" not in r, r
    return r["result"]["status"]


def composite(csms, cid=1, duration=300, unit=None):
    payload = {"connectorId": cid, "duration": duration}
    if unit:
        payload["chargingRateUnit"] = unit
    r = csms.call(CP, "GetCompositeSchedule", payload)
    assert "result" in r and "violation" not in r, r
    return r["result"]


def periods(res):
    sched = res["chargingSchedule"]
    return [(p["startPeriod"], p["limit"]) for p in sched["chargingSchedulePeriod"]]


def duty_is(st, amps):
    """The PWM duty advertises `amps` (IEC 61851: duty = A / 0.6 %, in permille steps)."""
    return abs(conn(st)["duty"] - amps / 60) < 0.001


def test_tx_default_and_charge_point_max_drive_limit_duty_and_composite(charger):
    sim, csms = charger
    assert set_profile(csms, 0, profile(1, limits=(10,))) == "Accepted"
    st = start_session(sim, csms)
    st = sim.wait_for(lambda s: s["limit_a"] == 10.0 and duty_is(s, 10))
    assert conn(st)["status"] == "Charging"
    res = composite(csms, 1, 300)
    assert res["status"] == "Accepted" and res["connectorId"] == 1
    assert res["chargingSchedule"]["chargingRateUnit"] == "A"
    assert res["chargingSchedule"]["duration"] == 300 and periods(res) == [(0, 10.0)]
    assert periods(composite(csms, 1, 300, "W")) == [(0, 2300.0)]  # 1 phase at 230 V
    # A ChargePointMaxProfile in W below it: 1380 W / 230 V = 6 A (numberPhases 3 -> 1 phase).
    assert set_profile(csms, 0, profile(2, "ChargePointMaxProfile", limits=(1380,), unit="W")) \
        == "Accepted"
    sim.wait_for(lambda s: s["limit_a"] == 6.0 and duty_is(s, 6))
    assert periods(composite(csms, 0, 300)) == [(0, 6.0)]
    assert periods(composite(csms, 1, 300, "W")) == [(0, 1380.0)]
    # 13.3 stays 13.3 on the wire (multipleOf 0.1, checked by the CSMS).
    assert csms.call(CP, "ClearChargingProfile", {"id": 2})["result"]["status"] == "Accepted"
    assert set_profile(csms, 0, profile(1, limits=(13.3,))) == "Accepted"
    assert periods(composite(csms, 1, 60)) == [(0, 13.3)]
    assert csms.violations() == []


def test_tx_profile_needs_its_transaction_overrides_tx_default_and_ends_with_it(charger):
    sim, csms = charger
    assert set_profile(csms, 0, profile(1, limits=(16,))) == "Accepted"
    assert set_profile(csms, 1, profile(2, "TxProfile", limits=(8,))) == "Rejected"
    st = start_session(sim, csms)
    txid = conn(st)["transaction_id"]
    assert st["limit_a"] == 16.0
    wrong = profile(2, "TxProfile", limits=(8,), transactionId=txid + 100)
    assert set_profile(csms, 1, wrong) == "Rejected"
    assert set_profile(csms, 0, profile(2, "TxProfile", limits=(8,))) == "Rejected"
    assert set_profile(csms, 1, profile(2, "TxProfile", limits=(8,), transactionId=txid)) \
        == "Accepted"
    sim.wait_for(lambda s: s["limit_a"] == 8.0 and duty_is(s, 8))
    assert periods(composite(csms)) == [(0, 8.0)]
    ok(sim, {"cmd": "unplug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["status"] == "Available" and s["limit_a"] == 16.0)
    assert periods(composite(csms)) == [(0, 16.0)]  # the TxProfile went with its transaction
    assert csms.call(CP, "ClearChargingProfile", {"chargingProfilePurpose": "TxProfile"})[
        "result"]["status"] == "Unknown"
    assert csms.violations() == []


def test_change_lands_on_the_period_boundary_and_zero_pauses(charger):
    sim, csms = charger
    start_session(sim, csms)
    t0 = int(time.time())
    cp = profile(1, limits=(16, 10, 0), step=4, start=t0, duration=3600)
    assert set_profile(csms, 0, cp) == "Accepted"
    sim.wait_for(lambda s: s["limit_a"] == 16.0, timeout=3)
    st = sim.wait_for(lambda s: s["limit_a"] == 10.0, timeout=10, interval=0.02)
    seen = time.time()
    # Never early; late by at most the second the charger's clock drops from the CSMS time
    # (BootNotification currentTime is read to the second) plus the polling.
    assert t0 + 4 - 0.3 <= seen <= t0 + 4 + 2.5, (t0, seen)
    assert conn(st)["relay"] and conn(sim.wait_for(
        lambda s: duty_is(s, 10), timeout=2))["status"] == "Charging"
    st = sim.wait_for(lambda s: s["limit_a"] == 0.0, timeout=10, interval=0.02)
    seen = time.time()
    assert t0 + 8 - 0.3 <= seen <= t0 + 8 + 2.5, (t0, seen)
    st = sim.wait_for(lambda s: conn(s)["status"] == "SuspendedEVSE")
    assert conn(st)["duty"] == 1.0 and not conn(st)["relay"]
    assert conn(st)["transaction_id"] is not None  # paused, not stopped
    assert periods(composite(csms, 1, 60)) == [(0, 0.0)]
    assert csms.call(CP, "ClearChargingProfile", {})["result"]["status"] == "Accepted"
    st = sim.wait_for(lambda s: conn(s)["status"] == "Charging" and conn(s)["relay"], timeout=20)
    assert st["limit_a"] == 32.0
    seq = statuses(csms)
    assert seq[-1] == "Charging" and "SuspendedEVSE" in seq[seq.index("Charging"):], seq
    assert csms.violations() == []


def test_remote_start_profile_governs_the_transaction_it_starts(charger):
    sim, csms = charger
    bad = profile(5, "TxDefaultProfile", limits=(12,))
    r = csms.call(CP, "RemoteStartTransaction",
                  {"connectorId": 1, "idTag": "REMOTE1", "chargingProfile": bad})
    assert r["result"]["status"] == "Rejected"
    rel = profile(5, "TxProfile", limits=(12, 7), step=600, kind="Relative")
    r = csms.call(CP, "RemoteStartTransaction",
                  {"connectorId": 1, "idTag": "REMOTE1", "chargingProfile": rel})
    assert r["result"]["status"] == "Accepted"
    ok(sim, {"cmd": "plug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["transaction_id"] is not None, timeout=15)
    ok(sim, {"cmd": "ev", "connector": 1, "state": "C"})
    st = sim.wait_for(lambda s: conn(s)["status"] == "Charging" and s["limit_a"] == 12.0)
    assert conn(st)["id_tag"] == "REMOTE1"
    sim.wait_for(lambda s: duty_is(s, 12))
    res = composite(csms, 1, 1200)
    start = csms.messages(CP, "StartTransaction")[0]["payload"]["timestamp"]
    offset = int(time.time()) - int(datetime.fromisoformat(start.replace("Z", "+00:00"))
                                    .timestamp())
    # Relative: 12 A for the first 600 s of the transaction, then 7 A.
    p = periods(res)
    assert p[0] == (0, 12.0) and p[1][1] == 7.0 and abs(p[1][0] - (600 - offset)) <= 2, (p, offset)
    ok(sim, {"cmd": "unplug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["status"] == "Available" and s["limit_a"] == 32.0)
    assert csms.violations() == []


def test_profiles_survive_a_restart(charger):
    sim, csms = charger
    t_day = int(time.time()) // 86400 * 86400
    daily = profile(1, limits=(14, 9), step=43200, kind="Recurring", recurrencyKind="Daily",
                    start=t_day)
    assert set_profile(csms, 0, daily) == "Accepted"
    assert set_profile(csms, 0, profile(2, "ChargePointMaxProfile", limits=(20,))) == "Accepted"
    before = periods(composite(csms, 1, 3600))
    boots = len(csms.messages(CP, "BootNotification"))
    assert csms.call(CP, "Reset", {"type": "Soft"})["result"]["status"] == "Accepted"
    csms.wait_for(lambda m: m["action"] == "BootNotification"
                  and len(csms.messages(CP, "BootNotification")) > boots, timeout=30)
    sim.wait_for(lambda s: s.get("registration") == "Accepted"
                 and conn(s)["status"] == "Available", timeout=30)
    after = periods(composite(csms, 1, 3600))
    assert [v for _, v in after] == [v for _, v in before] and after[0][1] in (14.0, 9.0)
    sim.wait_for(lambda s: s["limit_a"] == after[0][1], timeout=3)
    assert csms.call(CP, "ClearChargingProfile", {"id": 2})["result"]["status"] == "Accepted"
    assert csms.violations() == []


def test_key_bounds_and_refusals(labcsms, sim_factory):
    csms = labcsms
    sim = sim_factory(csms=csms.url, cp_id=CP, connectors=2, config={
        "MaxChargingProfilesInstalled": "2", "ChargeProfileMaxStackLevel": "2",
        "ChargingScheduleMaxPeriods": "3", "ChargingScheduleAllowedChargingRateUnit": "Current"})
    sim.wait_for(lambda s: s.get("registration") == "Accepted", timeout=20)
    keys = ["ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit",
            "ChargingScheduleMaxPeriods", "MaxChargingProfilesInstalled"]
    got = csms.call(CP, "GetConfiguration", {"key": keys})["result"]["configurationKey"]
    assert {k["key"]: (k["value"], k["readonly"]) for k in got} == {
        "ChargeProfileMaxStackLevel": ("2", True),
        "ChargingScheduleAllowedChargingRateUnit": ("Current", True),
        "ChargingScheduleMaxPeriods": ("3", True), "MaxChargingProfilesInstalled": ("2", True)}
    assert set_profile(csms, 0, profile(1, stack=3)) == "Rejected"
    assert set_profile(csms, 0, profile(1, limits=(6, 7, 8, 9))) == "Rejected"
    assert set_profile(csms, 0, profile(1, unit="W", limits=(2300,))) == "Rejected"
    assert set_profile(csms, 2, profile(1, "ChargePointMaxProfile")) == "Rejected"
    assert set_profile(csms, 3, profile(1)) == "Rejected"
    assert set_profile(csms, 0, profile(1, stack=1, limits=(6, 7, 8))) == "Accepted"
    assert set_profile(csms, 2, profile(2, stack=1, limits=(10,))) == "Accepted"
    assert set_profile(csms, 0, profile(3, stack=2)) == "Rejected"  # 2 installed already
    assert set_profile(csms, 0, profile(1, stack=2, limits=(9,))) == "Accepted"  # replaces id 1
    assert composite(csms, 1, 60, "W") == {"status": "Rejected"}
    assert composite(csms, 3, 60) == {"status": "Rejected"}
    assert periods(composite(csms, 2, 60)) == [(0, 10.0)]
    assert periods(composite(csms, 0, 60)) == [(0, 19.0)]  # 9 A + 10 A for the two connectors
    clear = {"connectorId": 2, "chargingProfilePurpose": "TxDefaultProfile"}
    assert csms.call(CP, "ClearChargingProfile", clear)["result"]["status"] == "Accepted"
    assert csms.call(CP, "ClearChargingProfile", clear)["result"]["status"] == "Unknown"
    assert periods(composite(csms, 2, 60)) == [(0, 9.0)]
    assert csms.violations() == []
