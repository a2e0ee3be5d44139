"""OCPP 1.6 Core profile: configuration keys and the handlers of CSMS-initiated Core actions.

One handler per action (`HANDLERS` at the end), each `(ctx, payload) -> dict` where `ctx` is the
charger (lib/charger/app.py). Payloads arrive validated against ocpp16.specs. Charger-initiated
Core messages (BootNotification, StatusNotification, Start/StopTransaction, MeterValues, ...) are
built by the charger and the OCPP client.
"""

from ocpp16 import config as cfg
from ocpp16 import specs
from ocpp16.errors import OCPPError

PROFILES = "Core"
_MEASURANDS = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Current.Import",
    "Voltage",
    "Current.Offered",
)
_MEASURANDS_MAX = 5


def declare_keys(c, board):
    """Every standard Core key of OCPP 1.6 section 9.1 with its type, access and default."""
    B, I, L = cfg.BOOL, cfg.INT, cfg.CSL
    nn = cfg.non_negative
    meas = cfg.csl_subset(_MEASURANDS)
    c.declare("AllowOfflineTxForUnknownId", B, False)
    c.declare("AuthorizationCacheEnabled", B, False)
    c.declare("AuthorizeRemoteTxRequests", B, True)
    c.declare("ClockAlignedDataInterval", I, 0, check=nn)
    c.declare("ConnectionTimeOut", I, 60, check=nn)
    c.declare("ConnectorPhaseRotation", L, "0.RST", check=None)
    c.declare("ConnectorPhaseRotationMaxLength", I, board.connectors + 1, access="R")
    c.declare("GetConfigurationMaxKeys", I, 64, access="R")
    c.declare("HeartbeatInterval", I, 3600, check=nn)
    c.declare("LocalAuthorizeOffline", B, True)
    c.declare("LocalPreAuthorize", B, False)
    c.declare("MaxEnergyOnInvalidId", I, 0, check=nn)
    c.declare("MeterValuesAlignedData", L, "Energy.Active.Import.Register", check=meas)
    c.declare("MeterValuesAlignedDataMaxLength", I, _MEASURANDS_MAX, access="R")
    c.declare(
        "MeterValuesSampledData", L, "Energy.Active.Import.Register,Power.Active.Import", check=meas
    )
    c.declare("MeterValuesSampledDataMaxLength", I, _MEASURANDS_MAX, access="R")
    c.declare("MeterValueSampleInterval", I, 60, check=nn)
    c.declare("MinimumStatusDuration", I, 0, check=nn)
    c.declare("NumberOfConnectors", I, board.connectors, access="R")
    c.declare("ResetRetries", I, 2, check=nn)
    c.declare("StopTransactionOnEVSideDisconnect", B, True)
    c.declare("StopTransactionOnInvalidId", B, True)
    c.declare("StopTxnAlignedData", L, "", check=meas)
    c.declare("StopTxnAlignedDataMaxLength", I, _MEASURANDS_MAX, access="R")
    c.declare("StopTxnSampledData", L, "", check=meas)
    c.declare("StopTxnSampledDataMaxLength", I, _MEASURANDS_MAX, access="R")
    c.declare("SupportedFeatureProfiles", L, PROFILES, access="R")
    c.declare("SupportedFeatureProfilesMaxLength", I, 6, access="R")
    c.declare("TransactionMessageAttempts", I, 3, check=_at_least(1))
    c.declare("TransactionMessageRetryInterval", I, 60, check=nn)
    c.declare("UnlockConnectorOnEVSideDisconnect", B, False)
    c.declare("WebSocketPingInterval", I, 30, check=nn)


def _at_least(n):
    def check(v):
        if v < n:
            raise ValueError("must be >= {}".format(n))

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
        if len(keys) > c.get("GetConfigurationMaxKeys"):
            raise OCPPError(
                "PropertyConstraintViolation",
                "at most {} keys per request".format(c.get("GetConfigurationMaxKeys")),
            )
        for k in keys:
            if c.readable(k):
                out.append(_entry(c, k))
            elif not c.has(k):
                unknown.append(k)
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
    reason = "HardReset" if kind == "Hard" else "SoftReset"

    def after():
        for conn in ctx.connectors:
            if conn.tx is not None:
                ctx.stop_transaction(conn, reason)
        ctx.request_restart("Reset " + kind)

    return {"status": "Accepted"}, after


def remote_start_transaction(ctx, payload):
    return ctx.remote_start(payload.get("connectorId"), payload["idTag"],
                            payload.get("chargingProfile"))


def remote_stop_transaction(ctx, payload):
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
    return {"status": "UnknownVendorId"}


def unlock_connector(ctx, payload):
    conn = _connector(ctx, payload["connectorId"])
    return {"status": ctx.unlock(conn)}


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
