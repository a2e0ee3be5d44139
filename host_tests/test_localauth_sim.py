"""Local Auth List Management end to end: a 1,000-entry list, then offline authorisation from it.

The real firmware in the simulator against the lab CSMS (OCPP 1.6 3.5, 5.10, 5.17): the list
sent as one Full update and Differential updates of SendLocalListMaxLength entries up to
LocalAuthListMaxLength, GetLocalListVersion, every SendLocalList answer (VersionMismatch, Failed
for too many entries, over capacity, a Full entry without idTagInfo), then with the network cut
a listed card starts a session and an unlisted or blocked one does not; LocalPreAuthorize starts
a listed card without an Authorize; LocalAuthListEnabled=false ignores the list.
"""

import json

from charger_helpers import CP, charger, conn, ok  # noqa: F401

CHUNK = 47  # SendLocalListMaxLength: (8192 - 170) // 170


def tag(i):
    return "AB%06X" % i  # 8 hex digits: an idTag a 4-byte card can have


def uid(t):
    """The card UID whose idTag (little-endian hex) is t."""
    return bytes(reversed(bytes.fromhex(t))).hex()


def entries(lo, hi, status="Accepted"):
    return [{"idTag": tag(i), "idTagInfo": {"status": status}} for i in range(lo, hi)]


def send(csms, version, kind, items):
    r = csms.call(CP, "SendLocalList", {"listVersion": version, "updateType": kind,
                                         "localAuthorizationList": items})
    assert "result" in r, r
    return r["result"]["status"]


def version(csms):
    return csms.call(CP, "GetLocalListVersion", {})["result"]["listVersion"]


def config(csms, *keys):
    r = csms.call(CP, "GetConfiguration", {"key": list(keys)})["result"]
    return {k["key"]: (k["value"], k["readonly"]) for k in r["configurationKey"]}


def started(sim, csms, card):
    """Tap `card` with the EV plugged in; True if a transaction started."""
    ok(sim, {"cmd": "tap", "uid": card})
    try:
        sim.wait_for(lambda s: conn(s)["id_tag"] is not None, timeout=2)
    except AssertionError:
        return False
    ok(sim, {"cmd": "unplug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["status"] == "Available")
    ok(sim, {"cmd": "plug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["status"] == "Preparing")
    return True


def test_send_local_list_max_length_fits_the_websocket_limit():
    """The largest SendLocalList of SendLocalListMaxLength entries fits net.ws's message limit,
    even with a CSMS that puts spaces after separators."""
    from net.ws import DEFAULT_MAX_MESSAGE
    from ocpp16.localauth import send_list_max

    assert send_list_max() == CHUNK
    worst = {"idTag": "X" * 20, "idTagInfo": {
        "status": "ConcurrentTx", "expiryDate": "2026-01-01T00:00:00.123456789+05:30",
        "parentIdTag": "Y" * 20}}
    frame = [2, "u" * 36, "SendLocalList", {"listVersion": -10**19, "updateType": "Differential",
                                            "localAuthorizationList": [worst] * CHUNK}]
    assert len(json.dumps(frame, separators=(", ", ": ")).encode()) <= DEFAULT_MAX_MESSAGE


def test_thousand_entries_in_differential_updates_then_offline_authorisation(charger):
    sim, csms = charger
    keys = config(csms, "LocalAuthListEnabled", "LocalAuthListMaxLength", "SendLocalListMaxLength")
    assert keys == {"LocalAuthListEnabled": ("true", False),
                    "LocalAuthListMaxLength": ("1000", True),
                    "SendLocalListMaxLength": (str(CHUNK), True)}
    assert version(csms) == 0
    assert send(csms, 1, "Full", entries(0, CHUNK)) == "Accepted"
    v = 1
    for lo in range(CHUNK, 1000, CHUNK):
        v += 1
        assert send(csms, v, "Differential", entries(lo, min(1000, lo + CHUNK))) == "Accepted"
    assert v == 22 and version(csms) == 22
    assert send(csms, 22, "Differential", entries(2000, 2001)) == "VersionMismatch"
    assert send(csms, 23, "Differential", entries(2000, 2001)) == "Failed"  # 1,001 entries
    assert send(csms, 23, "Differential", entries(3000, 3000 + CHUNK + 1)) == "Failed"
    # Make room, and block one card.
    blocked = [{"idTag": tag(500), "idTagInfo": {"status": "Blocked"}}]
    assert send(csms, 23, "Differential", [{"idTag": tag(999)}] + blocked) == "Accepted"
    assert version(csms) == 23
    ok(sim, {"cmd": "plug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["status"] == "Preparing")
    ok(sim, {"cmd": "net", "up": False})
    sim.wait_for(lambda s: s["ocpp"] == "Offline", timeout=15)
    assert started(sim, csms, uid(tag(7)))  # listed: starts offline
    assert started(sim, csms, uid(tag(998)))  # the last Differential's
    assert not started(sim, csms, uid(tag(999)))  # removed again
    assert not started(sim, csms, uid(tag(500)))  # listed as Blocked
    assert not started(sim, csms, "0A0B0C0D")  # not listed
    ok(sim, {"cmd": "net", "up": True})
    sim.wait_for(lambda s: s["ocpp"] == "Connected" and s["queued_messages"] == 0, timeout=30)
    starts = [m["payload"]["idTag"] for m in csms.messages(CP, "StartTransaction")]
    assert starts == [tag(7), tag(998)]
    assert csms.violations() == []


def test_full_update_pre_authorize_and_disabled_list(labcsms, sim_factory):
    csms = labcsms
    sim = sim_factory(csms=csms.url, cp_id=CP, config={
        "MeterValueSampleInterval": "0", "LocalPreAuthorize": "true"})
    sim.wait_for(lambda s: s.get("registration") == "Accepted"
                 and conn(s)["status"] == "Available", timeout=20)
    assert send(csms, 5, "Full", entries(0, 10)) == "Accepted"
    bad = [{"idTag": tag(20)}]  # a Full list entry needs idTagInfo
    assert send(csms, 6, "Full", bad) == "Failed"
    assert send(csms, 0, "Full", entries(0, 2)) == "Failed"  # 0 means an empty list
    assert version(csms) == 5
    assert send(csms, 6, "Full", entries(100, 103)) == "Accepted"  # replaces the 10
    assert version(csms) == 6
    ok(sim, {"cmd": "plug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["status"] == "Preparing")
    # LocalPreAuthorize: a listed card starts at once, no Authorize.
    assert started(sim, csms, uid(tag(101)))
    assert not [m for m in csms.messages(CP, "Authorize")
                if m["payload"]["idTag"] == tag(101)]
    # A card that left the list is asked for.
    csms.configure(default_id_tag_status="Invalid")
    assert not started(sim, csms, uid(tag(1)))
    assert [m for m in csms.messages(CP, "Authorize") if m["payload"]["idTag"] == tag(1)]
    # Disabled: the list is kept but not used, also offline.
    r = csms.call(CP, "ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "false"})
    assert r["result"]["status"] == "Accepted"
    ok(sim, {"cmd": "net", "up": False})
    sim.wait_for(lambda s: s["ocpp"] == "Offline", timeout=15)
    assert not started(sim, csms, uid(tag(102)))
    ok(sim, {"cmd": "net", "up": True})
    sim.wait_for(lambda s: s["ocpp"] == "Connected", timeout=30)
    assert version(csms) == 6
    assert send(csms, 7, "Full", []) == "Accepted"  # emptied: version 0 (5.10)
    assert version(csms) == 0
    assert csms.violations() == []
