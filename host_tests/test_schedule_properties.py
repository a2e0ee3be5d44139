"""Property tests of ocpp16.schedule (CPython): the composite schedule, built from `until`
instants, equals a brute-force evaluation of the OCPP 1.6 stacking rules at every instant.

The brute force below is written independently of lib/ocpp16/schedule.py: it walks the
profiles with the plain rules (validity, kind, recurrence, duration, highest stack level with a
period, TxProfile > connector TxDefault > connector-0 TxDefault, min with ChargePointMax,
minChargingRate, unit conversion) and knows nothing of `until`.
"""

import bisect

from hypothesis import example, given, settings, strategies as st

from ocpp16 import schedule as sch
from ocpp16.timefmt import format_rfc3339

T0 = 1704067200
VOLTS = 230.0
DEFAULT_A = 32.0
KINDS = ("Absolute", "Relative", "Daily", "Weekly")


@st.composite
def profiles(draw):
    out = []
    seen = set()
    for pid in range(draw(st.integers(0, 6))):
        purpose = draw(st.sampled_from(sch.PURPOSES))
        cid = 0 if purpose == "ChargePointMaxProfile" else draw(
            st.sampled_from((0, 1, 2)) if purpose == "TxDefaultProfile" else st.just(1))
        stack = draw(st.integers(0, 3))
        if (purpose, cid, stack) in seen:  # installation replaces these: never both present
            continue
        seen.add((purpose, cid, stack))
        kind = draw(st.sampled_from(KINDS))
        unit = draw(st.sampled_from(("A", "W")))
        n = draw(st.integers(1, 4))
        starts = sorted(draw(st.sets(st.integers(1, 150000), min_size=n - 1, max_size=n - 1)))
        top = 320 if unit == "A" else 220000
        periods = []
        for sp in [0] + starts:
            p = {"startPeriod": sp, "limit": draw(st.integers(0, top)) / 10}
            if draw(st.booleans()):
                p["numberPhases"] = draw(st.integers(1, 3))
            periods.append(p)
        sched = {"chargingRateUnit": unit, "chargingSchedulePeriod": periods}
        if kind != "Relative":
            sched["startSchedule"] = format_rfc3339(T0 + draw(st.integers(-200000, 200000)))
        if draw(st.booleans()):
            sched["duration"] = draw(st.integers(0, 200000))
        if draw(st.integers(0, 4)) == 0:
            sched["minChargingRate"] = draw(st.integers(0, top // 2)) / 10
        cp = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
              "chargingProfileKind": "Recurring" if kind in ("Daily", "Weekly") else kind,
              "chargingSchedule": sched}
        if kind in ("Daily", "Weekly"):
            cp["recurrencyKind"] = kind
        if draw(st.booleans()):
            vf = T0 + draw(st.integers(-100000, 300000))
            cp["validFrom"] = format_rfc3339(vf)
            if draw(st.booleans()):
                cp["validTo"] = format_rfc3339(vf + draw(st.integers(1, 300000)))
        out.append(sch.parse_profile(cp, cid, T0))
    return out


# ---- brute force -----------------------------------------------------------------------------
def period_of(p, t, tx_start):
    """(limit in tenths, numberPhases) in force for profile p at t, or None."""
    if p[sch.P_FROM] is not None and t < p[sch.P_FROM]:
        return None
    if p[sch.P_TO] is not None and t >= p[sch.P_TO]:
        return None
    per = [tuple(p[sch.P_PERIODS][i:i + 3]) for i in range(0, len(p[sch.P_PERIODS]), 3)]
    kind = p[sch.P_KIND]
    dur = p[sch.P_DUR]
    if kind == sch.RELATIVE:
        if tx_start is None:
            return per[0][1:]
        begin = tx_start
    else:
        begin = p[sch.P_START]
        if t < begin:
            return None
        if kind in (sch.DAILY, sch.WEEKLY):
            length = 86400 if kind == sch.DAILY else 7 * 86400
            while begin + length <= t:
                begin += length
            dur = length if dur is None else min(dur, length)
    offset = t - begin
    if offset < 0 or (dur is not None and offset >= dur):
        return None
    found = None
    for sp, lim, ph in per:
        if sp <= offset:
            found = (lim, ph)
    return found


def winner(profs, purpose, cid, t, tx_start):
    cands = [p for p in profs if p[sch.P_PURPOSE] == purpose and p[sch.P_CONN] == cid]
    for p in sorted(cands, key=lambda p: -p[sch.P_STACK]):
        got = period_of(p, t, tx_start)
        if got is not None:
            return p, got
    return None, None


def to_amps(p, got, board_phases):
    lim, ph = got
    ph = min(ph or 3, board_phases)
    v = lim / 10
    return (v / (VOLTS * ph) if p[sch.P_UNIT] == sch.WATTS else v), ph


def brute_value(profs, cid, t, tx_start, unit, board_phases, share):
    amps, ph, floor = None, board_phases, 0
    for purpose, conn in ((sch.TX, cid), (sch.TX_DEFAULT, cid), (sch.TX_DEFAULT, 0)):
        p, got = winner(profs, purpose, conn, t, tx_start)
        if p is not None:
            amps, ph = to_amps(p, got, board_phases)
            if p[sch.P_MIN]:
                floor = p[sch.P_MIN] / 10
                if p[sch.P_UNIT] == sch.WATTS:
                    floor /= VOLTS * ph
            break
    m, got = winner(profs, sch.CP_MAX, 0, t, tx_start)
    if m is not None:
        ma, mph = to_amps(m, got, board_phases)
        ma /= share
        if amps is None or ma < amps:
            amps, ph = ma, mph
    if amps is not None and amps < floor:
        amps = 0.0
    if amps is None:
        amps, ph = DEFAULT_A, board_phases
    return amps if unit == sch.AMPS else amps * VOLTS * ph


def boundaries(profs, start, end, tx_start):
    """Every instant where some profile could change, clipped to [start, end)."""
    out = {start}
    for p in profs:
        base = [p[sch.P_FROM], p[sch.P_TO]]
        begin = tx_start if p[sch.P_KIND] == sch.RELATIVE else p[sch.P_START]
        if begin is None:
            continue
        anchors = [begin]
        if p[sch.P_KIND] in (sch.DAILY, sch.WEEKLY):
            length = 86400 if p[sch.P_KIND] == sch.DAILY else 7 * 86400
            a = begin
            while a < end:
                anchors.append(a)
                a += length
        for a in anchors:
            base.append(a)
            if p[sch.P_DUR] is not None:
                base.append(a + p[sch.P_DUR])
            base.extend(a + sp for sp in p[sch.P_PERIODS][0::3])
        for b in base:
            if b is not None:
                for x in (b - 1, b, b + 1):
                    if start <= x < end:
                        out.add(x)
    return sorted(out)


def _daily_longer_than_a_day():
    """Periods past 24 h on a Daily profile: cut at the next recurrence (rare for hypothesis)."""
    sched = {"chargingRateUnit": "A", "startSchedule": format_rfc3339(T0), "duration": 150000,
             "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10},
                                        {"startPeriod": 50000, "limit": 12},
                                        {"startPeriod": 95000, "limit": 6}]}
    cp = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
          "chargingProfileKind": "Recurring", "recurrencyKind": "Daily",
          "chargingSchedule": sched}
    return [sch.parse_profile(cp, 0, T0)]


@settings(max_examples=500, deadline=None)
@example(profs=_daily_longer_than_a_day(), offset=60000, duration=86400, cid=1, unit=sch.AMPS,
         board_phases=3, share=1, tx=None, extra=[])
@given(profs=profiles(), offset=st.integers(-100000, 400000), duration=st.integers(1, 3 * 86400),
       cid=st.sampled_from((1, 2)), unit=st.sampled_from((sch.AMPS, sch.WATTS)),
       board_phases=st.sampled_from((1, 3)), share=st.sampled_from((1, 2)),
       tx=st.one_of(st.none(), st.integers(-50000, 50000)), extra=st.lists(
           st.integers(0, 3 * 86400), max_size=20))
def test_composite_equals_brute_force_at_every_instant(profs, offset, duration, cid, unit,
                                                       board_phases, share, tx, extra):
    start = T0 + offset
    tx_start = None if tx is None else start + tx

    def value_at(t):
        return sch.connector_value(profs, cid, t, tx_start, unit, VOLTS, board_phases,
                                   DEFAULT_A, share)

    flat, dur = sch.composite(value_at, start, duration, 10000, max_steps=100000)
    assert dur == duration
    offsets = flat[0::2]
    values = flat[1::2]
    assert offsets[0] == 0 and offsets == sorted(set(offsets))
    assert all(a != b for a, b in zip(values, values[1:]))  # merged: no repeated limit
    instants = boundaries(profs, start, start + duration, tx_start)
    instants += [start + e for e in extra if e < duration]
    for t in instants:
        k = bisect.bisect_right(offsets, t - start) - 1
        want = round(brute_value(profs, cid, t, tx_start, unit, board_phases, share), 1)
        assert values[k] == want, (t - start, values[k], want)


@settings(max_examples=200, deadline=None)
@given(profs=profiles(), offset=st.integers(-100000, 400000), tx=st.integers(-50000, 0))
def test_live_limit_holds_until_its_boundary(profs, offset, tx):
    """connector_limit's `until` is honest: nothing changes before it, so caching is safe."""
    t = T0 + offset
    tx_start = t + tx
    amps, ph, until = sch.connector_limit(profs, 1, t, tx_start, VOLTS, 3)
    assert until is None or until > t
    probe = [t + 1, t + 17, t + 3600] if until is None else [until - 1, (t + until) // 2]
    for u in probe:
        if u > t:
            later = sch.connector_limit(profs, 1, u, tx_start, VOLTS, 3)[0]
            assert later == amps, (u - t, later, amps)
