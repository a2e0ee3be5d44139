"""OCPP 1.6 payload specs for ocpp16.schema: what the CSMS may ask, and what it may answer.

Requests of every CSMS -> charger action of the six 1.6 feature profiles (`<ACTION>_REQ`), and
confirmations of every charger -> CSMS action (`<ACTION>_CONF`), so the charger checks both
the CALLs it gets and the CALLRESULTs to its own CALLs. Field names, types, enums and maxLength
are the facts of the OCA OCPP 1.6 JSON schemas (as shipped in the `ocpp` package 2.1.0,
`ocpp/v16/schemas/`); notation in the ocpp16.schema docstring. host_tests/test_rpc_properties.py
cross-checks every spec against those schemas.

Memory: specs are tuples of constants (flash when frozen); see the report on import cost in
host_tests/mp/test_schema.py (`test_specs_import_heap_cost`).
"""

# Shared enums and sub-objects.
_AUTH_STATUS = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")
_PURPOSE = ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")
_RATE_UNIT = ("A", "W")

ID_TAG_INFO = ("expiryDate", "t", None, "parentIdTag", "s", 20, "status", "E", _AUTH_STATUS)

CHARGING_SCHEDULE_PERIOD = (
    "startPeriod",
    "I",
    None,
    "limit",
    "D",
    None,
    "numberPhases",
    "i",
    None,
)

CHARGING_SCHEDULE = (
    "duration", "i", None,
    "startSchedule", "t", None,
    "chargingRateUnit", "E", _RATE_UNIT,
    "chargingSchedulePeriod", "A", ("o", CHARGING_SCHEDULE_PERIOD),
    "minChargingRate", "d", None,
)  # fmt: skip

CHARGING_PROFILE = (
    "chargingProfileId", "I", None,
    "transactionId", "i", None,
    "stackLevel", "I", None,
    "chargingProfilePurpose", "E", _PURPOSE,
    "chargingProfileKind", "E", ("Absolute", "Recurring", "Relative"),
    "recurrencyKind", "e", ("Daily", "Weekly"),
    "validFrom", "t", None,
    "validTo", "t", None,
    "chargingSchedule", "O", CHARGING_SCHEDULE,
)  # fmt: skip

EMPTY = ()

# ---- CSMS -> charger requests -------------------------------------------------------------
# Core
CHANGE_AVAILABILITY_REQ = ("connectorId", "I", None, "type", "E", ("Inoperative", "Operative"))
CHANGE_CONFIGURATION_REQ = ("key", "S", 50, "value", "S", 500)
CLEAR_CACHE_REQ = EMPTY
DATA_TRANSFER_REQ = ("vendorId", "S", 255, "messageId", "s", 50, "data", "s", None)
GET_CONFIGURATION_REQ = ("key", "a", ("s", 50))
REMOTE_START_TRANSACTION_REQ = (
    "connectorId", "i", None,
    "idTag", "S", 20,
    "chargingProfile", "o", CHARGING_PROFILE,
)  # fmt: skip
REMOTE_STOP_TRANSACTION_REQ = ("transactionId", "I", None)
RESET_REQ = ("type", "E", ("Hard", "Soft"))
UNLOCK_CONNECTOR_REQ = ("connectorId", "I", None)
# Firmware management
GET_DIAGNOSTICS_REQ = (
    "location", "U", None,
    "retries", "i", None,
    "retryInterval", "i", None,
    "startTime", "t", None,
    "stopTime", "t", None,
)  # fmt: skip
UPDATE_FIRMWARE_REQ = (
    "location", "U", None,
    "retries", "i", None,
    "retrieveDate", "T", None,
    "retryInterval", "i", None,
)  # fmt: skip
# Local auth list management
SEND_LOCAL_LIST_REQ = (
    "listVersion", "I", None,
    "localAuthorizationList", "a", ("o", ("idTag", "S", 20, "idTagInfo", "o", ID_TAG_INFO)),
    "updateType", "E", ("Differential", "Full"),
)  # fmt: skip
GET_LOCAL_LIST_VERSION_REQ = EMPTY
# Reservation
RESERVE_NOW_REQ = (
    "connectorId", "I", None,
    "expiryDate", "T", None,
    "idTag", "S", 20,
    "parentIdTag", "s", 20,
    "reservationId", "I", None,
)  # fmt: skip
CANCEL_RESERVATION_REQ = ("reservationId", "I", None)
# Smart charging
SET_CHARGING_PROFILE_REQ = ("connectorId", "I", None, "csChargingProfiles", "O", CHARGING_PROFILE)
CLEAR_CHARGING_PROFILE_REQ = (
    "id", "i", None,
    "connectorId", "i", None,
    "chargingProfilePurpose", "e", _PURPOSE,
    "stackLevel", "i", None,
)  # fmt: skip
GET_COMPOSITE_SCHEDULE_REQ = (
    "connectorId", "I", None,
    "duration", "I", None,
    "chargingRateUnit", "e", _RATE_UNIT,
)  # fmt: skip
# Remote trigger
TRIGGER_MESSAGE_REQ = (
    "requestedMessage", "E", (
        "BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
        "Heartbeat", "MeterValues", "StatusNotification",
    ),
    "connectorId", "i", None,
)  # fmt: skip

# ---- CSMS answers to charger -> CSMS requests ---------------------------------------------
AUTHORIZE_CONF = ("idTagInfo", "O", ID_TAG_INFO)
BOOT_NOTIFICATION_CONF = (
    "status", "E", ("Accepted", "Pending", "Rejected"),
    "currentTime", "T", None,
    "interval", "I", None,
)  # fmt: skip
DATA_TRANSFER_CONF = (
    "status", "E", ("Accepted", "Rejected", "UnknownMessageId", "UnknownVendorId"),
    "data", "s", None,
)  # fmt: skip
HEARTBEAT_CONF = ("currentTime", "T", None)
METER_VALUES_CONF = EMPTY
START_TRANSACTION_CONF = ("idTagInfo", "O", ID_TAG_INFO, "transactionId", "I", None)
STATUS_NOTIFICATION_CONF = EMPTY
STOP_TRANSACTION_CONF = ("idTagInfo", "o", ID_TAG_INFO)
DIAGNOSTICS_STATUS_NOTIFICATION_CONF = EMPTY
FIRMWARE_STATUS_NOTIFICATION_CONF = EMPTY

# Lookup table as flat (action, spec) pairs: a linear scan of ten entries, no dict to build.
_CONFIRMATIONS = (
    "Authorize", AUTHORIZE_CONF,
    "BootNotification", BOOT_NOTIFICATION_CONF,
    "DataTransfer", DATA_TRANSFER_CONF,
    "Heartbeat", HEARTBEAT_CONF,
    "MeterValues", METER_VALUES_CONF,
    "StartTransaction", START_TRANSACTION_CONF,
    "StatusNotification", STATUS_NOTIFICATION_CONF,
    "StopTransaction", STOP_TRANSACTION_CONF,
    "DiagnosticsStatusNotification", DIAGNOSTICS_STATUS_NOTIFICATION_CONF,
    "FirmwareStatusNotification", FIRMWARE_STATUS_NOTIFICATION_CONF,
)  # fmt: skip


def confirmation_spec(action):
    """Spec of the CSMS answer to a charger -> CSMS action, or None if not a 1.6 one."""
    t = _CONFIRMATIONS
    for i in range(0, len(t), 2):
        if t[i] == action:
            return t[i + 1]
    return None
