"""Helpers for the Core-profile whole-charger tests (host_tests/test_core_*.py).

A booted simulated charger on the lab CSMS with chosen configuration keys, CSMS calls that must
be answered, and readers of what the CSMS received (statuses, transaction messages).
"""

import time

from charger_helpers import CP, conn, ok

# Every standard Core key of OCPP 1.6 section 9.1 (required and optional).
CORE_KEYS = (
    "AllowOfflineTxForUnknownId", "AuthorizationCacheEnabled", "AuthorizeRemoteTxRequests",
    "BlinkRepeat", "ClockAlignedDataInterval", "ConnectionTimeOut", "ConnectorPhaseRotation",
    "ConnectorPhaseRotationMaxLength", "GetConfigurationMaxKeys", "HeartbeatInterval",
    "LightIntensity", "LocalAuthorizeOffline", "LocalPreAuthorize", "MaxEnergyOnInvalidId",
    "MeterValuesAlignedData", "MeterValuesAlignedDataMaxLength", "MeterValuesSampledData",
    "MeterValuesSampledDataMaxLength", "MeterValueSampleInterval", "MinimumStatusDuration",
    "NumberOfConnectors", "ResetRetries", "StopTransactionOnEVSideDisconnect",
    "StopTransactionOnInvalidId", "StopTxnAlignedData", "StopTxnAlignedDataMaxLength",
    "StopTxnSampledData", "StopTxnSampledDataMaxLength", "SupportedFeatureProfiles",
    "SupportedFeatureProfilesMaxLength", "TransactionMessageAttempts",
    "TransactionMessageRetryInterval", "UnlockConnectorOnEVSideDisconnect",
    "WebSocketPingInterval",
)  # fmt: skip
READ_ONLY = (
    "ConnectorPhaseRotationMaxLength", "GetConfigurationMaxKeys",
    "MeterValuesAlignedDataMaxLength", "MeterValuesSampledDataMaxLength", "NumberOfConnectors",
    "StopTxnAlignedDataMaxLength", "StopTxnSampledDataMaxLength", "SupportedFeatureProfiles",
    "SupportedFeatureProfilesMaxLength",
)  # fmt: skip
UID = "04A1B2C3"  # idTag C3B2A104
TAG = "C3B2A104"
UID2 = "11223344"  # idTag 44332211
TAG2 = "44332211"


def boot(sim_factory, csms, config=None, **kw):
    """A simulated charger booted on `csms` (Accepted, every connector Available)."""
    cfg = {"MeterValueSampleInterval": "0"}
    cfg.update(config or {})
    sim = sim_factory(csms=csms.url, cp_id=CP, config=cfg, **kw)
    wait_ready(sim)
    return sim


def wait_ready(sim, timeout=20):
    return sim.wait_for(
        lambda s: s.get("registration") == "Accepted"
        and all(c["status"] == "Available" for c in s["connectors"]),
        timeout=timeout,
    )


def call(csms, action, payload=None, timeout=10):
    """A CSMS call the charger must answer with a valid CALLRESULT; returns its payload."""
    r = csms.call(CP, action, payload or {}, timeout=timeout)
    assert "result" in r, (action, r)
    assert "violation" not in r, (action, r)
    return r["result"]


def call_error(csms, action, payload=None):
    r = csms.call(CP, action, payload or {})
    assert "call_error" in r, (action, r)
    return r["call_error"]


def statuses(csms, cid=1, since=0):
    """StatusNotification statuses of connector `cid` in order (repeats folded)."""
    seq = []
    for m in csms.messages(CP, "StatusNotification", since=since):
        if m["payload"]["connectorId"] == cid:
            s = m["payload"]["status"]
            if not seq or seq[-1] != s:
                seq.append(s)
    return seq


def wait_statuses(csms, expected, cid=1, since=0, timeout=5):
    """Wait until the CSMS received exactly the `expected` status sequence of `cid` (the
    simulator may show a status a moment before its StatusNotification arrives)."""
    deadline = time.monotonic() + timeout
    while True:
        got = statuses(csms, cid, since)
        if got == list(expected) or time.monotonic() >= deadline:
            assert got == list(expected)
            return got
        time.sleep(0.05)


def payloads(csms, action, since=0):
    return [m["payload"] for m in csms.messages(CP, action, since=since)]


def wait_msg(csms, action, pred=lambda p: True, timeout=10, since=0):
    """The payload of the first `action` CALL matching pred."""
    m = csms.wait_for(lambda m: m["action"] == action and pred(m["payload"]), timeout=timeout,
                      since=since)
    return m["payload"]


def plug_and_charge(sim, cid=1):
    """EV plugged in and asking for charge (state C)."""
    ok(sim, {"cmd": "plug", "connector": cid})
    ok(sim, {"cmd": "ev", "connector": cid, "state": "C"})


def tap(sim, uid=UID):
    ok(sim, {"cmd": "tap", "uid": uid})


def wait_charging(sim, cid=1, timeout=10):
    return sim.wait_for(lambda s: conn(s, cid)["status"] == "Charging" and conn(s, cid)["relay"],
                        timeout=timeout)


def start_charging(sim, cid=1, uid=UID):
    """Plug, EV to C, tap: returns the status once charging with a transaction id."""
    plug_and_charge(sim, cid)
    sim.wait_for(lambda s: conn(s, cid)["status"] == "Preparing")
    tap(sim, uid)
    sim.wait_for(lambda s: conn(s, cid)["transaction_id"] is not None)
    return wait_charging(sim, cid)


def wait_idle(sim, timeout=10):
    """Every queued transaction message delivered."""
    return sim.wait_for(lambda s: s["queued_messages"] == 0, timeout=timeout)


def now():
    return time.time()
