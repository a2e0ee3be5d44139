"""OCPP 1.6 Reservation profile: ReserveNow, CancelReservation and the reservations they hold.

`Reservations` (one per charger, `ctx.reservations`, also one of its `tx_listeners`) keeps at
most one reservation per connector id, 0 included (bound: connectors + 1), persisted in the store
record `reservations` so they survive a reboot. OCPP 1.6 5.15 and 5.1:
- ReserveNow answers Rejected for an unknown connector, for connector 0 without
  ReserveConnectorZeroSupported, or for an expiryDate already past; Faulted / Unavailable for a
  faulted / inoperative connector (for connector 0: all of them); Occupied when the connector
  has a transaction, is Preparing (plugged or an idTag waiting for the cable) or Finishing, or
  is held by another reservation. A reservationId already held is replaced (kept when the new
  request is refused).
- A reserved connector reports Reserved while idle, also with a foreign EV plugged in (only its
  idTag may start there): `tick()` sets `connector.reserved` (the reservation dict, with "id",
  "id_tag" and "parent"), which charger.connector (status) and charger.session (who may start,
  the reservationId of the StartTransaction) read. A reservation for connector 0 holds the last
  free connector, so one stays available for its idTag; its idTag starting on any connector
  uses it (`for_any_connector`).
- Only the reserved idTag, or an idTag with the reservation's parentIdTag, may start on a held
  connector (`matches`, the rule of charger.session.holds); the StartTransaction carries the
  reservationId, and the transaction start ends the reservation (`tx_started`). A reservation
  also ends at its expiryDate (charger clock), by CancelReservation, or when its connector
  becomes Faulted or Unavailable; the connector then reports Available again.
"""

import log
from ocpp16 import config as cfg
from ocpp16 import specs

PROFILE = "Reservation"
_RECORD = "reservations"


def declare_keys(c, board):
    c.declare("ReserveConnectorZeroSupported", cfg.BOOL, True, access="R")


def _same(a, b):
    return a is not None and b is not None and a.lower() == b.lower()  # CiString20


def matches(res, id_tag, parent):
    """True when id_tag is the reservation's idTag, or its parent the reservation's parent."""
    return _same(res["id_tag"], id_tag) or _same(res["parent"], parent)


def _faulted(c):
    return c.status == "Faulted"


class Reservations:
    """The reservations in force, each a dict: id, conn, id_tag, parent (or None), expiry (unix
    s)."""

    def __init__(self, ch):
        self.ch = ch
        self.items = []  # bound: one per connector id 0..N
        self._marked = False
        raw = ch.store.load(_RECORD, [])
        n = len(ch.connectors)
        for r in raw if isinstance(raw, list) else ():
            if (
                isinstance(r, list)
                and len(r) == 5
                and type(r[0]) is int
                and type(r[1]) is int
                and 0 <= r[1] <= n
                and isinstance(r[2], str)
                and (r[3] is None or isinstance(r[3], str))
                and type(r[4]) is int
                and self.on(r[1]) is None
            ):
                self.items.append(
                    {"id": r[0], "conn": r[1], "id_tag": r[2], "parent": r[3], "expiry": r[4]}
                )
            else:
                log.warn("reserve", "stored reservation %r dropped", r)
        if self.items:
            log.info("reserve", "%d reservation(s) restored", len(self.items))

    def _save(self):
        rows = [[r["id"], r["conn"], r["id_tag"], r["parent"], r["expiry"]] for r in self.items]
        try:
            self.ch.store.save(_RECORD, rows)
        except OSError as e:
            log.error("reserve", "could not persist reservations: %s", e)

    def find(self, rid):
        for r in self.items:
            if r["id"] == rid:
                return r
        return None

    def on(self, cid):
        """The reservation made for connector id `cid` (0 = any connector), or None."""
        for r in self.items:
            if r["conn"] == cid:
                return r
        return None

    def _free(self, c):
        """c could take a new transaction now (a plugged foreign EV does not count)."""
        return (
            c.tx is None
            and not c.finishing
            and c.is_operative()
            and c.fault is None
            and c.pending_tag is None
        )

    # ---- control loop ---------------------------------------------------------------------
    def tick(self):
        """End expired reservations and those of Faulted/Unavailable connectors, then mark
        the held connectors (`connector.reserved`). Called every control step; does nothing
        without reservations."""
        if not self.items:
            if self._marked:
                for c in self.ch.connectors:
                    c.reserved = None
                self._marked = False
            return
        now = self.ch.clock.unix()
        conns = self.ch.connectors
        ended = False
        i = len(self.items)
        while i:  # backwards, so removing keeps the rest in place; no copy at 50 Hz
            i -= 1
            r = self.items[i]
            why = None
            if now is not None and now >= r["expiry"]:
                why = "expired"
            elif r["conn"] == 0:
                why = "charge point unavailable"
                for c in conns:
                    if c.is_operative() and not _faulted(c):
                        why = None
                        break
            else:
                c = conns[r["conn"] - 1]
                if not c.is_operative():
                    why = "connector unavailable"
                elif _faulted(c):
                    why = "connector faulted"
            if why is not None:
                log.info("reserve", "reservation %d on connector %d ends: %s", r["id"],
                         r["conn"], why)
                del self.items[i]
                ended = True
        if ended:
            self._save()
        self._mark()

    def _mark(self):
        zero = self.on(0)
        last_free = None
        free = 0
        for c in self.ch.connectors:
            own = self.on(c.id)
            c.reserved = own
            if own is None and self._free(c):
                free += 1
                last_free = c
        if zero is not None and free == 1:
            last_free.reserved = zero
        self._marked = True

    # ---- session hooks --------------------------------------------------------------------
    def for_any_connector(self, id_tag, parent):
        """The connector-0 reservation this idTag holds, or None (charger.session.start: a
        transaction on any connector uses it, 5.15)."""
        r = self.on(0)
        return r if r is not None and matches(r, id_tag, parent) else None

    def tx_started(self, c):
        """Listener (charger.session): a transaction started on c. The reservation it used,
        c's own or the connector-0 one (its id went into the StartTransaction), ends."""
        tx = c.tx
        for r in (self.on(c.id), self.on(0)):
            if r is not None and matches(r, tx["id_tag"], tx.get("parent")):
                self.items.remove(r)
                self._save()
                self._mark()
                log.info("reserve", "reservation %d used on connector %d", r["id"], c.id)
                return

    # ---- CSMS requests --------------------------------------------------------------------
    def reserve(self, cid, id_tag, parent, expiry, rid):
        """ReserveNow: the status to answer; the reservation is stored when Accepted."""
        ch = self.ch
        if not 0 <= cid <= len(ch.connectors):
            return "Rejected"
        if cid == 0 and not ch.config.get("ReserveConnectorZeroSupported"):
            return "Rejected"
        now = ch.clock.unix()
        if now is not None and expiry <= now:
            log.info("reserve", "reservation %d refused: expiryDate already past", rid)
            return "Rejected"
        old = self.find(rid)
        status = self._check_zero(old) if cid == 0 else self._check(ch.connectors[cid - 1], old)
        if status != "Accepted":
            return status
        if old is not None:
            self.items.remove(old)
        self.items.append({"id": rid, "conn": cid, "id_tag": id_tag, "parent": parent,
                           "expiry": expiry})
        self._save()
        log.info("reserve", "reservation %d: connector %d for %s", rid, cid,
                 log.redact_tag(id_tag))
        return "Accepted"

    def _check(self, c, old):
        if _faulted(c):
            return "Faulted"
        if not c.is_operative():
            return "Unavailable"
        if c.tx is not None or c.finishing or c.plugged or c.pending_tag is not None:
            return "Occupied"
        held = c.reserved if c.reserved is not None else self.on(c.id)
        if held is not None and held is not old:
            return "Occupied"  # reserved already, or the last one a connector-0 one holds
        return "Accepted"

    def _check_zero(self, old):
        conns = self.ch.connectors
        if all(_faulted(c) for c in conns):
            return "Faulted"
        if all(not c.is_operative() for c in conns):
            return "Unavailable"
        zero = self.on(0)
        if zero is not None and zero is not old:
            return "Occupied"
        for c in conns:
            own = self.on(c.id)
            if (own is None or own is old) and self._free(c) and not c.plugged:
                return "Accepted"
        return "Occupied"

    def cancel(self, rid):
        r = self.find(rid)
        if r is None:
            return "Rejected"
        self.items.remove(r)
        self._save()
        log.info("reserve", "reservation %d cancelled", rid)
        return "Accepted"


def _refresh(ctx):
    """After the answer: re-mark the connectors and report the status changes."""
    ctx.reservations.tick()
    for c in ctx.connectors:
        c.update_status()


# ---- handlers ------------------------------------------------------------------------------
def reserve_now(ctx, payload):
    from ocpp16.timefmt import parse_rfc3339

    expiry = parse_rfc3339(payload["expiryDate"])  # the spec check proved it parses
    status = ctx.reservations.reserve(
        payload["connectorId"],
        payload["idTag"],
        payload.get("parentIdTag"),
        expiry,
        payload["reservationId"],
    )
    if status == "Accepted":
        return {"status": status}, lambda: _refresh(ctx)
    return {"status": status}


def cancel_reservation(ctx, payload):
    status = ctx.reservations.cancel(payload["reservationId"])
    if status == "Accepted":
        return {"status": status}, lambda: _refresh(ctx)
    return {"status": status}


HANDLERS = {
    "CancelReservation": (specs.CANCEL_RESERVATION_REQ, cancel_reservation),
    "ReserveNow": (specs.RESERVE_NOW_REQ, reserve_now),
}
