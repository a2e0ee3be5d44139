"""ocpp16.schema and ocpp16.specs in the Unix port: notation, error codes, paths, memory."""
# mp-heapsize: 128K

import gc
import sys

import micropython

from ocpp16 import specs
from ocpp16.errors import OCPPError
from ocpp16.schema import validate

OCC = "OccurenceConstraintViolation"
TYP = "TypeConstraintViolation"
PROP = "PropertyConstraintViolation"
FORM = "FormationViolation"

# One field of every type code, optional unless upper case.
SPEC = (
    "s", "s", 5,
    "S", "S", None,
    "e", "e", ("A", "B"),
    "t", "t", None,
    "u", "u", None,
    "i", "i", None,
    "r", "i", (0, 10),
    "lo", "i", (0, None),
    "n", "n", None,
    "d", "d", None,
    "b", "b", None,
    "o", "o", ("x", "I", None),
    "a", "a", ("s", 2),
    "m", "a", ("i", None, 1, 2),
    "ao", "a", ("o", ("k", "E", ("on", "off"))),
)  # fmt: skip

# (payload, None if valid else (code, description))
CASES = (
    ({"S": ""}, None),
    ({"S": "x", "s": "12345", "e": "B", "t": "2024-01-01T00:00:00Z", "u": "ftp://h/p"}, None),
    ({"S": "x", "i": -5, "r": 10, "lo": 99999999999999999999, "n": 1.25, "d": 13.3}, None),
    ({"S": "x", "d": 7, "b": False, "o": {"x": 1}, "a": [], "m": [3], "ao": [{"k": "on"}]}, None),
    ({"S": "x", "d": 0.1 * 3, "a": ["ab", ""], "m": [1, 2], "s": "ééééé", "u": "urn:x"}, None),
    # required / unknown
    ({}, (OCC, "S: required field missing")),
    ({"s": "x"}, (OCC, "S: required field missing")),
    ({"S": "x", "zz": 1}, (FORM, "zz: unknown field")),
    ({"S": "x", "o": {}}, (OCC, "o.x: required field missing")),
    ({"S": "x", "o": {"x": 1, "y": 2}}, (FORM, "o.y: unknown field")),
    ({"S": "x", "ao": [{"k": "on"}, {}]}, (OCC, "ao[1].k: required field missing")),
    # types
    ({"S": 5}, (TYP, "S: string expected")),
    ({"S": None}, (TYP, "S: string expected")),
    ({"S": "x", "e": 1}, (TYP, "e: string expected")),
    ({"S": "x", "t": 0}, (TYP, "t: string expected")),
    ({"S": "x", "u": []}, (TYP, "u: string expected")),
    ({"S": "x", "i": 1.0}, (TYP, "i: integer expected")),
    ({"S": "x", "i": True}, (TYP, "i: integer expected")),
    ({"S": "x", "i": "1"}, (TYP, "i: integer expected")),
    ({"S": "x", "n": "1"}, (TYP, "n: number expected")),
    ({"S": "x", "n": False}, (TYP, "n: number expected")),
    ({"S": "x", "d": None}, (TYP, "d: number expected")),
    ({"S": "x", "b": 0}, (TYP, "b: boolean expected")),
    ({"S": "x", "o": []}, (TYP, "o: object expected")),
    ({"S": "x", "a": {}}, (TYP, "a: array expected")),
    ({"S": "x", "a": ["ok", 1]}, (TYP, "a[1]: string expected")),
    ({"S": "x", "ao": ["x"]}, (TYP, "ao[0]: object expected")),
    ({"S": "x", "o": {"x": "1"}}, (TYP, "o.x: integer expected")),
    # values
    ({"S": "x", "s": "123456"}, (PROP, "s: longer than 5 chars")),
    ({"S": "x", "e": "a"}, (PROP, "e: value not allowed")),  # enums are case-sensitive
    ({"S": "x", "t": "2024-02-30T00:00:00Z"}, (PROP, "t: not an RFC 3339 date-time")),
    ({"S": "x", "u": "no scheme"}, (PROP, "u: not a URI")),
    ({"S": "x", "u": "1http://x"}, (PROP, "u: not a URI")),
    ({"S": "x", "r": 11}, (PROP, "r: out of range")),
    ({"S": "x", "r": -1}, (PROP, "r: out of range")),
    ({"S": "x", "lo": -1}, (PROP, "lo: out of range")),
    ({"S": "x", "d": 13.33}, (PROP, "d: not a multiple of 0.1")),
    ({"S": "x", "d": 0.05}, (PROP, "d: not a multiple of 0.1")),
    ({"S": "x", "n": float("inf")}, (PROP, "n: not a finite number")),
    ({"S": "x", "d": float("nan")}, (PROP, "d: not a finite number")),
    ({"S": "x", "a": ["abc"]}, (PROP, "a[0]: longer than 2 chars")),
    ({"S": "x", "m": []}, (PROP, "m: out of range")),
    ({"S": "x", "m": [1, 2, 3]}, (PROP, "m: out of range")),
    ({"S": "x", "ao": [{"k": "ON"}]}, (PROP, "ao[0].k: value not allowed")),
)


def _check(payload, spec):
    try:
        validate(payload, spec)
    except OCPPError as e:
        return (e.code, e.description)
    return None


def test_type_codes_table():
    for payload, want in CASES:
        assert _check(payload, SPEC) == want, (payload, _check(payload, SPEC), want)


def test_payload_not_an_object_is_a_formation_violation():
    for p in (None, [], "x", 1):
        assert _check(p, SPEC) == (FORM, "payload is not an object")


def test_empty_spec_accepts_only_empty_object():
    assert _check({}, specs.EMPTY) is None
    assert _check({"x": 1}, specs.EMPTY) == (FORM, "x: unknown field")


def test_long_unknown_field_name_is_cut_in_the_description():
    code, desc = _check({"S": "x", "k" * 500: 1}, SPEC)
    assert code == FORM and len(desc) < 60


def test_bad_spec_code_is_our_bug():
    try:
        validate({"a": 1}, ("a", "q", None))
    except ValueError:
        return
    raise AssertionError("bad spec code accepted")


# ---- the 1.6 specs: examples from the OCPP 1.6 text and the 1.6 JSON schemas --------------

PROFILE = {
    "chargingProfileId": 7,
    "transactionId": 3,
    "stackLevel": 0,
    "chargingProfilePurpose": "TxProfile",
    "chargingProfileKind": "Relative",
    "recurrencyKind": "Daily",
    "validFrom": "2024-01-01T00:00:00Z",
    "validTo": "2025-01-01T00:00:00.000+01:00",
    "chargingSchedule": {
        "duration": 3600,
        "startSchedule": "2024-01-01T00:00:00Z",
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 16.0, "numberPhases": 3},
            {"startPeriod": 600, "limit": 6},
        ],
        "minChargingRate": 6.1,
    },
}
TAG_INFO = {"status": "Accepted", "expiryDate": "2024-01-01T00:00:00Z", "parentIdTag": "P1"}

VALID = (
    (specs.CHANGE_AVAILABILITY_REQ, {"connectorId": 0, "type": "Inoperative"}),
    (specs.CHANGE_CONFIGURATION_REQ, {"key": "HeartbeatInterval", "value": "300"}),
    (specs.CLEAR_CACHE_REQ, {}),
    (specs.DATA_TRANSFER_REQ, {"vendorId": "com.example", "messageId": "m", "data": "{}"}),
    (specs.GET_CONFIGURATION_REQ, {}),
    (specs.GET_CONFIGURATION_REQ, {"key": ["HeartbeatInterval", "NumberOfConnectors"]}),
    (specs.REMOTE_START_TRANSACTION_REQ, {"idTag": "ABC"}),
    (
        specs.REMOTE_START_TRANSACTION_REQ,
        {"idTag": "ABC", "connectorId": 1, "chargingProfile": PROFILE},
    ),
    (specs.REMOTE_STOP_TRANSACTION_REQ, {"transactionId": 12}),
    (specs.RESET_REQ, {"type": "Soft"}),
    (specs.UNLOCK_CONNECTOR_REQ, {"connectorId": 1}),
    (
        specs.GET_DIAGNOSTICS_REQ,
        {
            "location": "ftp://user:pw@host/dir/",
            "retries": 2,
            "retryInterval": 30,
            "startTime": "2024-01-01T00:00:00Z",
            "stopTime": "2024-01-02T00:00:00Z",
        },
    ),
    (
        specs.UPDATE_FIRMWARE_REQ,
        {"location": "https://h/fw.bin", "retrieveDate": "2024-01-01T00:00:00Z"},
    ),
    (
        specs.SEND_LOCAL_LIST_REQ,
        {
            "listVersion": 2,
            "updateType": "Differential",
            "localAuthorizationList": [{"idTag": "A"}, {"idTag": "B", "idTagInfo": TAG_INFO}],
        },
    ),
    (specs.GET_LOCAL_LIST_VERSION_REQ, {}),
    (
        specs.RESERVE_NOW_REQ,
        {
            "connectorId": 1,
            "expiryDate": "2024-01-01T00:00:00Z",
            "idTag": "A",
            "parentIdTag": "P",
            "reservationId": 5,
        },
    ),
    (specs.CANCEL_RESERVATION_REQ, {"reservationId": 5}),
    (specs.SET_CHARGING_PROFILE_REQ, {"connectorId": 1, "csChargingProfiles": PROFILE}),
    (specs.CLEAR_CHARGING_PROFILE_REQ, {}),
    (
        specs.CLEAR_CHARGING_PROFILE_REQ,
        {"id": 1, "connectorId": 0, "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 2},
    ),
    (
        specs.GET_COMPOSITE_SCHEDULE_REQ,
        {"connectorId": 0, "duration": 86400, "chargingRateUnit": "W"},
    ),
    (specs.TRIGGER_MESSAGE_REQ, {"requestedMessage": "StatusNotification", "connectorId": 1}),
    (specs.AUTHORIZE_CONF, {"idTagInfo": TAG_INFO}),
    (
        specs.BOOT_NOTIFICATION_CONF,
        {"status": "Accepted", "currentTime": "2024-01-01T00:00:00.123Z", "interval": 300},
    ),
    (specs.DATA_TRANSFER_CONF, {"status": "UnknownVendorId"}),
    (specs.HEARTBEAT_CONF, {"currentTime": "2024-01-01T00:00:00Z"}),
    (specs.METER_VALUES_CONF, {}),
    (specs.START_TRANSACTION_CONF, {"idTagInfo": {"status": "ConcurrentTx"}, "transactionId": 1}),
    (specs.STATUS_NOTIFICATION_CONF, {}),
    (specs.STOP_TRANSACTION_CONF, {}),
    (specs.STOP_TRANSACTION_CONF, {"idTagInfo": {"status": "Blocked"}}),
    (specs.DIAGNOSTICS_STATUS_NOTIFICATION_CONF, {}),
    (specs.FIRMWARE_STATUS_NOTIFICATION_CONF, {}),
)

INVALID = (
    (specs.CHANGE_AVAILABILITY_REQ, {"connectorId": 0, "type": "Available"}, PROP),
    (specs.CHANGE_CONFIGURATION_REQ, {"key": "k" * 51, "value": "v"}, PROP),
    (specs.CHANGE_CONFIGURATION_REQ, {"key": "k", "value": 300}, TYP),
    (specs.REMOTE_START_TRANSACTION_REQ, {"idTag": "A" * 21}, PROP),
    (specs.REMOTE_START_TRANSACTION_REQ, {"connectorId": 1}, OCC),
    (specs.REMOTE_STOP_TRANSACTION_REQ, {"transactionId": "12"}, TYP),
    (specs.RESET_REQ, {"type": "hard"}, PROP),
    (specs.UPDATE_FIRMWARE_REQ, {"location": "https://h/fw.bin"}, OCC),
    (
        specs.SEND_LOCAL_LIST_REQ,
        {
            "listVersion": 2,
            "updateType": "Full",
            "localAuthorizationList": [{"idTagInfo": TAG_INFO}],
        },
        OCC,
    ),
    (specs.SET_CHARGING_PROFILE_REQ, {"connectorId": 1, "csChargingProfiles": {}}, OCC),
    (specs.TRIGGER_MESSAGE_REQ, {"requestedMessage": "StartTransaction"}, PROP),
    (
        specs.BOOT_NOTIFICATION_CONF,
        {"status": "Accepted", "currentTime": "2024-01-01 00:00:00", "interval": 300},
        PROP,
    ),
    (
        specs.BOOT_NOTIFICATION_CONF,
        {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z"},
        OCC,
    ),
    (specs.HEARTBEAT_CONF, {}, OCC),
    (
        specs.START_TRANSACTION_CONF,
        {"idTagInfo": {"status": "Accepted"}, "transactionId": 1, "x": 1},
        FORM,
    ),
)


def test_examples_of_every_spec_are_valid():
    for spec, payload in VALID:
        assert _check(payload, spec) is None, (payload, _check(payload, spec))


def test_broken_examples_get_their_code():
    for spec, payload, code in INVALID:
        got = _check(payload, spec)
        assert got is not None and got[0] == code, (payload, got)


def test_nested_path_in_description():
    p = {"connectorId": 1, "csChargingProfiles": dict(PROFILE)}
    sched = dict(PROFILE["chargingSchedule"])
    sched["chargingSchedulePeriod"] = [
        {"startPeriod": 0, "limit": 13.3},
        {"startPeriod": 60, "limit": 13.33},
    ]
    p["csChargingProfiles"]["chargingSchedule"] = sched
    assert _check(p, specs.SET_CHARGING_PROFILE_REQ) == (
        PROP,
        "csChargingProfiles.chargingSchedule.chargingSchedulePeriod[1].limit:"
        " not a multiple of 0.1",
    )


def test_confirmation_spec_lookup():
    assert specs.confirmation_spec("BootNotification") is specs.BOOT_NOTIFICATION_CONF
    assert specs.confirmation_spec("FirmwareStatusNotification") is specs.EMPTY
    assert specs.confirmation_spec("Reset") is None  # a CSMS -> charger action
    assert specs.confirmation_spec("Nope") is None


def test_validating_a_valid_payload_does_not_allocate():
    # The hot path: a CALL or CALLRESULT without floats checks under a locked heap (floats are
    # boxed on this port, so number fields allocate). Unix ints are 62-bit: dates do not box.
    cases = (
        (
            specs.BOOT_NOTIFICATION_CONF,
            {"status": "Accepted", "currentTime": "2024-01-01T00:00:00.5+01:00", "interval": 300},
        ),
        (
            specs.SEND_LOCAL_LIST_REQ,
            {
                "listVersion": 2,
                "updateType": "Full",
                "localAuthorizationList": [{"idTag": "B", "idTagInfo": TAG_INFO}],
            },
        ),
        (specs.GET_CONFIGURATION_REQ, {"key": ["a", "b"]}),
    )
    for spec, payload in cases:
        micropython.heap_lock()
        try:
            validate(payload, spec)
        finally:
            micropython.heap_unlock()


def test_specs_import_heap_cost():
    # Bound the RAM the specs cost when loaded from source (a fresh copy of the module).
    # Measured on the 64-bit Unix port: about 11 KB; a 32-bit ESP32 needs a bit over half.
    sys.modules.pop("ocpp16.specs", None)
    gc.collect()
    before = gc.mem_alloc()
    __import__("ocpp16.specs")
    gc.collect()
    cost = gc.mem_alloc() - before
    assert 0 < cost < 14000, cost
