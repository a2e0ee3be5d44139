"""evse.duty: the IEC 61851-1 current <-> duty table, rounding, the 51 A gap, bad input."""
# mp-heapsize: 64K

from evse.duty import (
    current_for_duty, duty_for_current, duty_permille, duty_u16, offer_deciamps,
)

NAN = float("nan")

# evse.md section 2: current (A) -> duty (%), both formulas.
TABLE = (
    (6, 100), (10, 167), (13, 217), (16, 267), (20, 333), (32, 533), (40, 667),
    (48, 800), (51, 850), (63, 892), (80, 960),
)


def test_duty_table():
    for amps, permille in TABLE:
        assert duty_permille(offer_deciamps(amps)) == permille, amps
        assert duty_for_current(amps) == permille / 1000, amps
        assert duty_for_current(float(amps)) == permille / 1000, amps


def test_six_amps_never_below_ten_percent():
    assert duty_for_current(6) >= 0.1
    assert duty_for_current(6.0) >= 0.1
    assert duty_for_current(6.05) >= 0.1
    assert duty_u16(duty_for_current(6)) / 65535 >= 0.1


def test_below_six_amps_is_steady_plus_12v():
    for amps in (5.99, 5.95, 0, 0.0, -1, -100):
        assert duty_for_current(amps) == 1.0, amps
        assert offer_deciamps(amps) == 0


def test_above_80_amps_clamps():
    for amps in (80.05, 81, 100, 1e9, float("inf")):
        assert duty_for_current(amps) == 0.96, amps
        assert offer_deciamps(amps) == 800


def test_bad_input_means_no_charging():
    for bad in (None, NAN, "16", True, False, [16], b"16"):
        assert duty_for_current(bad) == 1.0, bad
        assert offer_deciamps(bad) == 0


def test_resolution_rounds_down_to_tenth_of_an_amp():
    assert offer_deciamps(16.09) == 160
    assert offer_deciamps(6.3) == 63
    assert offer_deciamps(6.29) == 62
    assert offer_deciamps(32) == 320


def test_gap_of_the_norm_clamps_to_51_amps():
    for amps in (51.05, 51.1, 52.0, 52.4):
        assert offer_deciamps(amps) == 510, amps
        assert duty_for_current(amps) == 0.85, amps
    assert offer_deciamps(52.5) == 525
    assert duty_for_current(52.5) == 0.85
    assert duty_for_current(53) == 0.852


def test_duty_is_monotonic_in_current():
    last = 0
    for da in range(60, 801):
        p = duty_permille(da)
        assert p >= last, da
        last = p


def test_current_for_duty_reading_table():
    for duty, amps in (
        (1.0, 0.0), (0.98, 0.0), (0.971, 0.0), (0.97, 80.0), (0.965, 80.0), (0.96, 80.0),
        (0.892, 63.0), (0.85, 51.0), (0.5, 30.0), (0.1, 6.0), (0.09, 6.0), (0.08, 6.0),
        (0.079, 0.0), (0.075, 0.0), (0.05, 0.0), (0.03, 0.0), (0.02, 0.0), (0.0, 0.0),
    ):
        got = current_for_duty(duty)
        assert abs(got - amps) < 1e-9, (duty, got, amps)


def test_current_for_duty_bad_input():
    for bad in (None, NAN, -0.1, 1.5, "0.5", True):
        assert current_for_duty(bad) == 0.0, bad


def test_round_trip_within_rounding():
    da = 60
    while da <= 800:
        amps = da / 10
        got = current_for_duty(duty_for_current(amps))
        # 51..52.7 A all give 85.0 % (gap clamp, rounding), which EVs read as 51 A: less.
        want = 51.0 if duty_permille(da) == 850 else amps
        # 0.1 % of duty is 0.06 A below 51 A and 0.25 A above: half of that is the bound.
        assert abs(got - want) <= 0.126, (amps, got)
        assert got >= 6.0
        da += 1


def test_duty_u16_rounds_up():
    assert duty_u16(0.1) == 6554
    assert duty_u16(1.0) == 65535
    assert duty_u16(0.0) == 0
    assert duty_u16(0.5) == 32768
    assert duty_u16(0.96) == 62914
    for bad in (None, NAN, 2, -1, "x"):
        assert duty_u16(bad) == 65535, bad
