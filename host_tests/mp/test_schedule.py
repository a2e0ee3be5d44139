"""ocpp16.schedule: stacking, validity, Recurring/Relative kinds, units and composite schedules.

Each composite case writes out the periods it expects, as (startPeriod, limit) pairs from the
start of the composite, computed by hand from the OCPP 1.6 rules (section 3.13, 5.16).
"""
# mp-heapsize: 96K

from ocpp16.schedule import (
    AMPS, WATTS, ProfileError, composite, connector_limit, connector_value, parse_profile,
    profile_at, site_value, valid_record,
)
from ocpp16.timefmt import format_rfc3339, parse_rfc3339

T0 = 1704067200  # 2024-01-01T00:00:00Z, a Monday
H = 3600
DAY = 86400


def ts(t):
    return format_rfc3339(t)


def prof(pid, purpose, periods, cid=0, stack=0, kind="Absolute", start=T0, unit="A",
         duration=None, recur=None, valid_from=None, valid_to=None, min_rate=None, now=T0):
    """A record from an OCPP profile; periods: (startPeriod, limit[, numberPhases]) tuples."""
    sched = {"chargingRateUnit": unit, "chargingSchedulePeriod": []}
    for p in periods:
        d = {"startPeriod": p[0], "limit": p[1]}
        if len(p) > 2:
            d["numberPhases"] = p[2]
        sched["chargingSchedulePeriod"].append(d)
    if start is not None:
        sched["startSchedule"] = ts(start)
    if duration is not None:
        sched["duration"] = duration
    if min_rate is not None:
        sched["minChargingRate"] = min_rate
    cp = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
          "chargingProfileKind": kind, "chargingSchedule": sched}
    if recur:
        cp["recurrencyKind"] = recur
    if valid_from is not None:
        cp["validFrom"] = ts(valid_from)
    if valid_to is not None:
        cp["validTo"] = ts(valid_to)
    return parse_profile(cp, cid, now)


def comp(profiles, start, duration, cid=1, unit="A", tx_start=None, phases=3, default=32.0,
         share=1, max_periods=24):
    u = AMPS if unit == "A" else WATTS

    def value_at(t):
        return connector_value(profiles, cid, t, tx_start, u, 230.0, phases, default, share)

    flat, dur = composite(value_at, start, duration, max_periods)
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)], dur


def test_stacked_tx_default_under_charge_point_max():
    cpmax = prof(1, "ChargePointMaxProfile", [(0, 20), (H, 10)])
    txd = prof(2, "TxDefaultProfile", [(0, 16), (5400, 6)])
    assert comp([cpmax, txd], T0, 2 * H) == ([(0, 16.0), (H, 10.0), (5400, 6.0)], 2 * H)
    # Order of installation does not matter.
    assert comp([txd, cpmax], T0, 2 * H) == ([(0, 16.0), (H, 10.0), (5400, 6.0)], 2 * H)


def test_higher_stack_level_wins_then_falls_back():
    base = prof(1, "TxDefaultProfile", [(0, 16)], stack=0)
    top = prof(2, "TxDefaultProfile", [(0, 8)], stack=1, start=T0 + 1800, duration=1800)
    cpmax = prof(3, "ChargePointMaxProfile", [(0, 12)], stack=0)
    assert comp([base, top], T0, 2 * H) == ([(0, 16.0), (1800, 8.0), (H, 16.0)], 2 * H)
    assert comp([top, base, cpmax], T0, 2 * H) == ([(0, 12.0), (1800, 8.0), (H, 12.0)], 2 * H)


def test_tx_profile_overrides_tx_default():
    txd = prof(1, "TxDefaultProfile", [(0, 16)], stack=3)
    tx = prof(2, "TxProfile", [(0, 10)], cid=1, stack=0, start=T0 + 600, duration=1200)
    assert comp([txd, tx], T0, H) == ([(0, 16.0), (600, 10.0), (1800, 16.0)], H)
    cpmax = prof(3, "ChargePointMaxProfile", [(0, 12)])
    assert comp([txd, tx, cpmax], T0, H) == ([(0, 12.0), (600, 10.0), (1800, 12.0)], H)
    # A TxProfile may also raise the limit above TxDefault: it replaces it, it is not a min.
    up = prof(4, "TxProfile", [(0, 25)], cid=1, start=T0 + 600, duration=1200)
    assert comp([txd, up], T0, H) == ([(0, 16.0), (600, 25.0), (1800, 16.0)], H)
    # Another connector's TxProfile does not touch connector 1.
    other = prof(5, "TxProfile", [(0, 6)], cid=2)
    assert comp([txd, other], T0, H) == ([(0, 16.0)], H)


def test_connector_tx_default_beats_connector_zero_whatever_the_stack_level():
    zero = prof(1, "TxDefaultProfile", [(0, 20)], cid=0, stack=5)
    one = prof(2, "TxDefaultProfile", [(0, 13)], cid=1, stack=0, duration=1800)
    assert comp([zero, one], T0, H, cid=1) == ([(0, 13.0), (1800, 20.0)], H)
    assert comp([zero, one], T0, H, cid=2) == ([(0, 20.0)], H)


def test_overlapping_validity():
    base = prof(1, "TxDefaultProfile", [(0, 16)], stack=0, valid_from=T0)
    mid = prof(2, "TxDefaultProfile", [(0, 8)], stack=1, valid_from=T0 + 1000,
               valid_to=T0 + 2000)
    top = prof(3, "TxDefaultProfile", [(0, 6)], stack=2, valid_from=T0 + 1500,
               valid_to=T0 + 2500)
    expect = [(0, 16.0), (1000, 8.0), (1500, 6.0), (2500, 16.0)]
    assert comp([base, mid, top], T0, H) == (expect, H)
    # Not yet valid at the start: the hardware maximum until validFrom.
    late = prof(4, "TxDefaultProfile", [(0, 10)], valid_from=T0 + 600)
    assert comp([late], T0, H) == ([(0, 32.0), (600, 10.0)], H)


def test_daily_recurring_across_midnight():
    # 22:00-06:00 every day: 10 A until midnight, 16 A until 02:00, then 6 A.
    night = prof(1, "TxDefaultProfile", [(0, 10), (2 * H, 16), (4 * H, 6)], kind="Recurring",
                 recur="Daily", start=T0 + 22 * H, duration=8 * H)
    start = T0 + DAY + 21 * H  # 2024-01-02 21:00
    expect = [(0, 32.0), (H, 10.0), (3 * H, 16.0), (5 * H, 6.0), (9 * H, 32.0)]
    assert comp([night], start, 12 * H) == (expect, 12 * H)
    # Inside the window, after midnight: 16 A until 02:00 of that day.
    t = T0 + 2 * DAY + H  # 2024-01-03 01:00
    amps, ph, until = connector_limit([night], 1, t, None, 230.0, 3)
    assert (amps, until) == (16.0, T0 + 2 * DAY + 2 * H)
    # Nothing before the first startSchedule.
    assert connector_limit([night], 1, T0 + 21 * H, None, 230.0, 3)[0] is None


def test_daily_recurring_without_duration_repeats_every_day():
    day = prof(1, "TxDefaultProfile", [(0, 6), (8 * H, 16)], kind="Recurring", recur="Daily",
               start=T0)
    expect = [(0, 16.0), (16 * H, 6.0), (24 * H, 16.0), (40 * H, 6.0)]
    assert comp([day], T0 + 8 * H, 2 * DAY) == (expect, 2 * DAY)


def test_recurring_periods_beyond_the_recurrence_are_not_executed():
    long = prof(1, "TxDefaultProfile", [(0, 10), (20 * H, 12), (30 * H, 6)], kind="Recurring",
                recur="Daily", start=T0, duration=2 * DAY)
    assert comp([long], T0 + 18 * H, 12 * H) == ([(0, 10.0), (2 * H, 12.0), (6 * H, 10.0)],
                                                   12 * H)


def test_weekly_recurring():
    # Weekdays 10 A, weekend (Saturday 00:00 on) 20 A; anchored on Monday 2024-01-01.
    week = prof(1, "TxDefaultProfile", [(0, 10), (5 * DAY, 20)], kind="Recurring",
                recur="Weekly", start=T0)
    start = T0 + 11 * DAY + 20 * H  # Friday 2024-01-12 20:00
    expect = [(0, 10.0), (4 * H, 20.0), (4 * H + 2 * DAY, 10.0)]
    assert comp([week], start, 3 * DAY) == (expect, 3 * DAY)


def test_relative_from_the_transaction_start():
    rel = prof(1, "TxDefaultProfile", [(0, 6), (900, 16)], kind="Relative", start=None,
               duration=H)
    tx_start = T0 + 100
    expect = [(0, 6.0), (600, 16.0), (3300, 32.0)]
    assert comp([rel], T0 + 400, 4000, tx_start=tx_start) == (expect, 4000)
    # Without a transaction its first period applies and nothing changes until one starts.
    assert connector_limit([rel], 1, T0 + 5000, None, 230.0, 3) == (6.0, 3, None)
    # A startSchedule on a Relative profile is ignored.
    rel2 = prof(2, "TxDefaultProfile", [(0, 6), (900, 16)], kind="Relative", start=T0 + 9999)
    assert comp([rel2], T0 + 400, 1000, tx_start=tx_start) == ([(0, 6.0), (600, 16.0)], 1000)


def test_watts_and_amps():
    w = prof(1, "TxDefaultProfile", [(0, 11000)], unit="W")  # numberPhases 3 assumed
    assert comp([w], T0, H) == ([(0, 15.9)], H)  # 11000 / (230 * 3) = 15.94
    assert comp([w], T0, H, unit="W") == ([(0, 11000.0)], H)
    # Amps converted to watts with the binding source's phases.
    cpmax = prof(2, "ChargePointMaxProfile", [(0, 10)])
    assert comp([w, cpmax], T0, H, unit="W") == ([(0, 6900.0)], H)
    assert comp([w, cpmax], T0, H) == ([(0, 10.0)], H)
    a = prof(3, "TxDefaultProfile", [(0, 16)])
    assert comp([a], T0, H, unit="W") == ([(0, 11040.0)], H)
    # numberPhases=1 on a 3-phase board: one phase carries it all.
    one = prof(4, "TxDefaultProfile", [(0, 2300, 1)], unit="W")
    assert comp([one], T0, H) == ([(0, 10.0)], H)
    assert comp([one], T0, H, unit="W") == ([(0, 2300.0)], H)
    # A 1-phase board caps numberPhases=3 to its one phase: 7360 W is 32 A on that phase.
    assert comp([prof(5, "TxDefaultProfile", [(0, 7360)], unit="W")], T0, H, phases=1) == (
        [(0, 32.0)], H)
    assert comp([a], T0, H, unit="W", phases=1) == ([(0, 3680.0)], H)
    # Rounded to 0.1: 1000 W / 690 V = 1.449 A.
    assert comp([prof(6, "TxDefaultProfile", [(0, 1000)], unit="W")], T0, H) == ([(0, 1.4)], H)


def test_periods_merge_where_the_rounded_limit_does_not_change():
    a = prof(1, "TxDefaultProfile", [(0, 16), (600, 16), (1200, 20)])
    cpmax = prof(2, "ChargePointMaxProfile", [(0, 10), (900, 16.1)])
    assert comp([a], T0, H) == ([(0, 16.0), (1200, 20.0)], H)
    assert comp([a, cpmax], T0, H) == ([(0, 10.0), (900, 16.0), (1200, 16.1)], H)


def test_min_charging_rate_pauses_below_it():
    txd = prof(1, "TxDefaultProfile", [(0, 16)], min_rate=8)
    cpmax = prof(2, "ChargePointMaxProfile", [(0, 10), (600, 6)])
    assert comp([txd, cpmax], T0, H) == ([(0, 10.0), (600, 0.0)], H)


def test_charge_point_max_is_shared_and_summed_on_connector_zero():
    cpmax = prof(1, "ChargePointMaxProfile", [(0, 20)])
    txd = prof(2, "TxDefaultProfile", [(0, 16)])
    assert comp([cpmax, txd], T0, H, share=2) == ([(0, 10.0)], H)
    assert connector_limit([cpmax], 1, T0, None, 230.0, 3, share=2)[0] == 10.0

    def site(t):
        return site_value([cpmax, txd], [None, None], t, AMPS, 230.0, 3, 32.0)

    assert site(T0) == (20.0, None)  # min(16 + 16, 20)
    assert site_value([txd], [None, None], T0, AMPS, 230.0, 3, 32.0)[0] == 32.0


def test_no_profile_is_none_and_composite_is_the_hardware_maximum():
    assert connector_limit([], 1, T0, None, 230.0, 3) == (None, 3, None)
    assert comp([], T0, 600, default=16.0) == ([(0, 16.0)], 600)
    assert comp([], T0, 0) == ([(0, 32.0)], 0)


def test_until_is_the_next_boundary():
    p = prof(1, "TxDefaultProfile", [(0, 16), (300, 10)], valid_to=T0 + 1000)
    assert profile_at(p, T0, None) == (0, T0 + 300)
    assert profile_at(p, T0 + 300, None) == (1, T0 + 1000)
    assert profile_at(p, T0 + 1000, None) == (-1, None)
    q = prof(2, "TxDefaultProfile", [(0, 16)], valid_from=T0 + 50)
    assert profile_at(q, T0, None) == (-1, T0 + 50)
    # A higher stack level that starts later bounds the winner's hold.
    hi = prof(3, "TxDefaultProfile", [(0, 8)], stack=1, start=T0 + 200)
    assert connector_limit([p, hi], 1, T0, None, 230.0, 3) == (16.0, 3, T0 + 200)


def test_composite_is_cut_at_max_periods():
    p = prof(1, "TxDefaultProfile", [(0, 6), (100, 7), (200, 8), (300, 9), (400, 10)])
    assert comp([p], T0, 1000, max_periods=3) == ([(0, 6.0), (100, 7.0), (200, 8.0)], 300)


def test_absolute_without_start_schedule_starts_at_install():
    p = prof(1, "TxDefaultProfile", [(0, 6), (60, 10)], start=None, now=T0 + 500)
    assert comp([p], T0 + 500, 120) == ([(0, 6.0), (60, 10.0)], 120)


def test_invalid_profiles_are_refused():
    cases = (
        dict(kind="Recurring", recur="Daily", start=None),  # no startSchedule
        dict(kind="Recurring"),  # no recurrencyKind
        dict(valid_from=T0 + 10, valid_to=T0 + 10),
        dict(duration=-1),
    )
    for kw in cases:
        try:
            prof(1, "TxDefaultProfile", [(0, 6)], **kw)
        except ProfileError:
            continue
        raise AssertionError(kw)
    for periods in ([(10, 6)], [(0, 6), (0, 8)], [(0, 6), (60, 8), (30, 7)], [(0, -1)],
                    [(0, 6, 4)], [(0, 6, 0)], []):
        try:
            prof(1, "TxDefaultProfile", periods)
        except ProfileError:
            continue
        raise AssertionError(periods)


def test_records_round_trip_and_bad_records_are_recognised():
    import json

    p = prof(7, "TxDefaultProfile", [(0, 16.5, 1), (60, 8)], valid_to=T0 + 99, min_rate=6.1)
    assert valid_record(json.loads(json.dumps(p)))
    assert p[12] == [0, 165, 1, 60, 80, 0]
    for bad in (None, [], p[:-1], p[:-1] + [[]], p[:-1] + [[5, 10, 0]], p[:4] + ["x"] + p[5:]):
        assert not valid_record(bad), bad


def test_rfc3339_times_used_by_the_tests():
    assert parse_rfc3339(ts(T0 + 22 * H)) == T0 + 22 * H
