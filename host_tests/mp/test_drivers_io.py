"""drivers relay / pilot / pp / rcd / acsense / button / ntc / s0_meter against fake pins, ADCs
and a fake time: polarity, PWM-synchronised pilot sampling, PP ohms, RCD IRQ and self-test,
weld debounce, service-button timings, thermistor, S0 pulse counting."""

from fakes_hw import HW, FakePin, FakePWM, FakeADC, PilotWave, drive
from fakes_devices import FakeRCD
from drivers.relay import Relay, open_level
from drivers.pilot import Pilot, split_levels
from drivers.pp import ProximityPilot, ohms_from_mv
from drivers.rcd import RCD
from drivers.acsense import ACSense, WeldCheck
from drivers.button import ServiceButton
from drivers.ntc import NTC, celsius_from_mv
from drivers.s0_meter import S0Meter
from evse.duty import duty_for_current
from evse.limiter import pp_amps_from_ohms

CAL = (1400, 0.012)


def _close(a, b, tol):
    return abs(a - b) <= tol


# ---- relay ---------------------------------------------------------------------------------
def test_relay_active_high_polarity():
    HW.reset()
    r = Relay(FakePin(26, FakePin.OUT), active_high=True)
    assert HW.gpio(26).writes == [0]  # driven open at construction
    r.set(True)
    assert HW.level(26) == 1 and r.closed and r.is_closed()
    r.set(False)
    assert HW.level(26) == 0 and not r.closed
    r.set(True)
    r.open()
    assert HW.level(26) == 0 and not r.is_closed()


def test_relay_active_low_polarity():
    HW.reset()
    r = Relay(FakePin(26, FakePin.OUT), active_high=False)
    assert HW.gpio(26).writes == [1]
    r.set(True)
    assert HW.level(26) == 0
    r.open()
    assert HW.level(26) == 1
    assert open_level(True) == 0 and open_level(False) == 1


# ---- pilot ---------------------------------------------------------------------------------
def _pilot(high_v, low_v, read_us=20, slope_us=0):
    HW.reset()
    pwm = FakePWM(FakePin(25), freq=1000, duty_u16=65535)
    wave = PilotWave(25, CAL[0], CAL[1], high_v, low_v, read_us, slope_us)
    HW.adc[36] = wave
    p = Pilot(pwm, FakeADC(FakePin(36)), CAL[0], CAL[1], HW.time.ticks_us, HW.time.ticks_diff)
    return p, pwm, wave


def test_set_duty_uses_duty_u16_rounding():
    p, pwm, _ = _pilot(12, 12)
    assert pwm.duty_u16() == 65535  # steady +12 V from the start
    p.set_duty(duty_for_current(6))
    assert pwm.duty_u16() == 6554 and pwm.duty_u16() / 65535 >= 0.1
    p.set_duty(1.0)
    assert pwm.duty_u16() == 65535
    p.set_duty(0.0)
    assert pwm.duty_u16() == 0  # state F: steady -12 V


def test_duty_rounding_survives_a_14_bit_timer():
    HW.reset()
    pwm = FakePWM(FakePin(14), freq=1000, duty_u16=65535)
    p = Pilot(pwm, FakeADC(FakePin(1)), CAL[0], CAL[1], HW.time.ticks_us, HW.time.ticks_diff,
              pwm_bits=14)
    for amps in (6, 10, 16, 32):
        p.set_duty(duty_for_current(amps))
        v = pwm.duty_u16()
        assert v % 4 == 0 and (v >> 2) / 16384 >= duty_for_current(amps), (amps, v)
    p.set_duty(1.0)
    assert pwm.duty_u16() == 65535


def test_pwm_off_low_equals_high():
    for v in (12.0, 9.0, 6.0, 0.0):
        p, _, _ = _pilot(v, -12.0)
        high, low = p.levels()
        assert high == low and _close(high, v, 0.05), (v, high, low)


def test_pwm_levels_across_duties_and_states():
    for amps in (6, 16, 32, 48, 63):
        for high_v in (9.0, 6.0, 3.0):
            p, _, _ = _pilot(high_v, -12.0)
            p.set_duty(duty_for_current(amps))
            for phase_us in (0, 37, 333, 901):  # burst starting anywhere in the period
                HW.time.us += phase_us
                high, low = p.levels()
                assert _close(high, high_v, 0.05), (amps, high_v, high)
                assert _close(low, -12.0, 0.05), (amps, high_v, low)


def test_slow_edges_are_not_sampled():
    # Op-amp slew: 40 us ramps after each edge; the settle/guard distances keep both samples
    # on the plateaus, so a healthy diode is never mistaken for a missing one.
    p, _, _ = _pilot(9.0, -12.0, read_us=10, slope_us=40)
    p.set_duty(duty_for_current(16))
    high, low = p.levels()
    assert _close(high, 9.0, 0.3) and _close(low, -12.0, 0.3), (high, low)


def test_missing_diode_shows_in_the_low_phase():
    p, _, _ = _pilot(6.0, -6.0)
    p.set_duty(duty_for_current(10))
    high, low = p.levels()
    assert _close(high, 6.0, 0.05) and _close(low, -6.0, 0.05)


def test_shorted_pilot_reads_no_swing():
    p, _, _ = _pilot(0.0, 0.0)
    p.set_duty(duty_for_current(16))
    high, low = p.levels()
    assert high == low and _close(high, 0.0, 0.05)


def test_split_levels_without_complete_runs_uses_extremes():
    buf = [100, 100, 100, 2000, 2000]  # one edge only: no run bounded on both sides
    assert split_levels(buf, 5, 50, 20) == (2000, 100)
    assert split_levels(buf, 0, 50, 20) == (None, None)


def test_burst_is_bounded():
    p, _, _ = _pilot(9.0, -12.0, read_us=1)  # a very fast ADC: the buffer bound stops it
    p.set_duty(0.5)
    p.levels()
    assert HW.adc[36] is not None
    assert p.interval_us >= 1


# ---- proximity pilot -----------------------------------------------------------------------
def test_pp_resistors_map_to_cable_ratings():
    HW.reset()
    pp = ProximityPilot(FakeADC(FakePin(39)), 1000, 3300)
    for ohms, amps in ((100, 63), (220, 32), (680, 20), (1500, 13)):
        HW.adc[39] = 3300 * ohms / (ohms + 1000)
        got = pp.ohms()
        assert _close(got, ohms, ohms * 0.02), (ohms, got)
        assert pp_amps_from_ohms(got) == amps
    HW.adc[39] = 3300  # no resistor
    assert pp.ohms() is None
    HW.adc[39] = 0  # shorted: 0 Ohm is out of band
    assert pp_amps_from_ohms(pp.ohms()) is None
    assert ohms_from_mv(-5, 1000, 3300) == 0


# ---- RCD -----------------------------------------------------------------------------------
def _rcd(trip_ms=30, release_ms=10):
    HW.reset()
    t = HW.time
    fake = FakeRCD(27, 34, trip_ms, release_ms)
    relays = (Relay(FakePin(26, FakePin.OUT)), Relay(FakePin(13, FakePin.OUT)))
    rcd = RCD(FakePin(34, FakePin.IN), True, FakePin(27, FakePin.OUT), True, 500, 1000,
              t.ticks_ms, t.ticks_diff, t.sleep_ms)
    rcd.arm(relays)
    return rcd, relays, fake


def test_rcd_trip_irq_opens_every_relay():
    rcd, relays, _ = _rcd()
    for r in relays:
        r.set(True)
    assert HW.gpio(34).hard is False  # the ESP32 has no hard pin IRQs: scheduled handler
    drive(34, 1)
    assert HW.level(26) == 0 and HW.level(13) == 0
    assert rcd.tripped() and rcd.trips == 1
    assert rcd.take_latch() and not rcd.take_latch()


def test_rcd_uses_a_hard_irq_where_the_port_has_one():
    HW.reset()
    HW.hard_irq = True
    r = Relay(FakePin(26, FakePin.OUT))
    rcd = RCD(FakePin(34, FakePin.IN), True, None)
    rcd.arm((r,))
    assert HW.gpio(34).hard is True
    r.set(True)
    drive(34, 1)
    assert HW.level(26) == 0


def test_rcd_short_pulse_is_latched():
    rcd, _, _ = _rcd()
    drive(34, 1)
    drive(34, 0)
    assert not rcd.tripped()
    assert rcd.take_latch()


def test_rcd_selftest_passes():
    rcd, _, _ = _rcd(trip_ms=30)
    t0 = HW.time.ticks_ms()
    assert rcd.selftest()
    assert HW.level(27) == 0  # test pin released
    assert not rcd.take_latch()  # the test's own trip is not a fault
    assert HW.time.ticks_ms() - t0 < 100  # returned soon after the trip, not at the deadline
    assert rcd.selftest_supported and rcd.last_selftest is True


def test_rcd_selftest_fails_without_trip():
    rcd, _, _ = _rcd(trip_ms=None)
    assert not rcd.selftest()
    assert HW.level(27) == 0


def test_rcd_selftest_fails_when_too_slow_or_stuck():
    rcd, _, _ = _rcd(trip_ms=700)
    assert not rcd.selftest()
    rcd, _, _ = _rcd(trip_ms=20, release_ms=None)  # never releases
    assert not rcd.selftest()
    assert not rcd.selftest()  # already tripped: not pulsed again


def test_rcd_without_test_pin():
    HW.reset()
    rcd = RCD(FakePin(34), True, None)
    assert not rcd.selftest_supported and not rcd.selftest()


# ---- mains sense / weld ----------------------------------------------------------------------
def test_ac_sense_pulses_count_as_present():
    HW.reset()
    t = HW.time
    ac = ACSense(FakePin(35), active_low=True, ticks_ms=t.ticks_ms, ticks_diff=t.ticks_diff)
    drive(35, 1)
    ac.arm()
    assert not ac.present()
    drive(35, 0)
    drive(35, 1)  # one half-wave pulse
    assert ac.present() and ac.edges == 1
    t.advance(150)
    assert not ac.present()


def test_weld_needs_more_than_one_second_with_relays_open():
    w = WeldCheck()
    assert not w.update(0, True, False)  # relay closed: AC expected
    assert not w.update(100, True, True)  # just opened: settling
    assert not w.update(400, True, True)
    assert not w.update(1400, True, True)  # exactly 1 s
    assert w.update(1401, True, True)
    assert not w.update(1500, False, True)  # AC gone: cleared
    assert not w.update(1600, True, False)


# ---- service button ------------------------------------------------------------------------
def test_button_short_press_does_nothing():
    HW.reset()
    b = ServiceButton(FakePin(0), active_low=True)
    drive(0, 1)
    assert b.update(0) is None
    drive(0, 0)
    b.update(100)
    drive(0, 1)
    assert b.update(2000) is None
    assert not b.window_open(2000)


def test_button_three_seconds_opens_a_60_second_window():
    HW.reset()
    b = ServiceButton(FakePin(0), active_low=True)
    drive(0, 0)
    b.update(1000)
    b.update(3000)
    drive(0, 1)
    assert b.update(4000) == "window"
    assert b.window_open(4000) and b.window_open(63999)
    assert not b.window_open(64000)
    assert not b.factory_reset_requested


def test_button_ten_seconds_requests_factory_reset():
    HW.reset()
    b = ServiceButton(FakePin(0), active_low=True)
    drive(0, 0)
    b.update(0)
    assert b.update(9999) is None
    assert b.update(10000) == "factory_reset"
    assert b.factory_reset_requested
    drive(0, 1)
    assert b.update(10500) is None  # the long press does not also open the window
    assert not b.window_open(10500)


# ---- NTC -----------------------------------------------------------------------------------
def test_ntc_temperature_and_overtemp_hysteresis():
    assert _close(celsius_from_mv(1650, 10000, 3300, 10000, 3950), 25.0, 0.01)
    HW.reset()
    ntc = NTC(FakeADC(FakePin(4)))

    def mv_for(c):  # invert the beta equation for the test
        import math

        r = 10000 * math.exp(3950 * (1 / (c + 273.15) - 1 / 298.15))
        return 3300 * r / (r + 10000)

    HW.adc[4] = mv_for(40)
    assert not ntc.overtemp() and _close(ntc.celsius(), 40, 0.3)
    HW.adc[4] = mv_for(72)
    assert ntc.overtemp()
    HW.adc[4] = mv_for(69.5)
    assert ntc.overtemp()  # hysteresis: clears at 68 C
    HW.adc[4] = mv_for(67)
    assert not ntc.overtemp()
    HW.adc[4] = 3300  # open sensor
    c = ntc.celsius()
    assert c != c and ntc.overtemp()


# ---- S0 meter ------------------------------------------------------------------------------
def test_s0_energy_and_power_from_pulses():
    HW.reset()
    t = HW.time
    m = S0Meter(FakePin(33), pulses_per_kwh=1000, ticks_ms=t.ticks_ms, ticks_diff=t.ticks_diff)
    drive(33, 1)
    m.arm()
    for _ in range(11):  # 1 Wh per pulse, one every 1 s = 3600 W
        drive(33, 0)
        drive(33, 1)
        t.advance(1000)
    t.advance(-1000)
    r = m.read()
    assert r["energy_wh"] == 11.0
    assert _close(r["power_w"], 3600.0, 0.01)
    assert _close(r["current_a"][0], 3600 / 230, 0.01)
    t.advance(4000)  # no pulse for 4 s: at most 900 W
    assert _close(m.read()["power_w"], 900.0, 0.01)
    assert m.read() is m.reading and not m.lost


def test_s0_bounce_is_ignored():
    HW.reset()
    t = HW.time
    m = S0Meter(FakePin(33), 1000, ticks_ms=t.ticks_ms, ticks_diff=t.ticks_diff)
    drive(33, 1)
    m.arm()
    drive(33, 0)
    drive(33, 1)
    t.advance(5)
    drive(33, 0)  # bounce 5 ms later
    drive(33, 1)
    assert m.count == 1
    try:
        S0Meter(FakePin(33), 0)
    except ValueError:
        return
    raise AssertionError("0 pulses/kWh accepted")
