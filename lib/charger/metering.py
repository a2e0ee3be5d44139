"""MeterValues: periodic and clock-aligned samples, and the transactionData of StopTransaction.

OCPP 1.6 sections 3.16, 4.7 and 9.1 (`ocpp16.md` section 3):
- during a transaction, every `MeterValueSampleInterval` s from its start, the measurands of
  `MeterValuesSampledData` go out as MeterValues (context Sample.Periodic) through the
  persistent transaction queue, with the transactionId;
- every `ClockAlignedDataInterval` s, aligned to UTC midnight (00:00, then every interval; the
  last slot of a day may be shorter), the measurands of `MeterValuesAlignedData` go out per
  connector (context Sample.Clock, timestamp = the boundary): with a transaction through the
  queue with its transactionId, without one directly, without transactionId, and only while the
  CSMS is reachable (not queued: nothing to bill). Nothing aligned before the wall time is known;
- `StopTxnSampledData` values at the start (Transaction.Begin), every sample interval
  (Sample.Periodic) and at the stop (Transaction.End), and `StopTxnAlignedData` values at every
  aligned boundary (Sample.Clock), are kept with the transaction and sent as the transactionData
  of its StopTransaction.
Sampled values carry measurand, context, location (Outlet), unit, and phase where one applies
(Current.Import per line L1..L3, Voltage per line to neutral L1-N..L3-N).
Bound: `TX_DATA_MAX` meterValue entries per transaction; when full, the oldest entry after the
Transaction.Begin one is dropped, so the data keeps the start and the most recent samples.
"""

from micropython import const

from ocpp16.timefmt import format_rfc3339

TX_DATA_MAX = const(6)
_DAY_S = const(86400)


def sampled_values(ch, c, measurands, context):
    """The sampledValue list for a comma separated measurand list ([] without a meter reading)."""
    m = c.meter
    if m is None or not measurands:
        return []
    out = []
    phases = ch.board.phases
    for name in measurands.split(","):
        if name == "Energy.Active.Import.Register":
            out.append(_sv("%d" % int(m["energy_wh"]), context, name, "Wh"))
        elif name == "Power.Active.Import":
            out.append(_sv("%.1f" % m["power_w"], context, name, "W"))
        elif name == "Current.Import":
            cur = m["current_a"]
            for i in range(min(phases, len(cur))):
                out.append(_sv("%.1f" % cur[i], context, name, "A", _LINES[i]))
        elif name == "Voltage":
            volts = m["voltage_v"]
            for i in range(min(phases, len(volts))):
                out.append(_sv("%.1f" % volts[i], context, name, "V", _LINES_N[i]))
        elif name == "Current.Offered":
            out.append(_sv("%.1f" % c.control.offered_a, context, name, "A"))
    return out


_LINES = ("L1", "L2", "L3")
_LINES_N = ("L1-N", "L2-N", "L3-N")


def _sv(value, context, measurand, unit, phase=None):
    d = {"value": value, "context": context, "measurand": measurand, "location": "Outlet",
         "unit": unit}
    if phase:
        d["phase"] = phase
    return d


def meter_value(ch, values, timestamp=None):
    """One meterValue entry; without a wall time it keeps the monotonic stamp (`_mono`) that
    session.fill_tx turns into a timestamp before sending."""
    mv = {"sampledValue": values}
    ts = timestamp or ch.clock.timestamp()
    if ts:
        mv["timestamp"] = ts
    else:
        mv["_mono"] = ch.clock.now_ms()
    return mv


# ---- transactionData -------------------------------------------------------------------------
def _tx_data_add(tx, mv):
    data = tx["data"]
    if len(data) >= TX_DATA_MAX:
        data.pop(1 if len(data) > 1 else 0)
    data.append(mv)


def begin(ch, c):
    """Transaction.Begin values of a transaction that just started (c.tx set)."""
    c.tx["data"] = []
    values = sampled_values(ch, c, ch.config.get("StopTxnSampledData"), "Transaction.Begin")
    if values:
        _tx_data_add(c.tx, meter_value(ch, values))


def end(ch, c, tx):
    """Transaction.End values; returns the transactionData list for StopTransaction."""
    values = sampled_values(ch, c, ch.config.get("StopTxnSampledData"), "Transaction.End")
    if values:
        _tx_data_add(tx, meter_value(ch, values))
    return tx.get("data") or []


# ---- periodic samples ------------------------------------------------------------------------
def periodic(ch, c, now_ms):
    """Sample.Periodic values of a running transaction once MeterValueSampleInterval passed.

    Returns True when the transaction's data changed (the caller persists it)."""
    tx = c.tx
    interval = ch.config.get("MeterValueSampleInterval")
    if tx is None or interval <= 0 or now_ms < c.next_sample_ms:
        return False
    c.next_sample_ms = now_ms + interval * 1000
    values = sampled_values(ch, c, ch.config.get("MeterValuesSampledData"), "Sample.Periodic")
    if values:
        mv = meter_value(ch, values)
        ch.client.queue_tx("MeterValues", {"connectorId": c.id, "meterValue": [mv]}, tx["ref"])
    values = sampled_values(ch, c, ch.config.get("StopTxnSampledData"), "Sample.Periodic")
    if values:
        _tx_data_add(tx, meter_value(ch, values))
        return True
    return False


# ---- clock-aligned samples -------------------------------------------------------------------
def next_boundary(unix_s, interval_s):
    """The first aligned instant after `unix_s` (whole seconds): midnight UTC + k * interval,
    never past the next midnight."""
    t = int(unix_s)
    day = t - t % _DAY_S
    b = day + ((t - day) // interval_s + 1) * interval_s
    return min(b, day + _DAY_S)


class Aligned:
    """Clock-aligned sampling of the whole charger (one boundary for every connector)."""

    def __init__(self, ch):
        self.ch = ch
        self.due = None  # unix s of the next boundary, None while off or the time is unknown
        self._interval = 0

    def tick(self):
        """Every control cycle: sample at a boundary. Returns the connectors whose transaction
        data changed (the caller persists them)."""
        ch = self.ch
        interval = ch.config.get("ClockAlignedDataInterval")
        now = ch.clock.unix_ms()  # integer ms: exact where floats are single precision
        if interval <= 0 or now is None:
            self.due = None
            return ()
        now //= 1000
        if self.due is None or interval != self._interval or self.due - now > interval + 1:
            # First time, new interval, or the clock was set back: aim at the next boundary.
            self._interval = interval
            self.due = next_boundary(now, interval)
            return ()
        if now < self.due:
            return ()
        ts = format_rfc3339(self.due)
        self.due = next_boundary(now, interval)
        changed = []
        for c in ch.connectors:
            if self._sample(c, ts):
                changed.append(c)
        return changed

    def _sample(self, c, ts):
        ch = self.ch
        tx = c.tx
        values = sampled_values(ch, c, ch.config.get("MeterValuesAlignedData"), "Sample.Clock")
        if values:
            p = {"connectorId": c.id, "meterValue": [meter_value(ch, values, ts)]}
            if tx is not None:
                ch.client.queue_tx("MeterValues", p, tx["ref"])
            elif ch.client is not None and ch.client.online:
                ch.client.send("MeterValues", p)
        if tx is None:
            return False
        values = sampled_values(ch, c, ch.config.get("StopTxnAlignedData"), "Sample.Clock")
        if values:
            _tx_data_add(tx, meter_value(ch, values, ts))
            return True
        return False
