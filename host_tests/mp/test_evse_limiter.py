"""evse.limiter: minimum of sources, EMS staleness, PP bands, thermal derating, unit helpers."""
# mp-heapsize: 64K

from evse.limiter import (
    EMS_STALE_MS, Limiter, amps_to_watts, derate_for_temperature, pp_amps_from_ohms,
    watts_to_amps,
)

NAN = float("nan")


def test_minimum_of_sources_with_reason():
    lim = Limiter(32)
    assert lim.effective(0) == (32, "board")
    lim.set("config", 20, 0)
    assert lim.effective(0) == (20, "config")
    lim.set("cable", 16, 0)
    assert lim.effective(0) == (16, "cable")
    lim.set("ocpp", 10.5, 0)
    assert lim.effective(0) == (10.5, "ocpp")
    lim.set("ems", 8, 0)
    assert lim.effective(0) == (8, "ems")
    lim.set("ems", None, 0)
    lim.set("ocpp", None, 0)
    assert lim.effective(0) == (16, "cable")
    lim.set("ocpp", 16, 0)  # tie: the earlier source is reported
    assert lim.effective(0) == (16, "cable")
    lim.set("ocpp", 0, 0)
    assert lim.effective(0) == (0, "ocpp")


def test_bad_source_values():
    lim = Limiter(32, config_max_a=16)
    for bad in (NAN, -3, "10", True):
        lim.set("ocpp", bad, 0)
        assert lim.effective(0) == (0.0, "ocpp"), bad
    for args in (("solar", 10), ("board", None), ("board", 0), ("board", NAN)):
        try:
            lim.set(args[0], args[1], 0)
        except ValueError:
            pass
        else:
            raise AssertionError(args)
    for bad in (None, 0, -1, "32"):
        try:
            Limiter(bad)
        except ValueError:
            pass
        else:
            raise AssertionError(bad)


def test_ems_goes_stale_and_falls_back():
    lim = Limiter(32, ems_stale_ms=11000, ems_safe_a=6)
    lim.set("ems", 25, 1000)
    assert lim.effective(1000 + 10999) == (25, "ems")
    assert lim.effective(1000 + 11000) == (6, "ems_stale")
    lim.set("ems", 25, 13000)  # fresh again
    assert lim.effective(13000) == (25, "ems")
    # Default fallback is a pause.
    lim = Limiter(32)
    lim.set("ems", 20, 0)
    assert lim.effective(EMS_STALE_MS) == (0.0, "ems_stale")
    # No energy manager at all: never stale.
    lim.set("ems", None, 0)
    assert lim.effective(10 ** 9) == (32, "board")


def test_pp_bands():
    for ohms, amps in (
        (0, None), (79, None), (80, 63), (100, 63), (139.9, 63), (140, 32), (220, 32),
        (307, 32), (308, 20), (680, 20), (935, 20), (936, 13), (1500, 13), (2460, 13),
        (2461, None), (10 ** 6, None), (-5, None), (None, None), (NAN, None), ("220", None),
    ):
        assert pp_amps_from_ohms(ohms) == amps, (ohms, amps)


def test_pp_reading_limits_or_faults():
    lim = Limiter(32)
    assert lim.set_pp_ohms(680, 0) == 20
    assert lim.effective(0) == (20, "cable") and not lim.pp_invalid
    assert lim.set_pp_ohms(5000, 0) is None
    assert lim.pp_invalid
    assert lim.effective(0) == (0.0, "cable")
    lim.set("cable", None, 0)  # tethered cable, or the reading is dropped: fault gone
    assert not lim.pp_invalid
    assert lim.effective(0) == (32, "board")


def test_derate_table_and_hysteresis():
    for temp, prev, want in (
        (20, 1.0, 1.0), (64.9, 1.0, 1.0), (65, 1.0, 0.5), (67.9, 1.0, 0.5), (68, 1.0, 0.25),
        (70.9, 1.0, 0.25), (71, 1.0, 0.0), (100, 1.0, 0.0),
        (63, 0.5, 0.5), (62.1, 0.5, 0.5), (62, 0.5, 1.0),
        (66, 0.25, 0.25), (65, 0.25, 0.5), (60, 0.25, 1.0),
        (69, 0.0, 0.0), (68, 0.0, 0.25), (64, 0.0, 0.5), (20, 0.0, 1.0),
        (None, 0.0, 1.0), (NAN, 1.0, 0.0), ("hot", 1.0, 0.0),
        (50, 0.3, 1.0),  # unknown previous factor: no hold
    ):
        got = derate_for_temperature(temp, prev)
        assert got == want, (temp, prev, got, want)
    assert derate_for_temperature(66) == 0.5


def test_thermal_derating_in_limiter():
    lim = Limiter(32, config_max_a=16)
    lim.set_temperature(66, 0)
    assert lim.effective(0) == (8.0, "thermal")
    lim.set_temperature(69, 0)
    assert lim.effective(0) == (6.0, "thermal")  # quarter of 16 = 4, but at least 6 A
    assert not lim.overtemp
    lim.set_temperature(72, 0)
    assert lim.overtemp
    assert lim.effective(0) == (0.0, "thermal")
    lim.set_temperature(67, 0)  # below 68: quarter again
    assert not lim.overtemp
    assert lim.effective(0) == (6.0, "thermal")
    lim.set_temperature(40, 0)
    assert lim.effective(0) == (16, "config")
    # Derating does not lift a limit that already pauses.
    lim.set("ocpp", 4, 0)
    lim.set_temperature(66, 0)
    assert lim.effective(0) == (4, "ocpp")
    lim.set_temperature(80, 0)
    assert lim.effective(0) == (0.0, "thermal")


def test_change_hook_logs_each_change_once():
    log = []
    lim = Limiter(32, on_change=lambda a, r, t: log.append((a, r, t)))
    lim.effective(0)
    lim.effective(1)
    lim.set("ocpp", 16, 2)
    lim.effective(2)
    lim.effective(3)
    lim.set("ocpp", 16, 4)
    lim.effective(4)
    lim.set("ems", 10, 5)
    lim.effective(5)
    lim.effective(5 + EMS_STALE_MS)
    assert log == [(32, "board", 0), (16, "ocpp", 2), (10, "ems", 5),
                   (0.0, "ems_stale", 5 + EMS_STALE_MS)]


def test_watts_and_amps():
    assert abs(watts_to_amps(11040, 3, 230) - 16.0) < 1e-9
    assert abs(watts_to_amps(3680, 1) - 16.0) < 1e-9
    assert amps_to_watts(16, 1, 230) == 3680
    assert amps_to_watts(32, 3, 230.0) == 22080
    for args in ((1000, 0, 230), (1000, 4, 230), (1000, True, 230), (1000, 3, 0),
                 (1000, 3, -230), (1000, 3, NAN), (None, 3, 230), (NAN, 3, 230)):
        for fn in (watts_to_amps, amps_to_watts):
            try:
                fn(*args)
            except ValueError:
                pass
            else:
                raise AssertionError(args)
