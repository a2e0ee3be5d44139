"""Availability of the charge point and its connectors: ChangeAvailability (OCPP 1.6 5.2).

A connector is operative when neither it nor the whole charge point (connector 0) is Inoperative
(`Connector.is_operative()`). A change that would make a connector with a running transaction
Inoperative is Scheduled: it applies when that transaction ends (connector 0: when none runs any
more). Connector 0 sets the charge point and every connector. The wanted state, scheduled changes
included, is persisted in the store record `availability`, so it survives a reboot (when no
transaction runs and it applies at once).
"""

_RECORD = "availability"


def change(ch, cid, operative):
    """Apply ChangeAvailability for connector `cid` (0 = all); returns Accepted or Scheduled."""
    targets = ch.connectors if cid == 0 else [ch.connectors[cid - 1]]
    busy = False
    for c in targets:
        if c.tx is not None and not operative:
            c.scheduled_operative = False
            busy = True
        else:
            c.operative = operative
            c.scheduled_operative = None
    if cid == 0:
        if busy:
            ch.scheduled_operative = False
        else:
            ch.operative = operative
            ch.scheduled_operative = None
    save(ch)
    return "Scheduled" if busy else "Accepted"


def apply_scheduled(ch):
    """Control loop: the charge point's scheduled change once no transaction runs."""
    if ch.scheduled_operative is not None and all(c.tx is None for c in ch.connectors):
        ch.operative = ch.scheduled_operative
        ch.scheduled_operative = None
        save(ch)


def _want(now, scheduled):
    return now if scheduled is None else scheduled


def save(ch):
    rec = {
        "cp": _want(ch.operative, ch.scheduled_operative),
        "connectors": [_want(c.operative, c.scheduled_operative) for c in ch.connectors],
    }
    ch.store.save(_RECORD, rec)


def load(ch):
    """At boot: the persisted availability (a missing or bad record = all operative)."""
    rec = ch.store.load(_RECORD)
    if isinstance(rec, list):  # the first format: one flag per connector
        rec = {"connectors": rec}
    if not isinstance(rec, dict):
        return
    ch.operative = rec.get("cp") is not False
    flags = rec.get("connectors")
    if isinstance(flags, list):
        for c, op in zip(ch.connectors, flags):
            c.operative = op is not False
