"""StatusNotification reporting: MinimumStatusDuration, connector 0, resync after (re)connect.

The connectors compute their ChargePointStatus every control cycle (charger.connector); this
module decides what reaches the CSMS (OCPP 1.6 sections 4.9, 6.47 and 9.1):
- a change is sent once it has lasted `MinimumStatusDuration` seconds (0 = at once); a state
  that ends sooner is never reported, and the timestamp is when the reported state began;
- connector 0 (the charge point itself) is Faulted when every connector is Faulted (a
  charger-wide fault such as a welded relay), Unavailable when the charge point is Inoperative
  (ChangeAvailability on connector 0), else Available;
- nothing goes out before the BootNotification is Accepted (section 4.2); on every (re)connect
  `resync()` reports the current status of every connector once.
State: one small list per connector plus connector 0, sized at start.
"""

import log
from evse.faults import vendor_error_code

# Per-connector slots (index 0 = the charge point).
_STATUS = 0  # current (status, errorCode, vendorErrorCode) tuple
_SINCE = 1  # mono ms when the current state began
_SENT = 2  # last tuple sent, or None


class StatusReporter:
    def __init__(self, ch):
        self.ch = ch
        self._slots = [[None, 0, None] for _ in range(len(ch.connectors) + 1)]

    def current(self, cid):
        """(status, errorCode, vendorErrorCode) as last computed for connector `cid`, or None."""
        return self._slots[cid][_STATUS]

    def update(self, cid, status, code, vendor, now_ms):
        """Record the state of connector `cid` (0 = charge point) and send it once stable."""
        self._record(cid, status, code, vendor, now_ms)
        self._maybe_send(cid, now_ms)

    def _record(self, cid, status, code, vendor, now_ms):
        slot = self._slots[cid]
        if slot[_STATUS] is None or slot[_STATUS][0] != status or slot[_STATUS][1] != code:
            slot[_STATUS] = (status, code, vendor)
            slot[_SINCE] = now_ms
            log.info("status", "connector %d %s %s", cid, status, code)

    def tick(self, now_ms):
        """Every control cycle: connector 0's state, then what became stable enough."""
        self._update0(now_ms)
        for cid in range(1, len(self._slots)):
            self._maybe_send(cid, now_ms)

    def _update0(self, now_ms, send=True):
        status, code, vendor = self._charger_status()
        self._record(0, status, code, vendor, now_ms)
        if send:
            self._maybe_send(0, now_ms)

    def _charger_status(self):
        ch = self.ch
        faulted = [c for c in ch.connectors if c.status == "Faulted"]
        if faulted and len(faulted) == len(ch.connectors):
            c = faulted[0]
            return "Faulted", c.error_code, vendor_error_code(c.fault)
        if not ch.operative:
            return "Unavailable", "NoError", None
        return "Available", "NoError", None

    def _maybe_send(self, cid, now_ms):
        slot = self._slots[cid]
        cur = slot[_STATUS]
        if cur is None or cur == slot[_SENT] or not self._can_send():
            return
        wait = self.ch.config.get("MinimumStatusDuration") * 1000
        if now_ms - slot[_SINCE] < wait:
            return
        self._send(cid, slot)

    def _can_send(self):
        ch = self.ch
        return ch.client is not None and ch.registration == "Accepted"

    def _send(self, cid, slot):
        status, code, vendor = slot[_STATUS]
        p = {"connectorId": cid, "errorCode": code, "status": status}
        if vendor and code != "NoError":
            p["vendorErrorCode"] = vendor
        ts = self.ch.clock.timestamp(slot[_SINCE])
        if ts:
            p["timestamp"] = ts
        slot[_SENT] = slot[_STATUS]
        self.ch.client.send("StatusNotification", p)

    def resync(self):
        """Boot accepted or link back: report every connector's current status once now."""
        if not self._can_send():
            return
        self._update0(self.ch.clock.now_ms(), send=False)
        for cid, slot in enumerate(self._slots):
            if slot[_STATUS] is not None:
                self._send(cid, slot)

    def send_now(self, cid):
        """Send connector `cid`'s current status at once (TriggerMessage StatusNotification)."""
        if cid == 0:
            self._update0(self.ch.clock.now_ms(), send=False)
        slot = self._slots[cid]
        if slot[_STATUS] is not None and self._can_send():
            self._send(cid, slot)
