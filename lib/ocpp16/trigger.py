"""OCPP 1.6 Remote Trigger profile: TriggerMessage (5.18).

The answer goes out first; the requested message follows it (the handler's `after`), through the
client's RAM queue marked as triggered, so it also goes out while the registration is Pending
(OCPP 1.6 4.2: a Pending charger sends only what the CSMS asks for). Per requestedMessage:
- BootNotification: while not Accepted the client's boot flow runs now instead of after the
  interval (`client.trigger_boot()`: how a CSMS accepts a Pending charger at once); once
  Accepted a BootNotification goes out like any message and its answer sets clock and interval.
- Heartbeat: one now.
- StatusNotification: the current status of connectorId (0 = the charge point), or of the
  charge point and every connector when connectorId is absent, as charger.status computes it
  (sent at once, MinimumStatusDuration does not apply to an answer the CSMS asked for).
- MeterValues: one sample of MeterValuesSampledData now, context `Trigger`, for connectorId or
  every connector (absent or 0: the board has no main meter apart from the connectors' ones).
  It carries the transactionId of a running transaction once the CSMS assigned it, but it is
  not queued as transaction data: it answers a request on this link, it is not periodic
  transaction data that must survive an outage (section 3, `ocpp16.md` section 8).
- DiagnosticsStatusNotification / FirmwareStatusNotification: the status the charger reports
  (`ctx.diagnostics_status()` / `ctx.firmware_status()` when it has them, else ocpp16.firmware's
  functions of the same names), else Idle, the status 1.6 reserves for exactly this answer.
A connectorId that does not exist gets Rejected, and so does a MeterValues request while no
meter reading or wall time is available. A requestedMessage outside the 1.6 list gets
NotImplemented: the request spec here takes any string there, where the OCA schema's enum would
turn it into a PropertyConstraintViolation CALLERROR (a 2.0 or ExtendedTriggerMessage name sent
by mistake is answered with the status the TriggerMessage answer has for it).
"""

import log

PROFILE = "RemoteTrigger"
MESSAGES = (
    "BootNotification",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StatusNotification",
)
# The OCA request schema with requestedMessage relaxed from its enum to any string (see above).
TRIGGER_MESSAGE_REQ = ("requestedMessage", "S", None, "connectorId", "i", None)


def _status_payload(ctx, cid):
    cur = ctx.reporter.current(cid)
    if cur is None:
        return None  # before the first control step: nothing computed yet
    status, code, vendor = cur
    p = {"connectorId": cid, "errorCode": code, "status": status}
    if vendor and code != "NoError":
        p["vendorErrorCode"] = vendor
    ts = ctx.clock.timestamp()
    if ts:
        p["timestamp"] = ts
    return p


def _meter_payload(ctx, c, ts):
    values = ctx.meter_sample(c, "Trigger")
    if not values:
        return None
    p = {"connectorId": c.id, "meterValue": [{"timestamp": ts, "sampledValue": values}]}
    tx = c.tx
    if tx is not None and tx.get("tx_id") is not None:
        p["transactionId"] = tx["tx_id"]
    return p


def _file_status(ctx, name):
    fn = getattr(ctx, name, None)
    if fn is not None:
        return fn()
    try:
        from ocpp16 import firmware
    except ImportError:  # a build without the firmware-management profile
        return "Idle"
    fn = getattr(firmware, name, None)
    return fn(ctx) if fn is not None else "Idle"


def _messages(ctx, what, cid):
    """The (action, payload) list to send for a request, or None to answer Rejected."""
    if what == "Heartbeat":
        return [("Heartbeat", {})]
    if what == "DiagnosticsStatusNotification":
        return [(what, {"status": _file_status(ctx, "diagnostics_status")})]
    if what == "FirmwareStatusNotification":
        return [(what, {"status": _file_status(ctx, "firmware_status")})]
    out = []
    if what == "StatusNotification":
        ids = [cid] if cid is not None else [0] + [c.id for c in ctx.connectors]
        for k in ids:
            p = _status_payload(ctx, k)
            if p is not None:
                out.append((what, p))
    else:  # MeterValues
        ts = ctx.clock.timestamp()
        if ts is None:
            return None
        for c in ctx.connectors if not cid else (ctx.connectors[cid - 1],):
            p = _meter_payload(ctx, c, ts)
            if p is not None:
                out.append((what, p))
    return out or None


def _boot(ctx):
    if ctx.registration == "Accepted":
        ctx.client.send("BootNotification", ctx.boot_payload(), triggered=True)
    else:
        ctx.client.trigger_boot()


def trigger_message(ctx, payload):
    what = payload["requestedMessage"]
    cid = payload.get("connectorId")
    if what not in MESSAGES:
        log.info("trigger", "TriggerMessage %s: not implemented", what)
        return {"status": "NotImplemented"}
    if cid is not None and not 0 <= cid <= len(ctx.connectors):
        return {"status": "Rejected"}
    if what == "BootNotification":
        return {"status": "Accepted"}, lambda: _boot(ctx)
    msgs = _messages(ctx, what, cid)
    if msgs is None:
        log.info("trigger", "TriggerMessage %s: nothing to send", what)
        return {"status": "Rejected"}

    def after():
        accepted = ctx.registration == "Accepted"
        for action, p in msgs:
            if action == "StatusNotification" and accepted:
                ctx.send_status(p["connectorId"])  # charger.status keeps track of what it sent
            else:
                ctx.client.send(action, p, triggered=True)

    return {"status": "Accepted"}, after


HANDLERS = {"TriggerMessage": (TRIGGER_MESSAGE_REQ, trigger_message)}
