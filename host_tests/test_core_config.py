"""Configuration keys of the Core profile: GetConfiguration, ChangeConfiguration, persistence.

Whole-charger part: GetConfiguration without keys returns every standard Core key (with the
readonly flags), listed keys plus `unknownKey`, the GetConfigurationMaxKeys bound (an
OccurenceConstraintViolation, nothing partial), ChangeConfiguration Accepted / Rejected (type,
range, read-only) / NotSupported and the value surviving a reboot, SupportedFeatureProfiles
naming only profiles whose actions answer. Unit part (CPython, lib imported directly): the
charger -> CSMS DataTransfer builder and call, and the Heartbeat answer setting the clock.
"""

import asyncio

import pytest

from charger_helpers import CP
from core_helpers import CORE_KEYS, READ_ONLY, boot, call, call_error, wait_ready

VENDOR_KEYS = ("AuthEnabled", "FreeVendIdTag", "IdTagByteOrder", "IdTagCase", "MaxCurrent",
               "ReconnectBackoffMin", "ReconnectBackoffMax")


def keys_of(result):
    return {k["key"]: k for k in result["configurationKey"]}


def test_get_configuration_returns_every_core_key(labcsms, sim_factory):
    csms = labcsms
    boot(sim_factory, csms, connectors=2)
    r = call(csms, "GetConfiguration")
    got = keys_of(r)
    for k in CORE_KEYS + VENDOR_KEYS:
        assert k in got, k
    for k in CORE_KEYS:
        assert got[k]["readonly"] == (k in READ_ONLY), k
        assert isinstance(got[k]["value"], str) and len(got[k]["value"]) <= 500
    assert got["NumberOfConnectors"]["value"] == "2"
    assert got["AuthEnabled"]["readonly"] is False
    assert "unknownKey" not in r
    assert len(got) <= 500 and csms.violations() == []


def test_get_configuration_listed_and_unknown_keys(labcsms, sim_factory):
    csms = labcsms
    boot(sim_factory, csms)
    r = call(csms, "GetConfiguration", {"key": ["ConnectionTimeOut", "NoSuchKey", "IdTagCase"]})
    assert [k["key"] for k in r["configurationKey"]] == ["ConnectionTimeOut", "IdTagCase"]
    assert r["configurationKey"][1] == {"key": "IdTagCase", "readonly": False, "value": "upper"}
    assert r["unknownKey"] == ["NoSuchKey"]


def test_get_configuration_max_keys(labcsms, sim_factory):
    csms = labcsms
    boot(sim_factory, csms)
    most = int(keys_of(call(csms, "GetConfiguration", {"key": ["GetConfigurationMaxKeys"]}))[
        "GetConfigurationMaxKeys"]["value"])
    keys = list(CORE_KEYS) * (most // len(CORE_KEYS) + 1)
    r = call(csms, "GetConfiguration", {"key": keys[:most]})
    assert len(r["configurationKey"]) == most
    err = call_error(csms, "GetConfiguration", {"key": keys[: most + 1]})
    assert err["code"] == "OccurenceConstraintViolation"


@pytest.mark.parametrize("key,value,status", [
    ("HeartbeatInterval", "120", "Accepted"),
    ("HeartbeatInterval", "two", "Rejected"),
    ("HeartbeatInterval", "-1", "Rejected"),
    ("MeterValueSampleInterval", "1.5", "Rejected"),
    ("LightIntensity", "101", "Rejected"),
    ("StopTransactionOnInvalidId", "yes", "Rejected"),
    ("StopTransactionOnInvalidId", "FALSE", "Accepted"),
    ("MeterValuesSampledData", "Voltage,Current.Import", "Accepted"),
    ("MeterValuesSampledData", "SoC", "Rejected"),
    ("StopTxnSampledData", ",".join(["Voltage"] * 6), "Rejected"),
    ("ConnectorPhaseRotation", "0.RST,1.RST", "Accepted"),
    ("ConnectorPhaseRotation", "1.XYZ", "Rejected"),
    ("NumberOfConnectors", "4", "Rejected"),
    ("SupportedFeatureProfiles", "Core", "Rejected"),
    ("IdTagByteOrder", "middle", "Rejected"),
    ("FreeVendIdTag", "X" * 21, "Rejected"),
    ("MaxCurrent", "5", "Rejected"),
    ("NoSuchKey", "1", "NotSupported"),
])
def test_change_configuration_checks_type_and_range(labcsms, sim_factory, key, value, status):
    csms = labcsms
    boot(sim_factory, csms)
    before = keys_of(call(csms, "GetConfiguration", {"key": [key]})).get(key)
    r = call(csms, "ChangeConfiguration", {"key": key, "value": value})
    assert r["status"] == status
    after = keys_of(call(csms, "GetConfiguration", {"key": [key]})).get(key)
    if status != "Accepted":
        assert after == before
    assert csms.violations() == []


def test_changed_value_survives_a_reboot(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms)
    for key, value in (("ConnectionTimeOut", "45"), ("IdTagCase", "lower"),
                       ("MeterValuesSampledData", "Voltage")):
        assert call(csms, "ChangeConfiguration", {"key": key, "value": value})["status"] == \
            "Accepted"
    assert call(csms, "Reset", {"type": "Hard"})["status"] == "Accepted"
    sim.wait_for(lambda s: s.get("firmware_restarts") == 1, timeout=20)
    wait_ready(sim)
    got = keys_of(call(csms, "GetConfiguration",
                       {"key": ["ConnectionTimeOut", "IdTagCase", "MeterValuesSampledData"]}))
    assert got["ConnectionTimeOut"]["value"] == "45"
    assert got["IdTagCase"]["value"] == "lower"
    assert got["MeterValuesSampledData"]["value"] == "Voltage"


# One CSMS action per profile, harmless on an idle charger, that a profile we claim must answer.
PROBES = {
    "Core": ("ClearCache", {}),
    "LocalAuthListManagement": ("GetLocalListVersion", {}),
    "Reservation": ("CancelReservation", {"reservationId": 424242}),
    "SmartCharging": ("ClearChargingProfile", {"id": 424242}),
    "RemoteTrigger": ("TriggerMessage", {"requestedMessage": "Heartbeat"}),
    "FirmwareManagement": None,  # every action starts a transfer: checked by its own tests
}


def test_supported_feature_profiles_are_implemented(labcsms, sim_factory):
    csms = labcsms
    boot(sim_factory, csms)
    got = keys_of(call(csms, "GetConfiguration", {"key": ["SupportedFeatureProfiles"]}))
    profiles = got["SupportedFeatureProfiles"]["value"].split(",")
    assert "Core" in profiles
    for p in profiles:
        assert p in PROBES, p
        if PROBES[p] is not None:
            action, payload = PROBES[p]
            r = csms.call(CP, action, payload)
            assert "result" in r, (p, r)
    assert csms.violations() == []


# ---- unit tests (CPython) --------------------------------------------------------------------
class FakeClient:
    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    async def call(self, action, payload):
        self.calls.append((action, payload))
        return self.answer


def test_data_transfer_request_fields():
    from ocpp16.core import data_transfer_request

    assert data_transfer_request("com.example") == {"vendorId": "com.example"}
    assert data_transfer_request("v", "m", "d") == {"vendorId": "v", "messageId": "m", "data": "d"}
    for bad in (("",), ("v" * 256,), ("v", "m" * 51), ("v", None, 5), (None,)):
        with pytest.raises(ValueError):
            data_transfer_request(*bad)


def test_data_transfer_to_the_csms():
    from ocpp16.core import send_data_transfer

    client = FakeClient({"status": "Accepted", "data": "pong"})
    status, data = asyncio.run(send_data_transfer(client, "com.example", "ping", "x"))
    assert (status, data) == ("Accepted", "pong")
    assert client.calls == [("DataTransfer", {"vendorId": "com.example", "messageId": "ping",
                                              "data": "x"})]
    client = FakeClient({"status": "UnknownVendorId"})
    assert asyncio.run(send_data_transfer(client, "x")) == ("UnknownVendorId", None)


def test_data_transfer_from_the_csms_reaches_a_registered_vendor():
    from ocpp16.core import data_transfer

    class Ctx:
        vendors = {"com.example": lambda ctx, mid, data: ("Accepted", (mid or "") + (data or ""))}

    assert data_transfer(Ctx(), {"vendorId": "com.example", "messageId": "a", "data": "b"}) == \
        {"status": "Accepted", "data": "ab"}
    assert data_transfer(Ctx(), {"vendorId": "other"}) == {"status": "UnknownVendorId"}


def test_heartbeat_answer_sets_the_clock():
    from ocpp16.client import OCPPClient

    class Hooks:
        times = []

        def set_time(self, text):
            self.times.append(text)

    async def run():
        c = OCPPClient(None, None, None, None, None, None, Hooks(), None)
        c._after_result("Heartbeat", {}, {"currentTime": "2030-01-02T03:04:05Z"}, None)
        return c.hooks.times

    assert asyncio.run(run()) == ["2030-01-02T03:04:05Z"]
