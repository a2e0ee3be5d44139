"""Transaction and authorisation rules of the charger (OCPP 1.6 sections 3.x, 4.1, 4.8, 4.10).

Functions over the charger `ch` and a connector `c`: a card tap, choosing the connector,
starting and stopping a transaction, the CSMS answers to them, filling the transactionId into
queued messages once the CSMS assigned it, and recovering an open transaction after a power cut.
Transaction messages go through the persistent queue (store.queue) so none is lost offline or on
a power cut. Rules:
- a card that started a transaction stops it (reason Local); a different card stops it only when
  its Authorize gives the same parentIdTag (status Accepted or ConcurrentTx); any other card
  starts a session on a free connector: the one most recently plugged in, else a free one where
  it waits `ConnectionTimeOut` for the cable (the first connector plugged in takes it);
  tapping a waiting card again cancels it;
- a StartTransaction answer other than Accepted stops the transaction (reason DeAuthorized) with
  `StopTransactionOnInvalidId`, else the charger stops delivering energy once
  `MaxEnergyOnInvalidId` Wh (0 = at once) were delivered: SuspendedEVSE until stopped;
- faults that end the session (`FAULT_STOP_REASONS`): a tripped RCD, a welded relay or a failed
  RCD self-test stop it with EmergencyStop (the charger cut the power for safety; 1.6 has no
  closer reason), a failed diode check or a bad cable coding with Other. Faults that recover on
  their own (over-temperature, meter, pilot short, ventilation) keep the transaction, which
  shows Faulted or SuspendedEVSE meanwhile.
Hooks for other modules (set on the charger, see lib/charger/app.py): `ch.local_auth`
(lookup(tag) -> idTagInfo or None; update(tag, idTagInfo)), `ch.tx_listeners` (objects with
optional tx_started(c) / tx_stopped(c, tx); c.tx["profile"] holds a RemoteStartTransaction
TxProfile), `c.reserved` (a reservation: {"id", "id_tag", "parent"}).
"""

from micropython import const

import log
from charger import metering

_PERSIST_METER_MS = const(10000)  # how often a running transaction's meter reading is saved

FAULT_STOP_REASONS = {
    "rcd": "EmergencyStop",
    "weld": "EmergencyStop",
    "rcd_selftest": "EmergencyStop",
    "diode": "Other",
    "pp_invalid": "Other",
}


# ---- authorisation ----------------------------------------------------------------------
def _same(a, b):
    # idTags compare case-insensitively (OCPP 1.6 IdToken).
    return a is not None and b is not None and a.lower() == b.lower()


def holds(res, tag, parent):
    """True when idTag `tag` (with `parent`) may use reservation or transaction `res`."""
    return _same(res.get("id_tag"), tag) or _same(res.get("parent"), parent)


async def on_card(ch, tag):
    """A card was presented: stop the session it owns, or authorise and start/prepare one."""
    log.info("rfid", "card %s", log.redact_tag(tag))
    for c in ch.connectors:
        if c.tx is not None and _same(c.tx["id_tag"], tag):
            ch.stop_transaction(c, "Local", tag)
            return
    for c in ch.connectors:
        if c.pending_tag is not None and _same(c.pending_tag, tag):
            log.info("session", "connector %d: authorisation cancelled by the card", c.id)
            clear_pending(c)
            c.update_status()
            return
    status, parent = await authorize(ch, tag)
    if parent is not None and status in ("Accepted", "ConcurrentTx"):
        for c in ch.connectors:
            if c.tx is not None and _same(c.tx.get("parent"), parent):
                ch.stop_transaction(c, "Local", tag)
                return
    if status != "Accepted":
        log.info("rfid", "card not accepted: %s", status)
        ch.board.led_flash("rejected")
        return
    target = choose_connector(ch, tag, parent)
    if target is None:
        log.info("rfid", "no free connector for this card")
        ch.board.led_flash("rejected")
        return
    ch.board.led_flash("accepted")
    prepare(ch, target, tag, parent)


def can_take(c, tag, parent):
    """A connector can take a new session for this idTag now."""
    if c.tx is not None or c.fault is not None or not c.is_operative():
        return False
    if c.finishing and c.plugged and not holds(c.last_owner or {}, tag, parent):
        return False  # the previous user's EV is still plugged in: only they restart (F2)
    return c.reserved is None or holds(c.reserved, tag, parent)


def choose_connector(ch, tag, parent):
    """Plugged-in connectors first (the latest plug-in wins), then free ones without a waiting
    card, then any free one; None when no connector can take the session."""
    best = None
    best_rank = None
    for c in ch.connectors:
        if not can_take(c, tag, parent):
            continue
        if c.plugged:
            rank = (3 if not c.finishing else 2, c.plugged_ms)
        else:
            rank = (1 if c.pending_tag is None else 0, -c.id)
        if best_rank is None or rank > best_rank:
            best, best_rank = c, rank
    return best


def prepare(ch, c, tag, parent, profile=None):
    """Authorised: start at once when the EV is plugged in, else wait ConnectionTimeOut for it."""
    if c.plugged:
        start(ch, c, tag, parent, profile)
    else:
        c.pending_tag = tag
        c.pending_parent = parent
        c.pending_profile = profile
        c.pending_until = ch.clock.now_ms() + ch.config.get("ConnectionTimeOut") * 1000
        c.update_status()


def clear_pending(c):
    c.pending_tag = None
    c.pending_parent = None
    c.pending_profile = None


async def authorize(ch, tag):
    """Authorize.req at the CSMS; returns (status, parentIdTag). Offline -> ('Offline', None).

    With a local list or cache (`ch.local_auth`): LocalPreAuthorize answers an Accepted entry
    without the CSMS, LocalAuthorizeOffline answers from it while the CSMS is unreachable, and
    every CSMS answer updates it.
    """
    from ocpp16.client import CallFailed

    la = ch.local_auth
    cfg = ch.config
    if la is not None and cfg.get("LocalPreAuthorize"):
        info = la.lookup(tag)
        if info is not None and info.get("status") == "Accepted":
            return "Accepted", info.get("parentIdTag")
    try:
        res = await ch.client.call("Authorize", {"idTag": tag})
    except CallFailed as e:
        log.warn("auth", "Authorize failed: %s", e.reason)
        if e.code is not None:
            return "Offline", None  # the CSMS answered with a CALLERROR: no local decision
        info = la.lookup(tag) if la is not None else None
        if info is not None:
            if cfg.get("LocalAuthorizeOffline"):
                return info.get("status", "Invalid"), info.get("parentIdTag")
            return "Offline", None
        if cfg.get("AllowOfflineTxForUnknownId"):
            # 3.6: unknown while offline may charge; the StartTransaction answer decides later
            # (StopTransactionOnInvalidId / MaxEnergyOnInvalidId).
            log.info("auth", "unknown idTag accepted offline (AllowOfflineTxForUnknownId)")
            return "Accepted", None
        return "Offline", None
    info = res.get("idTagInfo") or {}
    if la is not None:
        la.update(tag, info)
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


def _notify(ch, name, *args):
    for listener in ch.tx_listeners:
        fn = getattr(listener, name, None)
        if fn is not None:
            try:
                fn(*args)
            except Exception as e:  # a feature hook must not break the session
                log.exception("session", name, e)


def start(ch, c, id_tag, parent, profile=None):
    ref = ch.next_ref
    ch.next_ref += 1
    ch.store.save("session", {"next_ref": ch.next_ref})
    meter = _meter_wh(c)
    now = ch.clock.now_ms()
    c.tx = {
        "ref": ref,
        "id_tag": id_tag,
        "parent": parent,
        "meter_start": meter,
        "start_ms": now,
        "tx_id": None,
        "profile": profile,
    }
    clear_pending(c)
    c.finishing = False
    c.next_sample_ms = now + ch.config.get("MeterValueSampleInterval") * 1000
    p = {"connectorId": c.id, "idTag": id_tag, "meterStart": meter}
    res = c.reserved
    if res is None and getattr(ch, "reservations", None) is not None:
        res = ch.reservations.for_any_connector(id_tag, parent)  # connector 0 one (5.15)
    if res is not None:
        # Only the reservation's holder gets here (can_take): the reservation is used up.
        p["reservationId"] = res["id"]
        c.reserved = None
    _stamp(ch, p)
    metering.begin(ch, c)
    _persist_tx(ch, c)
    log.info("session", "connector %d: transaction %d starts for %s", c.id, ref,
             log.redact_tag(id_tag))
    ch.client.queue_tx("StartTransaction", p, ref)
    _notify(ch, "tx_started", c)
    c.update_status()


def stop(ch, c, reason, id_tag=None):
    tx = c.tx
    if tx is None:
        return
    c.tx = None
    c.finishing = True
    c.last_owner = {"id_tag": tx["id_tag"], "parent": tx.get("parent")}
    meter = _meter_wh(c)
    p = {"meterStop": meter, "reason": reason}
    if id_tag:
        p["idTag"] = id_tag
    _stamp(ch, p)
    data = metering.end(ch, c, tx)
    if data:
        p["transactionData"] = data
    log.info("session", "connector %d: transaction %d stops (%s), %d Wh", c.id, tx["ref"],
             reason, meter - tx["meter_start"])
    ch.client.queue_tx("StopTransaction", p, tx["ref"])
    ch.store.delete("tx%d" % c.id)
    _notify(ch, "tx_stopped", c, tx)


def energy_blocked(ch, c):
    """True when an invalidated idTag used up MaxEnergyOnInvalidId (section 9.1.18)."""
    tx = c.tx
    if tx is None or not tx.get("invalid"):
        return False
    return _meter_wh(c) - tx["meter_start"] >= ch.config.get("MaxEnergyOnInvalidId")


def _persist_tx(ch, c):
    tx = c.tx
    rec = {"ref": tx["ref"], "id_tag": tx["id_tag"], "meter": _meter_wh(c),
           "ts": ch.clock.timestamp(), "data": tx.get("data") or []}
    ch.store.save("tx%d" % c.id, rec)
    tx["saved_ms"] = ch.clock.now_ms()


def recover_after_boot(ch):
    """A transaction still open on flash was cut by a power loss: stop it (reason PowerLoss)
    with its last persisted meter value, at the time it was saved when that is known. The relay
    stays open until a new authorisation."""
    for c in ch.connectors:
        rec = ch.store.load("tx%d" % c.id)
        if not isinstance(rec, dict):
            continue
        p = {"meterStop": rec.get("meter", 0), "reason": "PowerLoss"}
        if rec.get("ts"):
            p["timestamp"] = rec["ts"]
        else:
            _stamp(ch, p)
        data = rec.get("data")
        if data and isinstance(data, list):
            p["transactionData"] = data
        log.warn("session", "connector %d: transaction %s cut by power loss", c.id, rec.get("ref"))
        ch.client.queue_tx("StopTransaction", p, rec.get("ref"))
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
    info = (payload or {}).get("idTagInfo")
    tag = item["payload"].get("idTag")
    if info is not None and tag and ch.local_auth is not None:
        ch.local_auth.update(tag, info)
    if action == "StartTransaction":
        if payload is None:
            return
        txid = payload.get("transactionId")
        ch.txids[str(ref)] = txid
        ch.store.save("txids", ch.txids)
        for c in ch.connectors:
            if c.tx is not None and c.tx["ref"] == ref:
                c.tx["tx_id"] = txid
                info = info or {}
                if info.get("parentIdTag"):
                    c.tx["parent"] = info["parentIdTag"]
                status = info.get("status")
                if status != "Accepted":
                    if ch.config.get("StopTransactionOnInvalidId"):
                        log.warn("session", "StartTransaction idTag %s: stopping", status)
                        stop(ch, c, "DeAuthorized")
                    else:
                        log.warn("session", "StartTransaction idTag %s: energy capped", status)
                        c.tx["invalid"] = True
    elif action == "StopTransaction":
        if str(ref) in ch.txids:
            del ch.txids[str(ref)]
            ch.store.save("txids", ch.txids)


def meter_values(ch, c, now_ms):
    """Per control cycle: periodic MeterValues and the transaction's persisted meter reading."""
    tx = c.tx
    if tx is None:
        return
    changed = metering.periodic(ch, c, now_ms)
    if changed or now_ms - tx.get("saved_ms", 0) >= _PERSIST_METER_MS:
        _persist_tx(ch, c)


def persist(ch, c):
    """Save a running transaction's record now (its transaction data changed)."""
    if c.tx is not None:
        _persist_tx(ch, c)
