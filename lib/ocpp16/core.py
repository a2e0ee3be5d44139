"""OCPP 1.6 Core profile: configuration keys and the handlers of CSMS-initiated Core actions.

One handler per action (`HANDLERS` at the end), each `(ctx, payload) -> dict` where `ctx` is the
charger (lib/charger/app.py). Payloads arrive validated against ocpp16.specs. Charger-initiated
Core messages are built by the charger (lib/charger: status, session, metering) and the OCPP
client (BootNotification, Heartbeat); `data_transfer()` is the charger -> CSMS DataTransfer.
Rules from OCPP 1.6 sections 5 and 9.1: while the BootNotification is Pending, RemoteStart and
RemoteStopTransaction are Rejected (section 4.2); GetConfiguration takes at most
GetConfigurationMaxKeys keys (more is an OccurenceConstraintViolation, nothing partial).
"""

from ocpp16 import config as cfg
from ocpp16 import specs
from ocpp16.errors import OCPPError

# SupportedFeatureProfiles is built from this list: a profile module that is complete adds its
# name here (OCPP 1.6 names: Core, FirmwareManagement, LocalAuthListManagement, Reservation,
# SmartCharging, RemoteTrigger).
FEATURE_PROFILES = (
    "Core", "FirmwareManagement", "LocalAuthListManagement", "Reservation", "RemoteTrigger",
    "SmartCharging",
)  # fmt: skip
MEASURANDS = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Current.Import",
    "Voltage",
    "Current.Offered",
)
_MEASURANDS_MAX = 5  # items per measurand list (the *MaxLength keys)
_DAY_S = 86400
_ROTATIONS = ("NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR")
_MAX_VENDOR_ID = 255  # DataTransfer vendorId: CiString255
_MAX_MESSAGE_ID = 50  # DataTransfer messageId: CiString50


def declare_keys(c, board):
    """Every standard Core key of OCPP 1.6 section 9.1 with its type, access and default."""
    B, I, L = cfg.BOOL, cfg.INT, cfg.CSL
    meas = _measurands
    c.declare("AllowOfflineTxForUnknownId", B, False)
    c.declare("AuthorizationCacheEnabled", B, True)
    c.declare("AuthorizeRemoteTxRequests", B, True)
    c.declare("BlinkRepeat", I, 3, check=_range(0, 100))
    c.declare("ClockAlignedDataInterval", I, 0, check=_range(0, _DAY_S))
    c.declare("ConnectionTimeOut", I, 60, check=_range(1, 3600))
    c.declare("ConnectorPhaseRotation", L, _default_rotation(board), check=_rotation(board))
    c.declare("ConnectorPhaseRotationMaxLength", I, board.connectors + 1, access="R")
    c.declare("GetConfigurationMaxKeys", I, 64, access="R")
    c.declare("HeartbeatInterval", I, 3600, check=_range(0, _DAY_S))
    c.declare("LightIntensity", I, 100, check=_range(0, 100))
    c.declare("LocalAuthorizeOffline", B, True)
    c.declare("LocalPreAuthorize", B, False)
    c.declare("MaxEnergyOnInvalidId", I, 0, check=_range(0, 1000000))
    c.declare("MeterValuesAlignedData", L, "Energy.Active.Import.Register", check=meas)
    c.declare("MeterValuesAlignedDataMaxLength", I, _MEASURANDS_MAX, access="R")
    c.declare(
        "MeterValuesSampledData", L, "Energy.Active.Import.Register,Power.Active.Import", check=meas
    )
    c.declare("MeterValuesSampledDataMaxLength", I, _MEASURANDS_MAX, access="R")
    c.declare("MeterValueSampleInterval", I, 60, check=_range(0, _DAY_S))
    c.declare("MinimumStatusDuration", I, 0, check=_range(0, 3600))
    c.declare("NumberOfConnectors", I, board.connectors, access="R")
    c.declare("ResetRetries", I, 2, check=_range(0, 10))
    c.declare("StopTransactionOnEVSideDisconnect", B, True)
    c.declare("StopTransactionOnInvalidId", B, True)
    c.declare("StopTxnAlignedData", L, "", check=meas)
    c.declare("StopTxnAlignedDataMaxLength", I, _MEASURANDS_MAX, access="R")
    c.declare("StopTxnSampledData", L, "", check=meas)
    c.declare("StopTxnSampledDataMaxLength", I, _MEASURANDS_MAX, access="R")
    c.declare("SupportedFeatureProfiles", L, ",".join(FEATURE_PROFILES), access="R")
    c.declare("SupportedFeatureProfilesMaxLength", I, 6, access="R")
    c.declare("TransactionMessageAttempts", I, 3, check=_range(1, 100))
    c.declare("TransactionMessageRetryInterval", I, 60, check=_range(0, _DAY_S))
    c.declare("UnlockConnectorOnEVSideDisconnect", B, True)
    c.declare("WebSocketPingInterval", I, 30, check=_range(0, _DAY_S))


def _range(lo, hi):
    def check(v):
        if not lo <= v <= hi:
            raise ValueError("must be {}..{}".format(lo, hi))

    return check


def _measurands(v):
    items = v.split(",") if v else ()
    if len(items) > _MEASURANDS_MAX:
        raise ValueError("at most {} measurands".format(_MEASURANDS_MAX))
    for item in items:
        if item not in MEASURANDS:
            raise ValueError("unsupported measurand {}".format(item))


def _default_rotation(board):
    # Connector 0 is the charge point's own supply; single-phase outlets have no rotation.
    if getattr(board, "phases", 1) == 3:
        return "0.RST"
    return "0.NotApplicable"


def _rotation(board):
    def check(v):
        items = v.split(",") if v else ()
        if len(items) > board.connectors + 1:
            raise ValueError("at most {} entries".format(board.connectors + 1))
        for item in items:
            cid, _, rot = item.partition(".")
            if not cid.isdigit() or int(cid) > board.connectors or rot not in _ROTATIONS:
                raise ValueError("bad entry {}".format(item))

    return check


def _connector(ctx, cid, allow_zero=False):
    if cid == 0 and allow_zero:
        return None
    if not 1 <= cid <= len(ctx.connectors):
        raise OCPPError("PropertyConstraintViolation", "no connector {}".format(cid))
    return ctx.connectors[cid - 1]


# ---- handlers ------------------------------------------------------------------------------
def get_configuration(ctx, payload):
    c = ctx.config
    keys = payload.get("key")
    out = []
    unknown = []
    if keys:
        most = c.get("GetConfigurationMaxKeys")
        if len(keys) > most:
            # Answering part of the list would hide keys from the CSMS: refuse the whole request.
            raise OCPPError(
                "OccurenceConstraintViolation", "at most {} keys per request".format(most)
            )
        for k in keys:
            if c.readable(k):
                out.append(_entry(c, k))
            elif not c.has(k):
                unknown.append(k)
            # A write-only key (AuthorizationKey) is neither returned nor reported unknown.
    else:
        for k in c.names():
            if c.readable(k):
                out.append(_entry(c, k))
    resp = {"configurationKey": out}
    if unknown:
        resp["unknownKey"] = unknown
    return resp


def _entry(c, k):
    return {"key": k, "readonly": c.key(k).access == "R", "value": c.text(k)}


def change_configuration(ctx, payload):
    return {"status": ctx.config.change(payload["key"], payload["value"])}


def reset(ctx, payload):
    kind = payload["type"]

    def after():
        # Stop first (the StopTransactions go to the persistent queue), then restart; a Soft
        # reset waits a little for them to reach the CSMS, a Hard one restarts at once and the
        # queue delivers them after the next BootNotification (OCPP 1.6 section 5.14).
        ctx.reset(kind)

    return {"status": "Accepted"}, after


def remote_start_transaction(ctx, payload):
    if ctx.registration != "Accepted":
        return {"status": "Rejected"}  # OCPP 1.6 4.2: not while the boot is Pending
    # A chargingProfile must be a TxProfile the smart charging module accepts (ctx.remote_start).
    profile = payload.get("chargingProfile")
    return {"status": ctx.remote_start(payload.get("connectorId"), payload["idTag"], profile)}


def remote_stop_transaction(ctx, payload):
    if ctx.registration != "Accepted":
        return {"status": "Rejected"}
    txid = payload["transactionId"]
    for conn in ctx.connectors:
        if conn.tx is not None and conn.tx.get("tx_id") == txid:
            ctx.stop_transaction(conn, "Remote")
            return {"status": "Accepted"}
    return {"status": "Rejected"}


def change_availability(ctx, payload):
    cid = payload["connectorId"]
    operative = payload["type"] == "Operative"
    _connector(ctx, cid, allow_zero=True)
    return {"status": ctx.change_availability(cid, operative)}


def clear_cache(ctx, payload):
    return {"status": ctx.clear_cache()}


def data_transfer(ctx, payload):
    """CSMS -> charger DataTransfer: a vendor registered in `ctx.vendors` answers it.

    `ctx.vendors` maps vendorId -> fn(ctx, messageId or None, data or None) returning
    (status, data or None); without one the answer is UnknownVendorId (section 5.6).
    """
    fn = (getattr(ctx, "vendors", None) or {}).get(payload["vendorId"])
    if fn is None:
        return {"status": "UnknownVendorId"}
    status, data = fn(ctx, payload.get("messageId"), payload.get("data"))
    resp = {"status": status}
    if data is not None:
        resp["data"] = data
    return resp


def unlock_connector(ctx, payload):
    conn = _connector(ctx, payload["connectorId"])
    return {"status": ctx.unlock(conn)}


# ---- charger -> CSMS -------------------------------------------------------------------------
def data_transfer_request(vendor_id, message_id=None, data=None):
    """The DataTransfer.req payload; raises ValueError for fields the schema would refuse."""
    if not isinstance(vendor_id, str) or not 0 < len(vendor_id) <= _MAX_VENDOR_ID:
        raise ValueError("vendorId must be 1..255 characters")
    p = {"vendorId": vendor_id}
    if message_id is not None:
        if not isinstance(message_id, str) or len(message_id) > _MAX_MESSAGE_ID:
            raise ValueError("messageId must be at most 50 characters")
        p["messageId"] = message_id
    if data is not None:
        if not isinstance(data, str):
            raise ValueError("data must be a string")
        p["data"] = data
    return p


async def send_data_transfer(client, vendor_id, message_id=None, data=None):
    """Charger -> CSMS DataTransfer; returns (status, data or None).

    Raises ValueError for a bad field, ocpp16.client.CallFailed when the CSMS is not reachable
    or not yet Accepted (nothing of our own goes out before that) or answers a CALLERROR.
    """
    res = await client.call("DataTransfer", data_transfer_request(vendor_id, message_id, data))
    return res.get("status"), res.get("data")


HANDLERS = {
    "ChangeAvailability": (specs.CHANGE_AVAILABILITY_REQ, change_availability),
    "ChangeConfiguration": (specs.CHANGE_CONFIGURATION_REQ, change_configuration),
    "ClearCache": (specs.CLEAR_CACHE_REQ, clear_cache),
    "DataTransfer": (specs.DATA_TRANSFER_REQ, data_transfer),
    "GetConfiguration": (specs.GET_CONFIGURATION_REQ, get_configuration),
    "RemoteStartTransaction": (specs.REMOTE_START_TRANSACTION_REQ, remote_start_transaction),
    "RemoteStopTransaction": (specs.REMOTE_STOP_TRANSACTION_REQ, remote_stop_transaction),
    "Reset": (specs.RESET_REQ, reset),
    "UnlockConnector": (specs.UNLOCK_CONNECTOR_REQ, unlock_connector),
}
