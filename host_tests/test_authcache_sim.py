"""Offline authorisation: the authorization cache, AllowOfflineTxForUnknownId, ClearCache.

The real firmware against the lab CSMS: a card the CSMS accepted while online starts a session
offline from the cache (LocalAuthorizeOffline); an expired or cleared entry does not; an unknown
card charges offline only with AllowOfflineTxForUnknownId, and the StartTransaction answer
(delivered when the link is back) then decides about the session.
"""

import datetime

from charger_helpers import CP, conn, ok

CARD = "04A1B2C3"  # idTag C3B2A104
BASE = {"MeterValueSampleInterval": "0", "TransactionMessageRetryInterval": "1"}


def _boot(sim_factory, csms, **config):
    sim = sim_factory(csms=csms.url, cp_id=CP, config=dict(BASE, **config))
    sim.wait_for(lambda s: s.get("registration") == "Accepted" and conn(s)["status"] == "Available")
    return sim


def _tap_online_then_go_offline(sim, csms):
    ok(sim, {"cmd": "tap", "uid": CARD})
    csms.wait_for("Authorize", timeout=10)
    sim.wait_for(lambda s: conn(s)["status"] == "Preparing")
    ok(sim, {"cmd": "tap", "uid": CARD})  # the same card again: cancel the waiting card
    sim.wait_for(lambda s: conn(s)["status"] == "Available")
    ok(sim, {"cmd": "net", "up": False})
    sim.wait_for(lambda s: s["ocpp"] == "Offline")


def _offline_tap_starts(sim, uid=CARD):
    ok(sim, {"cmd": "plug", "connector": 1})
    ok(sim, {"cmd": "tap", "uid": uid})
    try:
        sim.wait_for(lambda s: s["queued_messages"] > 0, timeout=3)
        return True
    except AssertionError:
        return False


def test_cached_card_starts_offline(labcsms, sim_factory):
    sim = _boot(sim_factory, labcsms)
    _tap_online_then_go_offline(sim, labcsms)
    assert _offline_tap_starts(sim)
    ok(sim, {"cmd": "net", "up": True})
    sim.wait_for(lambda s: s["ocpp"] == "Connected" and conn(s)["transaction_id"] is not None,
                 timeout=30)
    assert labcsms.violations() == []


def test_cache_disabled_or_cleared_refuses_offline(labcsms, sim_factory):
    sim = _boot(sim_factory, labcsms, AuthorizationCacheEnabled="false")
    _tap_online_then_go_offline(sim, labcsms)
    assert not _offline_tap_starts(sim)
    sim.stop()
    sim2 = _boot(sim_factory, labcsms)
    ok(sim2, {"cmd": "tap", "uid": CARD})
    sim2.wait_for(lambda s: conn(s)["status"] == "Preparing")
    ok(sim2, {"cmd": "tap", "uid": CARD})
    sim2.wait_for(lambda s: conn(s)["status"] == "Available")
    r = labcsms.call(CP, "ClearCache", {})
    assert r["result"]["status"] == "Accepted"
    ok(sim2, {"cmd": "net", "up": False})
    sim2.wait_for(lambda s: s["ocpp"] == "Offline")
    assert not _offline_tap_starts(sim2)


def test_expired_cache_entry_is_refused_offline(labcsms, sim_factory):
    past = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1))
    labcsms.configure(id_tags={"C3B2A104": {"status": "Accepted",
                                            "expiryDate": past.strftime("%Y-%m-%dT%H:%M:%SZ")}})
    sim = _boot(sim_factory, labcsms)
    _tap_online_then_go_offline(sim, labcsms)
    assert not _offline_tap_starts(sim)


def test_unknown_card_offline_only_with_allow_offline_tx_for_unknown_id(labcsms, sim_factory):
    sim = _boot(sim_factory, labcsms)
    ok(sim, {"cmd": "net", "up": False})
    sim.wait_for(lambda s: s["ocpp"] == "Offline")
    assert not _offline_tap_starts(sim, "11223344")
    sim2 = _boot(sim_factory, labcsms, AllowOfflineTxForUnknownId="true")
    ok(sim2, {"cmd": "net", "up": False})
    sim2.wait_for(lambda s: s["ocpp"] == "Offline")
    assert _offline_tap_starts(sim2, "11223344")
    # Back online the CSMS says Invalid: StopTransactionOnInvalidId ends it (DeAuthorized).
    labcsms.configure(id_tags={"44332211": "Invalid"})
    ok(sim2, {"cmd": "net", "up": True})
    stop = labcsms.wait_for("StopTransaction", timeout=30)["payload"]
    assert stop["reason"] == "DeAuthorized"
    assert labcsms.violations() == []
