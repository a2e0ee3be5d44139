"""Transaction and authorisation rules of the charger (OCPP 1.6 sections 3.x, 4.1, 4.8, 4.10).

Functions over the charger `ch` and a connector `c`: a card tap, starting and stopping a
transaction, MeterValues sampling, filling the transactionId into queued messages once the
CSMS assigned it, and recovering an open transaction after a power cut. Transaction messages go
through the persistent queue (store.queue) so none is lost offline or on a power cut.
"""

import log

_PERSIST_METER_MS = 10000  # how often a running transaction's meter reading is saved


# ---- authorisation ----------------------------------------------------------------------
def _same_owner(tx, id_tag, parent):
    if tx["id_tag"].lower() == id_tag.lower():
        return True
    return parent is not None and tx.get("parent") is not None and parent == tx.get("parent")


async def on_card(ch, tag):
    """A card was presented: stop the session it owns, or authorise and start/prepare one."""
    log.info("rfid", "card %s", log.redact_tag(tag))
    for c in ch.connectors:
        if c.tx is not None and c.tx["id_tag"].lower() == tag.lower():
            ch.stop_transaction(c, "Local", tag)
            return
    target = None
    for c in ch.connectors:
        if c.tx is None and c.operative and c.fault is None and not c.finishing:
            if c.plugged:
                target = c
                break
            if target is None:
                target = c
    if target is None:
        log.info("rfid", "no free connector for this card")
        return
    status, parent = await authorize(ch, tag)
    if status != "Accepted":
        log.info("rfid", "card not accepted: %s", status)
        ch.board.led_flash("rejected")
        return
    ch.board.led_flash("accepted")
    prepare(ch, target, tag, parent)


def prepare(ch, c, tag, parent):
    """Authorised: start at once when the EV is plugged in, else wait ConnectionTimeOut for it."""
    if c.plugged:
        ch.start_transaction(c, tag, parent)
    else:
        c.pending_tag = tag
        c.pending_parent = parent
        c.pending_until = ch.clock.now_ms() + ch.config.get("ConnectionTimeOut") * 1000
        c.update_status()


async def authorize(ch, tag):
    """Authorize.req at the CSMS; returns (status, parentIdTag). Offline -> ('Offline', None)."""
    from ocpp16.client import CallFailed

    try:
        res = await ch.client.call("Authorize", {"idTag": tag})
    except CallFailed as e:
        log.warn("auth", "Authorize failed: %s", e.reason)
        return "Offline", None
    info = res.get("idTagInfo") or {}
    return info.get("status", "Invalid"), info.get("parentIdTag")


# ---- transactions -----------------------------------------------------------------------
def _meter_wh(c):
    return int(c.energy_wh)


def _stamp(ch, item_payload):
    ts = ch.clock.timestamp()
    if ts:
        item_payload["timestamp"] = ts
    else:
        item_payload["_mono"] = ch.clock.now_ms()


def start(ch, c, id_tag, parent):
    ref = ch.next_ref
    ch.next_ref += 1
    ch.store.save("session", {"next_ref": ch.next_ref})
    meter = _meter_wh(c)
    c.tx = {
        "ref": ref,
        "id_tag": id_tag,
        "parent": parent,
        "meter_start": meter,
        "start_ms": ch.clock.now_ms(),
        "tx_id": None,
    }
    c.finishing = False
    c.next_sample_ms = ch.clock.now_ms() + ch.config.get("MeterValueSampleInterval") * 1000
    _persist_tx(ch, c)
    p = {"connectorId": c.id, "idTag": id_tag, "meterStart": meter}
    _stamp(ch, p)
    log.info("session", "connector %d: transaction %d starts for %s", c.id, ref,
             log.redact_tag(id_tag))
    ch.client.queue_tx("StartTransaction", p, ref)
    c.update_status()


def stop(ch, c, reason, id_tag=None):
    tx = c.tx
    if tx is None:
        return
    c.tx = None
    c.finishing = True
    meter = _meter_wh(c)
    p = {"meterStop": meter, "reason": reason}
    if id_tag:
        p["idTag"] = id_tag
    _stamp(ch, p)
    log.info("session", "connector %d: transaction %d stops (%s), %d Wh", c.id, tx["ref"],
             reason, meter - tx["meter_start"])
    ch.client.queue_tx("StopTransaction", p, tx["ref"])
    ch.store.delete("tx%d" % c.id)


def _persist_tx(ch, c):
    tx = c.tx
    rec = {"ref": tx["ref"], "id_tag": tx["id_tag"], "meter": _meter_wh(c)}
    ts = ch.clock.timestamp()
    if ts:
        rec["at"] = ts  # the stop time to report if the power goes now
    ch.store.save("tx%d" % c.id, rec)
    tx["saved_ms"] = ch.clock.now_ms()


def recover_after_boot(ch):
    """A transaction still open on flash was cut by a power loss: stop it (reason PowerLoss)
    with its last persisted meter value. The relay stays open until a new authorisation.

    The open-transaction record is written before its StartTransaction is queued and deleted
    after its StopTransaction is queued, so a cut between two of those steps is told apart here:
    no Start anywhere -> nothing was ever charged, drop the record; a Stop already queued -> the
    record only outlived it, drop it too. No transaction gets two Stops or a Stop without Start.
    """
    for c in ch.connectors:
        rec = ch.store.load("tx%d" % c.id)
        if not rec:
            continue
        ref = rec.get("ref")
        start_seen = str(ref) in ch.txids
        stop_seen = False
        for _pos, item in ch.txq.items():
            if item.get("tx") == ref:
                if item["action"] == "StartTransaction":
                    start_seen = True
                elif item["action"] == "StopTransaction":
                    stop_seen = True
        if start_seen and not stop_seen:
            p = {"meterStop": rec.get("meter", 0), "reason": "PowerLoss"}
            if rec.get("at"):
                p["timestamp"] = rec["at"]
            else:
                _stamp(ch, p)
            log.warn("session", "connector %d: transaction %s cut by power loss", c.id, ref)
            ch.client.queue_tx("StopTransaction", p, ref)
        else:
            log.info("session", "connector %d: stale transaction record %s dropped", c.id, ref)
        ch.store.delete("tx%d" % c.id)


def _fill_stamp(ch, d, same_boot):
    mono = d.pop("_mono", None)
    if mono is not None:
        # Stamped before the wall time was known. From an earlier boot the monotonic base is
        # gone: the send time is the best estimate left (logged, never a 1970 date).
        if not same_boot:
            log.warn("clock", "message from an earlier boot without wall time: stamped now")
        d["timestamp"] = ch.clock.timestamp(mono if same_boot else None)


def fill_tx(ch, item):
    """Complete a queued message before sending: late timestamps and the transactionId."""
    p = item["payload"]
    same_boot = item.get("boot") == ch.client.boot_id
    _fill_stamp(ch, p, same_boot)
    for mv in p.get("meterValue", ()):
        _fill_stamp(ch, mv, same_boot)
    for mv in p.get("transactionData", ()):
        _fill_stamp(ch, mv, same_boot)
    if item["action"] == "StartTransaction":
        return True
    txid = ch.txids.get(str(item.get("tx")))
    if txid is None:
        log.error("ocpp", "%s for transaction %s has no transactionId", item["action"],
                  item.get("tx"))
        return False
    p["transactionId"] = txid
    return True


def on_tx_answer(ch, item, payload):
    ref = item.get("tx")
    action = item["action"]
    if action == "StartTransaction":
        if payload is None:
            return
        txid = payload.get("transactionId")
        ch.txids[str(ref)] = txid
        ch.store.save("txids", ch.txids)
        for c in ch.connectors:
            if c.tx is not None and c.tx["ref"] == ref:
                c.tx["tx_id"] = txid
                status = (payload.get("idTagInfo") or {}).get("status")
                if status != "Accepted" and ch.config.get("StopTransactionOnInvalidId"):
                    log.warn("session", "StartTransaction idTag %s: stopping", status)
                    stop(ch, c, "DeAuthorized")
    elif action == "StopTransaction":
        if str(ref) in ch.txids:
            del ch.txids[str(ref)]
            ch.store.save("txids", ch.txids)


def meter_values(ch, c, now_ms):
    """Periodic MeterValues during a transaction (MeterValueSampleInterval, Sample.Periodic)."""
    tx = c.tx
    if tx is None:
        return
    if now_ms - tx.get("saved_ms", 0) >= _PERSIST_METER_MS:
        _persist_tx(ch, c)
    interval = ch.config.get("MeterValueSampleInterval")
    if interval <= 0 or now_ms < c.next_sample_ms:
        return
    c.next_sample_ms = now_ms + interval * 1000
    values = sampled_values(ch, c, ch.config.get("MeterValuesSampledData"), "Sample.Periodic")
    if not values:
        return
    mv = {"sampledValue": values}
    _stamp(ch, mv)
    ch.client.queue_tx("MeterValues", {"connectorId": c.id, "meterValue": [mv]}, tx["ref"])


def sampled_values(ch, c, measurands, context):
    m = c.meter
    if m is None:
        return []
    out = []
    phases = ch.board.phases
    for name in measurands.split(",") if measurands else ():
        if name == "Energy.Active.Import.Register":
            out.append(_sv("%d" % int(m["energy_wh"]), context, name, "Wh"))
        elif name == "Power.Active.Import":
            out.append(_sv("%.1f" % m["power_w"], context, name, "W"))
        elif name == "Current.Import":
            for i in range(phases):
                out.append(_sv("%.1f" % m["current_a"][i], context, name, "A", "L%d" % (i + 1)))
        elif name == "Voltage":
            for i in range(phases):
                out.append(_sv("%.1f" % m["voltage_v"][i], context, name, "V", "L%d-N" % (i + 1)))
        elif name == "Current.Offered":
            out.append(_sv("%.1f" % c.control.offered_a, context, name, "A"))
    return out


def _sv(value, context, measurand, unit, phase=None):
    d = {"value": value, "context": context, "measurand": measurand, "location": "Outlet",
         "unit": unit}
    if phase:
        d["phase"] = phase
    return d
