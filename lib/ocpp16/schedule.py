"""Charging-profile schedule math (OCPP 1.6 sections 3.13, 5.16, 7.8-7.14): pure, no I/O.

Profiles are compact records (lists, see `P_*`), built from the OCPP JSON by `parse_profile()`
and persisted as they are. Times are Unix seconds (ints; on 32-bit ports these are long ints,
which only costs allocation when a schedule is evaluated, at period boundaries, not per control
cycle). Limits are stored in tenths (ints): the schemas allow one decimal, so this is exact and
keeps floats off the heap.

Rules implemented (ocpp16.md section 9):
- One profile at instant t: valid when validFrom <= t < validTo. Its schedule starts at
  startSchedule (Absolute; a missing one was set to the install time by parse_profile), at the
  transaction start (Relative; with no transaction the first period applies and nothing
  changes until one starts), or at the latest recurrence start <= t (Recurring Daily/Weekly,
  anchored at startSchedule, nothing before it). It lasts `duration` s (none: the last period
  runs on; Recurring is cut at the recurrence length, 5.16: "the remainder periods SHALL not be
  executed"). The period in force is the last with startPeriod <= offset.
- One purpose on one connector: the valid profile with the highest stackLevel that has a period
  at t wins; where it has none the next lower level applies (3.13.2).
- A connector: TxProfile on it, else TxDefaultProfile on it, else TxDefaultProfile on connector 0,
  each decided per instant, so a lower group fills the gaps of a higher one. 3.13.1 says a
  connector's TxDefaultProfile "replaces" the connector-0 one "only for that specific connector":
  we read that as precedence of the whole connector stack over the connector-0 stack, whatever
  the stack levels. Then min with the ChargePointMaxProfile (connector 0), which on a board with
  several connectors is shared equally among the connectors running a transaction (3.13.3: the
  limit is for all connectors combined).
- minChargingRate of the binding Tx/TxDefault schedule: a limit below it becomes 0 (pause); the
  EV cannot charge efficiently below it (3.13.4, 7.13).
- Units: per-phase amps = W / (volts * phases), phases = min(period numberPhases (default 3),
  board phases). A 1-phase board therefore converts a numberPhases=3 watt limit with one phase
  (7360 W -> 32 A): the car can only draw on the phase that is there. Limits are compared per
  phase in amps; a composite in W is amps * volts * phases of the binding source.

Every evaluation returns the instant of its next possible change (`until`), so the charger
re-evaluates exactly at period boundaries and the composite schedule is built from those
instants, not by sampling.
"""

from micropython import const

from ocpp16.rpc import round1
from ocpp16.timefmt import parse_rfc3339

# Record fields.
P_ID = const(0)
P_CONN = const(1)
P_PURPOSE = const(2)
P_STACK = const(3)
P_KIND = const(4)
P_FROM = const(5)  # validFrom (s) or None
P_TO = const(6)  # validTo (s) or None
P_START = const(7)  # startSchedule (s) or None (Relative)
P_DUR = const(8)  # duration (s) or None
P_UNIT = const(9)
P_MIN = const(10)  # minChargingRate in tenths or None
P_TX = const(11)  # transactionId (TxProfile) or None
P_PERIODS = const(12)  # flat [startPeriod, limit in tenths, numberPhases or 0, ...]
RECORD_LEN = const(13)

CP_MAX = const(0)
TX_DEFAULT = const(1)
TX = const(2)
PURPOSES = ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")

ABSOLUTE = const(0)
DAILY = const(1)
WEEKLY = const(2)
RELATIVE = const(3)

AMPS = const(0)
WATTS = const(1)
UNITS = ("A", "W")

_DAY = const(86400)
_WEEK = const(604800)
_LIMIT_MAX = const(10000000)  # tenths: 1 MW or 1 MA, far above any charger
_DEFAULT_PHASES = const(3)  # 7.14: "numberPhases=3 will be assumed unless another number"


class ProfileError(ValueError):
    """A charging profile the charger refuses (SetChargingProfile answers Rejected)."""


def _min(a, b):
    if a is None:
        return b
    if b is None or a < b:
        return a
    return b


def _time(obj, name):
    v = obj.get(name)
    if v is None:
        return None
    try:
        return parse_rfc3339(v)
    except ValueError:
        raise ProfileError(name + " is not a date-time")


def _tenths(v, name):
    if type(v) is not int and type(v) is not float:
        raise ProfileError(name + " is not a number")
    if v < 0 or v * 10 > _LIMIT_MAX:
        raise ProfileError(name + " out of range")
    return int(round(v * 10))


def parse_profile(cp, cid, now_s):
    """Compact record of a csChargingProfiles object already checked against the 1.6 spec.

    Checks what the schema cannot: first startPeriod 0 and strictly increasing (5.16), limits
    >= 0, numberPhases 1-3, Recurring with recurrencyKind and startSchedule, validTo after
    validFrom, duration >= 0. Absolute without startSchedule starts at `now_s` (install time).
    Raises ProfileError. Configuration limits (stack level, periods, units) are the caller's.
    """
    try:
        purpose = PURPOSES.index(cp["chargingProfilePurpose"])
        sched = cp["chargingSchedule"]
        unit = UNITS.index(sched["chargingRateUnit"])
        kind_name = cp["chargingProfileKind"]
        raw = sched["chargingSchedulePeriod"]
    except (KeyError, ValueError, TypeError):
        raise ProfileError("incomplete profile")
    start = _time(sched, "startSchedule")
    if kind_name == "Absolute":
        kind = ABSOLUTE
        if start is None:
            start = now_s
    elif kind_name == "Relative":
        kind = RELATIVE
        start = None  # counted from the transaction start; a startSchedule is ignored
    elif kind_name == "Recurring":
        rk = cp.get("recurrencyKind")
        if rk == "Daily":
            kind = DAILY
        elif rk == "Weekly":
            kind = WEEKLY
        else:
            raise ProfileError("Recurring needs recurrencyKind")
        if start is None:
            raise ProfileError("Recurring needs startSchedule")
    else:
        raise ProfileError("unknown chargingProfileKind")
    valid_from = _time(cp, "validFrom")
    valid_to = _time(cp, "validTo")
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        raise ProfileError("validTo not after validFrom")
    dur = sched.get("duration")
    if dur is not None and (type(dur) is not int or dur < 0):
        raise ProfileError("duration must be >= 0")
    if type(raw) is not list or not raw:
        raise ProfileError("no chargingSchedulePeriod")
    periods = []
    last = -1
    for p in raw:
        sp = p.get("startPeriod") if type(p) is dict else None
        if type(sp) is not int or sp <= last or (last < 0 and sp != 0):
            raise ProfileError("startPeriod must start at 0 and increase")
        last = sp
        ph = p.get("numberPhases")
        if ph is None:
            ph = 0
        elif type(ph) is not int or not 1 <= ph <= 3:
            raise ProfileError("numberPhases must be 1..3")
        periods.append(sp)
        periods.append(_tenths(p.get("limit"), "limit"))
        periods.append(ph)
    rate = sched.get("minChargingRate")
    min10 = None if rate is None else _tenths(rate, "minChargingRate")
    pid = cp.get("chargingProfileId")
    stack = cp.get("stackLevel")
    if type(pid) is not int or type(stack) is not int or stack < 0:
        raise ProfileError("bad chargingProfileId or stackLevel")
    return [pid, cid, purpose, stack, kind, valid_from, valid_to, start, dur, unit, min10,
            cp.get("transactionId") if purpose == TX else None, periods]


def valid_record(r):
    """True when r has the shape parse_profile() builds (records loaded from flash)."""
    if type(r) is not list or len(r) != RECORD_LEN:
        return False
    for i in (P_ID, P_CONN, P_PURPOSE, P_STACK, P_KIND, P_UNIT):
        if type(r[i]) is not int:
            return False
    for i in (P_FROM, P_TO, P_START, P_DUR, P_MIN, P_TX):
        if r[i] is not None and type(r[i]) is not int:
            return False
    if not 0 <= r[P_PURPOSE] <= 2 or not 0 <= r[P_KIND] <= 3 or not 0 <= r[P_UNIT] <= 1:
        return False
    if r[P_START] is None and r[P_KIND] != RELATIVE:
        return False
    per = r[P_PERIODS]
    if type(per) is not list or not per or len(per) % 3 or per[0] != 0:
        return False
    for v in per:
        if type(v) is not int:
            return False
    return True


def profile_at(p, t, tx_start):
    """(period index or -1, until) of one profile at instant t.

    -1: no period in force at t (not valid, not started, schedule over). `until`: the next
    instant (> t) at which the answer may change, None when it never will.
    """
    vt = p[P_TO]
    vf = p[P_FROM]
    if vf is not None and t < vf:
        return -1, vf
    if vt is not None and t >= vt:
        return -1, None
    kind = p[P_KIND]
    dur = p[P_DUR]
    per = p[P_PERIODS]
    if kind == RELATIVE:
        if tx_start is None:
            return 0, vt  # no transaction yet: its first period, until one starts
        s = tx_start
    else:
        s = p[P_START]
    if t < s:
        return -1, _min(s, vt)
    nxt = None
    if kind == DAILY or kind == WEEKLY:
        rp = _DAY if kind == DAILY else _WEEK
        s += (t - s) // rp * rp
        nxt = s + rp
        if dur is None or dur > rp:
            dur = rp
    o = t - s
    if dur is not None and o >= dur:
        return -1, _min(nxt, vt)
    n = len(per)
    i = 0
    while i + 3 < n and per[i + 3] <= o:
        i += 3
    until = s + per[i + 3] if i + 3 < n else None
    if dur is not None:
        until = _min(until, s + dur)
    return i // 3, _min(until, vt)


def stack_at(profiles, purpose, cid, t, tx_start):
    """(record, period index, until) of the winning profile of one purpose on connector cid.

    The record is None when no profile of that purpose has a period at t. `until` covers the
    winner and every higher stack level (one of those may start first).
    """
    best = None
    best_i = -1
    for p in profiles:
        if p[P_PURPOSE] != purpose or p[P_CONN] != cid:
            continue
        if best is not None and p[P_STACK] <= best[P_STACK]:
            continue
        i, _u = profile_at(p, t, tx_start)
        if i >= 0:
            best = p
            best_i = i
    hold = None
    for p in profiles:
        if p[P_PURPOSE] != purpose or p[P_CONN] != cid:
            continue
        if best is None or p[P_STACK] >= best[P_STACK]:
            hold = _min(hold, profile_at(p, t, tx_start)[1])
    return best, best_i, hold


def amps_of(p, i, volts, board_phases):
    """(per-phase amps, phases) of period i of record p (W converted with the phases used)."""
    per = p[P_PERIODS]
    ph = per[3 * i + 2] or _DEFAULT_PHASES
    if ph > board_phases:
        ph = board_phases
    v = per[3 * i + 1] / 10
    if p[P_UNIT] == WATTS:
        v = v / (volts * ph)
    return v, ph


def tx_level_at(profiles, cid, t, tx_start):
    """(record, period index, until) of the Tx/TxDefault limit of connector cid > 0 at t."""
    hold = None
    for purpose, conn in ((TX, cid), (TX_DEFAULT, cid), (TX_DEFAULT, 0)):
        p, i, u = stack_at(profiles, purpose, conn, t, tx_start)
        hold = _min(hold, u)
        if p is not None:
            return p, i, hold
    return None, -1, hold


def connector_limit(profiles, cid, t, tx_start, volts, phases, share=1):
    """(amps or None, phases, until): the smart-charging limit of connector cid > 0 at t.

    None when no profile applies (the hardware maximum then). `share`: the number of connectors
    the ChargePointMaxProfile is split among (those running a transaction, at least 1).
    """
    p, i, hold = tx_level_at(profiles, cid, t, tx_start)
    amps = None
    ph = phases
    floor = 0
    if p is not None:
        amps, ph = amps_of(p, i, volts, phases)
        if p[P_MIN]:
            floor = p[P_MIN] / 10
            if p[P_UNIT] == WATTS:
                floor = floor / (volts * ph)
    m, mi, u = stack_at(profiles, CP_MAX, 0, t, tx_start)
    hold = _min(hold, u)
    if m is not None:
        ma, mph = amps_of(m, mi, volts, phases)
        ma = ma / share
        if amps is None or ma < amps:
            amps = ma
            ph = mph
    if amps is not None and amps < floor:
        amps = 0.0
    return amps, ph, hold


def _in_unit(amps, ph, unit, volts):
    return amps if unit == AMPS else amps * volts * ph


def connector_value(profiles, cid, t, tx_start, unit, volts, phases, default_a, share=1):
    """(limit in `unit`, until) of connector cid > 0 at t; default_a where no profile applies."""
    amps, ph, hold = connector_limit(profiles, cid, t, tx_start, volts, phases, share)
    if amps is None:
        amps = default_a
        ph = phases
    return _in_unit(amps, ph, unit, volts), hold


def site_value(profiles, tx_starts, t, unit, volts, phases, default_a):
    """(limit in `unit`, until) for connector 0: the sum of the connectors' Tx/TxDefault limits
    (default_a where none applies), held down by the ChargePointMaxProfile (5.7: the total the
    charge point expects to draw). tx_starts: one start time (or None) per connector."""
    total = 0
    hold = None
    for k in range(len(tx_starts)):
        p, i, u = tx_level_at(profiles, k + 1, t, tx_starts[k])
        hold = _min(hold, u)
        if p is None:
            total += _in_unit(default_a, phases, unit, volts)
        else:
            a, ph = amps_of(p, i, volts, phases)
            total += _in_unit(a, ph, unit, volts)
    m, mi, u = stack_at(profiles, CP_MAX, 0, t, None)
    hold = _min(hold, u)
    if m is not None:
        a, ph = amps_of(m, mi, volts, phases)
        v = _in_unit(a, ph, unit, volts)
        if v < total:
            total = v
    return total, hold


def composite(value_at, start, duration, max_periods, max_steps=256):
    """Merge `value_at(t) -> (value, until)` from `start` for `duration` s into periods.

    Returns (flat [startPeriod, value rounded to 0.1, ...], duration covered). A new period
    starts only where the rounded value changes. At most `max_periods` periods and `max_steps`
    evaluations (bounds on work and answer size); when either runs out first, the duration is
    cut where the schedule stops being described.
    """
    end = start + duration
    out = []
    t = start
    steps = 0
    while True:
        v, until = value_at(t)
        v = round1(v)
        if not out or out[-1] != v:
            if len(out) >= 2 * max_periods:
                end = t
                break
            out.append(t - start)
            out.append(v)
        steps += 1
        if until is None or until >= end:
            break
        if steps >= max_steps:
            end = until
            break
        t = until if until > t else t + 1
    return out, end - start
