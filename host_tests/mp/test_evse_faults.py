"""evse.faults: OCPP error-code mapping of every fault kind and the FaultLatch recovery rules."""
# mp-heapsize: 64K

from evse.faults import (
    AUTO, FAULTS, KINDS, LATCH, UNPLUG, FaultLatch, error_code, led_pattern, reports_faulted,
    vendor_error_code,
)

# OCPP 1.6 ChargePointErrorCode (ocpp16.md section 3).
OCPP_CODES = (
    "ConnectorLockFailure", "EVCommunicationError", "GroundFailure", "HighTemperature",
    "InternalError", "LocalListConflict", "NoError", "OtherError", "OverCurrentFailure",
    "PowerMeterFailure", "PowerSwitchFailure", "ReaderFailure", "ResetFailure", "UnderVoltage",
    "OverVoltage", "WeakSignal",
)

# kind, error code, Faulted?, recovery mode
MAPPING = (
    ("rcd", "GroundFailure", True, UNPLUG),
    ("rcd_selftest", "InternalError", True, LATCH),
    ("diode", "EVCommunicationError", False, UNPLUG),
    ("weld", "PowerSwitchFailure", True, LATCH),
    ("overtemp", "HighTemperature", True, AUTO),
    ("pilot_short", "EVCommunicationError", False, AUTO),
    ("meter_lost", "PowerMeterFailure", True, AUTO),
    ("pp_invalid", "EVCommunicationError", False, UNPLUG),
    ("ventilation", "OtherError", False, AUTO),
)


def test_each_fault_maps_to_its_ocpp_code():
    assert len(MAPPING) == len(KINDS)
    for kind, code, faulted, mode in MAPPING:
        assert error_code(kind) == code, kind
        assert reports_faulted(kind) is faulted, kind
        assert FAULTS[kind][4] == mode, kind
        assert code in OCPP_CODES
        v = vendor_error_code(kind)
        assert isinstance(v, str) and 0 < len(v) <= 50, kind
        assert isinstance(led_pattern(kind), str), kind


def test_table_and_priority_order_agree():
    assert sorted(KINDS) == sorted(FAULTS.keys())
    assert KINDS[0] == "weld"


def test_no_fault():
    assert error_code(None) == "NoError"
    assert vendor_error_code(None) is None
    assert led_pattern(None) is None
    assert reports_faulted(None) is False


def test_unknown_kind_raises_and_changes_nothing():
    latch = FaultLatch()
    for bad in ("fire", None, 3, ["rcd"]):
        for fn in (error_code, led_pattern, vendor_error_code):
            if bad is None:
                continue
            try:
                fn(bad)
            except ValueError:
                pass
            else:
                raise AssertionError("accepted {}".format(bad))
        try:
            latch.set(bad, True, 0)
        except ValueError:
            pass
        else:
            raise AssertionError("accepted {}".format(bad))
    assert latch.active(0) is None


def test_auto_clears_after_hold_time():
    latch = FaultLatch()
    latch.set("overtemp", True, 0)
    assert latch.active(0) == "overtemp"
    assert latch.active(10 ** 6) == "overtemp"  # condition still on: no clearing
    latch.set("overtemp", False, 1000)
    assert latch.active(1000 + 59999) == "overtemp"
    assert latch.active(1000 + 60000) is None
    assert latch.count("overtemp") == 1


def test_auto_with_zero_hold_clears_at_once():
    latch = FaultLatch()
    latch.set("ventilation", True, 0)
    assert latch.active(1) == "ventilation"
    latch.set("ventilation", False, 2)
    assert latch.active(2) is None


def test_condition_back_during_hold_keeps_fault():
    latch = FaultLatch()
    latch.set("meter_lost", True, 0)
    latch.set("meter_lost", False, 100)
    latch.set("meter_lost", True, 5000)
    assert latch.active(20000) == "meter_lost"
    latch.set("meter_lost", False, 20000)
    assert latch.active(29999) == "meter_lost"
    assert latch.active(30000) is None
    assert latch.count("meter_lost") == 1  # one episode


def test_unplug_fault_needs_unplug_and_condition_off():
    latch = FaultLatch()
    latch.set("diode", True, 0)
    latch.set("diode", False, 10)
    assert latch.active(10 ** 6) == "diode"
    latch.unplugged(10 ** 6)
    assert latch.active(10 ** 6) is None
    # Unplug first, condition off later: clears when the condition goes.
    latch.set("pp_invalid", True, 0)
    latch.unplugged(5)
    assert latch.active(6) == "pp_invalid"
    latch.set("pp_invalid", True, 7)  # still reported (level signal): the unplug still counts
    latch.set("pp_invalid", False, 8)
    assert latch.active(8) is None


def test_unplug_before_condition_returns_does_not_count():
    latch = FaultLatch()
    latch.set("diode", True, 0)
    latch.unplugged(1)
    latch.set("diode", False, 2)
    latch.set("diode", True, 3)  # seen again (next plug-in): needs another unplug
    latch.set("diode", False, 4)
    assert latch.active(5) == "diode"
    latch.unplugged(6)
    assert latch.active(6) is None


def test_latch_needs_power_cycle():
    latch = FaultLatch()
    latch.set("weld", True, 0)
    latch.set("weld", False, 1)
    latch.unplugged(2)
    assert latch.active(10 ** 9) == "weld"
    assert latch.latched("weld")
    assert FaultLatch().active(0) is None  # a power cycle = a new latch


def test_repeated_rcd_trips_latch():
    latch = FaultLatch()
    t = 0
    for n in range(3):
        latch.set("rcd", True, t)
        latch.set("rcd", False, t + 1)
        latch.unplugged(t + 2)
        assert latch.active(t + 2) is None, n
        t += 10
    assert not latch.latched("rcd")
    latch.set("rcd", True, t)  # 4th trip
    latch.set("rcd", False, t + 1)
    latch.unplugged(t + 2)
    assert latch.active(t + 10 ** 6) == "rcd"
    assert latch.latched("rcd") and latch.count("rcd") == 4


def test_priority_reports_most_severe():
    latch = FaultLatch()
    latch.set("meter_lost", True, 0)
    latch.set("rcd", True, 0)
    assert latch.active(0) == "rcd"
    latch.set("weld", True, 0)
    assert latch.active(0) == "weld"
    assert latch.is_active("meter_lost", 0)
    assert not latch.is_active("diode", 0)
