"""evse.pilot: band classification at the IEC 61851-1 edges, diode check, debounce."""
# mp-heapsize: 64K

import micropython

from evse.pilot import PILOT_DEBOUNCE_MS, PilotFilter, classify, diode_ok

NAN = float("nan")

# (high level in volts, expected state) with PWM off: band edges, gaps, out-of-range readings.
STEADY = (
    (13.5, "E"), (13.01, "E"), (13.0, "A"), (12.6, "A"), (12.0, "A"), (11.4, "A"),
    (11.39, "B"), (10.0, "B"), (9.57, "B"),  # A/B gap -> B
    (9.56, "B"), (9.0, "B"), (8.36, "B"),
    (8.35, "B"), (7.0, "B"), (6.5, "B"),  # B/C gap -> B
    (6.49, "C"), (6.0, "C"), (5.48, "C"),
    (5.47, "D"), (4.0, "D"), (3.26, "D"),  # C/D gap -> D (needs ventilation)
    (3.25, "D"), (3.0, "D"), (2.62, "D"),
    (2.61, "E"), (1.0, "E"), (0, "E"), (-5.0, "E"), (-11.39, "E"),
    (-11.4, "F"), (-12, "F"), (-12.6, "F"), (-13.0, "F"),
    (-13.01, "E"), (-20, "E"),
    (12, "A"), (9, "B"), (6, "C"), (3, "D"),
)


def test_classify_band_edges_without_pwm():
    for v, want in STEADY:
        got = classify(v, None, False)
        assert got == want, (v, got, want)
        # Without PWM the low level is not looked at.
        assert classify(v, 100.0, False) == want


def test_classify_with_pwm_uses_high_phase():
    for high, low, want in (
        (12, -12, "A"), (9, -12, "B"), (6, -12, "C"), (3, -12, "D"),
        (9, -8.8, "B"),  # missing diode: still B, diode_ok() reports it
        (6, None, "C"),  # low phase not sampled: no swing check
        (0, 0, "E"),  # pilot shorted: no swing
        (9, 8.5, "E"),  # stuck generator: no swing
        (6, 6, "E"),
        (12, 11, "E"),
        (-12, -12, "E"),  # PWM on but the pilot sits at -12 V: not F, an error
        (9, 7.0, "B"),  # swing of exactly 2 V is enough
    ):
        got = classify(high, low, True)
        assert got == want, (high, low, got, want)


def test_classify_bad_input_is_state_e():
    for high, low, pwm in (
        (None, None, False), (NAN, None, False), ("9", None, False), (True, None, False),
        ([9], None, False), (9, NAN, True), (9, "x", True), (9, False, True),
        (float("inf"), None, False), (float("-inf"), None, False),
    ):
        assert classify(high, low, pwm) == "E", (high, low, pwm)


def test_diode_ok_band():
    for low, want in (
        (-12, True), (-11.4, True), (-12.6, True), (-13.0, True),
        (-11.39, False), (-13.01, False), (-8.8, False), (0, False), (12, False),
        (None, False), (NAN, False), ("-12", False), (True, False),
    ):
        assert diode_ok(low) is want, (low, want)


def test_filter_debounces_towards_c():
    f = PilotFilter()
    assert f.state == "A"
    assert f.update(0, "B") == "B"  # A -> B at once
    assert f.update(10, "C") == "B"
    assert f.update(10 + PILOT_DEBOUNCE_MS - 1, "C") == "B"
    assert f.update(10 + PILOT_DEBOUNCE_MS, "C") == "C"


def test_filter_glitch_restarts_the_wait():
    f = PilotFilter(initial="B")
    f.update(0, "C")
    f.update(200, "B")  # one B reading: the C wait starts over
    assert f.update(260, "C") == "B"
    assert f.update(260 + PILOT_DEBOUNCE_MS - 1, "C") == "B"
    assert f.update(260 + PILOT_DEBOUNCE_MS, "C") == "C"
    # A different slow target also restarts the wait.
    f = PilotFilter(initial="B")
    f.update(0, "C")
    f.update(200, "D")
    assert f.update(300, "D") == "B"
    assert f.update(200 + PILOT_DEBOUNCE_MS, "D") == "D"


def test_filter_fast_path_for_opening_states():
    for target in ("A", "B", "E", "F"):
        for start in ("C", "D"):
            f = PilotFilter(initial=start)
            assert f.update(1000, target) == target, (start, target)
    f = PilotFilter(initial="E")
    assert f.update(0, "A") == "A"
    assert f.update(0, "F") == "F"


def test_filter_c_to_d_is_debounced():
    f = PilotFilter(initial="C")
    assert f.update(0, "D") == "C"
    assert f.update(PILOT_DEBOUNCE_MS, "D") == "D"
    assert f.update(PILOT_DEBOUNCE_MS + 1, "C") == "D"
    assert f.update(2 * PILOT_DEBOUNCE_MS + 1, "C") == "C"


def test_filter_illegal_input_counts_as_e():
    f = PilotFilter(initial="C")
    assert f.update(0, "X") == "E"
    assert f.update(1, None) == "E"
    assert f.update(2, "") == "E"
    assert f.update(3, "AB") == "E"
    assert PilotFilter(initial="Q").state == "E"


def test_filter_zero_debounce_is_immediate():
    f = PilotFilter(debounce_ms=0, initial="B")
    assert f.update(5, "C") == "C"


def test_filter_and_classify_do_not_allocate():
    f = PilotFilter()
    f.update(0, "B")
    micropython.heap_lock()
    try:
        for t in range(0, 600, 10):
            f.update(t, "C")
        s = classify(9, -12, True)
        ok = diode_ok(-12)
    finally:
        micropython.heap_unlock()
    assert f.state == "C" and s == "B" and ok
