"""evse.control: ConnectorControl sessions, opening paths, self-test, ventilation, raise rule."""
# mp-heapsize: 64K

import micropython

from evse.control import RAISE_INTERVAL_MS, SELFTEST_TIMEOUT_MS, ConnectorControl


def charging(ventilation=False, limit=16, state="C"):
    """A machine that has walked A -> B2 -> C2 with the relay closed, at t = 1000."""
    c = ConnectorControl(ventilation=ventilation)
    assert c.update(0, "B", True, limit) == [("duty", 0.267), ("substate", "B2")]
    assert c.diode_seen(10)
    assert c.update(500, state, True, limit) == [("selftest", None), ("substate", state + "2")]
    assert c.selftest_result(600, True)
    assert c.update(1000, state, True, limit) == [("relay", True)]
    assert c.relay and c.offered_a == 16.0 and c.substate == state + "2"
    return c


def test_normal_session():
    c = charging()
    assert c.update(1100, "C", True, 16) == []
    assert c.update(2000, "B", True, 16) == [("relay", False), ("substate", "B2")]
    assert c.update(3000, "A", True, 16) == [("duty", 1.0), ("substate", "A")]
    assert c.duty == 1.0 and c.offered_a == 0.0 and not c.relay and not c.diode


def test_b1_without_permission_and_c1():
    c = ConnectorControl()
    assert c.update(0, "B", False, 16) == [("substate", "B1")]
    assert c.update(300, "C", False, 16) == [("substate", "C1")]
    assert c.duty == 1.0 and not c.relay
    assert not c.diode_seen(301)  # no PWM: the diode check cannot count


def test_relay_waits_for_the_diode_check():
    c = ConnectorControl()
    c.update(0, "C", True, 16)  # plugged in straight to C (e.g. after a power cut)
    assert c.update(100, "C", True, 16) == []
    assert not c.relay
    assert c.diode_seen(150)
    assert c.update(200, "C", True, 16) == [("selftest", None)]
    c.selftest_result(300, True)
    assert c.update(400, "C", True, 16) == [("relay", True)]


def test_diode_check_resets_on_unplug_and_error_states():
    for leave in ("A", "E", "F"):
        c = charging()
        c.update(2000, leave, True, 16)
        assert not c.diode, leave


def test_each_leaving_event_opens_in_the_same_update():
    cases = (
        ("B", True, 16, None, "B2"),
        ("A", True, 16, None, "A"),
        ("E", True, 16, None, "E"),
        ("F", True, 16, None, "F"),
        ("X", True, 16, None, "E"),  # illegal pilot: handled as E
        ("C", True, 16, "rcd", "C1"),
        ("C", True, 5.9, None, "C1"),
        ("C", True, None, None, "C1"),
        ("C", False, 16, None, "C1"),
    )
    for pilot, allowed, limit, fault, sub in cases:
        c = charging()
        acts = c.update(1500, pilot, allowed, limit, fault)
        assert not c.relay, pilot
        assert acts[0] == ("relay", False), (pilot, acts)  # opening comes first
        assert c.substate == sub, (pilot, c.substate)
        if sub != "B2":
            assert c.duty == 1.0 and c.offered_a == 0.0


def test_decrease_at_once_increase_after_five_seconds():
    c = charging()
    assert c.update(2000, "C", True, 10) == [("duty", 0.167)]
    assert c.offered_a == 10.0 and c.relay
    assert c.update(2000 + RAISE_INTERVAL_MS - 1, "C", True, 16) == []
    assert c.offered_a == 10.0
    assert c.update(2000 + RAISE_INTERVAL_MS, "C", True, 16) == [("duty", 0.267)]
    # Another decrease restarts the wait.
    c.update(8000, "C", True, 12)
    c.update(8100, "C", True, 8)
    assert c.update(8100 + RAISE_INTERVAL_MS - 1, "C", True, 32) == []
    assert c.offered_a == 8.0
    c.update(8100 + RAISE_INTERVAL_MS, "C", True, 32)
    assert c.offered_a == 32.0 and c.relay


def test_restart_after_pause_waits_and_needs_a_new_selftest():
    c = charging()
    c.update(2000, "C", True, 4)  # pause: below 6 A
    assert not c.relay and c.duty == 1.0 and c.substate == "C1"
    assert c.update(3000, "C", True, 16) == []  # restart is a rise: 5 s rule
    acts = c.update(2000 + RAISE_INTERVAL_MS, "C", True, 16)
    assert acts == [("duty", 0.267), ("selftest", None), ("substate", "C2")]
    c.selftest_result(7100, True)
    assert c.update(7200, "C", True, 16) == [("relay", True)]


def test_selftest_failure_blocks_until_unplug():
    c = ConnectorControl()
    c.update(0, "B", True, 16)
    c.diode_seen(1)
    assert c.update(300, "C", True, 16)[0] == ("selftest", None)
    c.selftest_result(400, False)
    assert c.update(500, "C", True, 16) == [("fault", "rcd_selftest")]
    assert c.update(600, "C", True, 16) == []
    assert not c.relay
    c.update(700, "A", True, 16)
    c.update(6000, "B", True, 16)
    c.diode_seen(6001)
    assert ("selftest", None) in c.update(6500, "C", True, 16)


def test_selftest_timeout_is_a_failure():
    c = ConnectorControl()
    c.update(0, "B", True, 16)
    c.diode_seen(1)
    c.update(300, "C", True, 16)
    assert c.update(300 + SELFTEST_TIMEOUT_MS - 1, "C", True, 16) == []
    assert c.update(300 + SELFTEST_TIMEOUT_MS, "C", True, 16) == [("fault", "rcd_selftest")]
    assert not c.selftest_result(300 + SELFTEST_TIMEOUT_MS + 1, True)  # too late
    assert c.update(5000, "C", True, 16) == [] and not c.relay


def test_unrequested_or_stale_selftest_pass_is_ignored():
    c = ConnectorControl()
    assert not c.selftest_result(0, True)
    c.update(0, "B", True, 16)
    c.diode_seen(1)
    c.update(300, "C", True, 16)  # request
    c.update(400, "B", True, 16)  # conditions broke before the answer
    assert not c.selftest_result(450, True)
    assert c.update(700, "C", True, 16) == [("selftest", None), ("substate", "C2")]
    assert not c.relay
    assert c.selftest_result(800, "yes")  # only True passes; anything else is a failure
    assert c.update(900, "C", True, 16) == [("fault", "rcd_selftest")]


def test_without_selftest_closes_directly():
    c = ConnectorControl(selftest=False)
    c.update(0, "B", True, 16)
    c.diode_seen(1)
    assert c.update(300, "C", True, 16) == [("relay", True), ("substate", "C2")]


def test_state_d_needs_ventilation():
    c = charging(ventilation=True, state="D")
    assert c.relay and c.substate == "D2"
    c = charging()
    acts = c.update(2000, "D", True, 16)
    assert acts == [("fault", "ventilation"), ("relay", False), ("duty", 1.0),
                    ("substate", "D1")]
    assert c.update(2100, "D", True, 16) == []
    assert c.update(2200, "B", True, 16) == [("fault_off", "ventilation"), ("substate", "B1")]


def test_each_close_needs_its_own_selftest():
    c = charging()
    c.update(2000, "B", True, 16)
    assert c.update(2300, "C", True, 16) == [("selftest", None), ("substate", "C2")]
    assert c.update(2400, "C", True, 16) == [] and not c.relay


def test_limits_above_80_and_odd_values():
    c = ConnectorControl(selftest=False)
    c.update(0, "B", True, 200)
    assert c.offered_a == 80.0 and c.duty == 0.96
    c.update(10, "B", True, float("nan"))
    assert c.offered_a == 0.0 and c.duty == 1.0
    c.update(20, "B", True, "16")
    assert c.offered_a == 0.0


def test_steady_update_does_not_allocate():
    c = charging()
    c.update(1100, "C", True, 16)
    micropython.heap_lock()
    try:
        for t in range(1200, 3000, 100):
            c.update(t, "C", True, 16)
    finally:
        micropython.heap_unlock()
    assert c.relay
