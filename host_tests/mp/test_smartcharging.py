"""ocpp16.smartcharging: SetChargingProfile rules, replacement, clearing, TxProfile lifecycle,
the cached live limit and its period boundaries, persistence, and GetCompositeSchedule answers.

A fake charger (real Store, Config and ManualClock; connectors are plain objects with `id` and
`tx`) stands in for lib/charger.
"""
# mp-heapsize: 256K

import json
import os

from clock import ManualClock
from ocpp16 import config as cfg
from ocpp16 import smartcharging as smc
from ocpp16.dispatch import Dispatcher
from ocpp16.timefmt import format_rfc3339
from store import Store
from store.tree import rmtree as _rmtree

T0 = 1704067200  # 2024-01-01T00:00:00Z
_n = [0]


def fresh_root():
    _n[0] += 1
    root = "/tmp/smc-test-%s-%d" % ("".join("%02x" % b for b in os.urandom(4)), _n[0])
    _rmtree(root)
    return root


class Conn:
    def __init__(self, cid):
        self.id = cid
        self.tx = None


class Board:
    max_current = 32.0
    voltage = 230.0

    def __init__(self, phases):
        self.phases = phases


class FakeCharger:
    def __init__(self, root=None, n=1, phases=1, wall=True, keys=None):
        self.board = Board(phases)
        self.store = Store(root or fresh_root())
        self.clock = ManualClock()
        if wall:
            self.clock.set_unix(T0)
        self.config = cfg.Config(None)
        smc.declare_keys(self.config, self.board)
        self.config.declare("ConnectionTimeOut", cfg.INT, 60)
        for k, v in (keys or {}).items():
            self.config.set(k, v)
        self.connectors = [Conn(i + 1) for i in range(n)]
        self.smart = smc.SmartCharging(self)

    def reboot(self):
        return FakeCharger(self.store.root, len(self.connectors), self.board.phases)

    def limit(self, cid=1):
        return self.smart.limit_a(self.connectors[cid - 1], self.clock.now_ms())

    def start_tx(self, cid=1, tag="TAG1", tx_id=7, **extra):
        self.connectors[cid - 1].tx = {"ref": 1, "id_tag": tag, "start_ms": self.clock.now_ms(),
                                       "tx_id": tx_id}
        self.connectors[cid - 1].tx.update(extra)


def profile(pid=1, purpose="TxDefaultProfile", limits=(16,), step=60, stack=0, unit="A",
            kind="Absolute", start=T0, **extra):
    sched = {"chargingRateUnit": unit,
             "chargingSchedulePeriod": [{"startPeriod": i * step, "limit": v}
                                        for i, v in enumerate(limits)]}
    if start is not None:
        sched["startSchedule"] = format_rfc3339(start)
    cp = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
          "chargingProfileKind": kind, "chargingSchedule": sched}
    cp.update(extra)
    return cp


def test_tx_default_sets_the_limit_and_survives_a_reboot():
    ch = FakeCharger()
    assert ch.limit() is None
    assert ch.smart.set_profile(0, profile(limits=(10,))) == "Accepted"
    assert ch.limit() == 10.0
    again = ch.reboot()
    assert again.smart.profiles == ch.smart.profiles
    assert again.limit() == 10.0


def test_rejections():
    ch = FakeCharger(n=2, keys={"ChargeProfileMaxStackLevel": 3,
                                "ChargingScheduleMaxPeriods": 2,
                                "ChargingScheduleAllowedChargingRateUnit": "Current"})
    s = ch.smart
    assert s.set_profile(0, profile(stack=4)) == "Rejected"
    assert s.set_profile(0, profile(stack=3)) == "Accepted"
    assert s.set_profile(0, profile(limits=(1, 2, 3))) == "Rejected"
    assert s.set_profile(0, profile(unit="W", limits=(2300,))) == "Rejected"
    assert s.set_profile(1, profile(purpose="ChargePointMaxProfile")) == "Rejected"
    assert s.set_profile(0, profile(pid=2, purpose="ChargePointMaxProfile")) == "Accepted"
    assert s.set_profile(3, profile()) == "Rejected"  # no connector 3
    assert s.set_profile(0, profile(kind="Recurring", recurrencyKind="Daily", start=None)) == \
        "Rejected"
    # TxProfile: never on connector 0, only with a running transaction, matching transactionId.
    assert s.set_profile(0, profile(purpose="TxProfile")) == "Rejected"
    assert s.set_profile(1, profile(purpose="TxProfile")) == "Rejected"
    ch.start_tx(1, tx_id=42)
    assert s.set_profile(1, profile(pid=5, purpose="TxProfile", transactionId=41)) == "Rejected"
    assert s.set_profile(2, profile(pid=5, purpose="TxProfile", transactionId=42)) == "Rejected"
    assert s.set_profile(1, profile(pid=5, purpose="TxProfile", transactionId=42)) == "Accepted"
    assert len(s.profiles) == 3


def test_no_wall_time_rejects_and_only_charge_point_max_applies():
    ch = FakeCharger()
    ch.smart.set_profile(0, profile(pid=1, purpose="ChargePointMaxProfile", limits=(20, 12)))
    ch.smart.set_profile(0, profile(pid=2, limits=(8,)))
    cold = FakeCharger(ch.store.root, wall=False)
    assert cold.limit() == 12.0  # the lowest ChargePointMax limit until the time is known
    assert cold.smart.set_profile(0, profile(pid=3)) == "Rejected"
    assert cold.smart.composite(1, 60)["status"] == "Rejected"
    cold.clock.set_unix(T0)
    cold.clock.advance(1000)
    assert cold.limit() == 8.0


def test_max_profiles_installed_and_expired_profiles_make_room():
    ch = FakeCharger(keys={"MaxChargingProfilesInstalled": 2})
    s = ch.smart
    assert s.set_profile(0, profile(pid=1, stack=0, validTo=format_rfc3339(T0 + 10))) == \
        "Accepted"
    assert s.set_profile(0, profile(pid=2, stack=1)) == "Accepted"
    assert s.set_profile(0, profile(pid=3, stack=2)) == "Rejected"
    ch.clock.advance(10000)  # profile 1 expired
    assert s.set_profile(0, profile(pid=3, stack=2)) == "Accepted"
    assert sorted(p[0] for p in s.profiles) == [2, 3]


def test_replacement_by_id_and_by_stack_purpose_connector():
    ch = FakeCharger(n=2)
    s = ch.smart
    s.set_profile(0, profile(pid=1, stack=0, limits=(16,)))
    s.set_profile(1, profile(pid=2, stack=0, limits=(14,)))  # other connector: kept
    assert len(s.profiles) == 2
    s.set_profile(0, profile(pid=3, stack=0, limits=(12,)))  # same stack/purpose/connector
    assert sorted(p[0] for p in s.profiles) == [2, 3]
    s.set_profile(2, profile(pid=2, stack=5, limits=(10,)))  # same id: moves to connector 2
    assert sorted((p[0], p[1]) for p in s.profiles) == [(2, 2), (3, 0)]
    s.set_profile(0, profile(pid=4, stack=0, purpose="ChargePointMaxProfile"))
    assert len(s.profiles) == 3  # another purpose at the same stack level is no conflict
    assert ch.limit(1) == 12.0 and ch.limit(2) == 10.0


def test_clear_by_id_connector_purpose_and_stack():
    ch = FakeCharger(n=2)
    s = ch.smart

    def fill():
        s.clear()
        s.set_profile(0, profile(pid=1, stack=0))
        s.set_profile(0, profile(pid=2, stack=1))
        s.set_profile(1, profile(pid=3, stack=1))
        s.set_profile(0, profile(pid=4, stack=1, purpose="ChargePointMaxProfile"))

    def ids():
        return sorted(p[0] for p in s.profiles)

    fill()
    assert s.clear(pid=9) == "Unknown"
    assert s.clear(pid=2, cid=1) == "Accepted" and ids() == [1, 3, 4]  # id alone decides
    fill()
    assert s.clear(cid=0) == "Accepted" and ids() == [3]
    fill()
    assert s.clear(purpose="TxDefaultProfile", stack=1) == "Accepted" and ids() == [1, 4]
    fill()
    assert s.clear(cid=1, purpose="ChargePointMaxProfile") == "Unknown" and len(ids()) == 4
    assert s.clear(stack=1) == "Accepted" and ids() == [1]
    assert s.clear() == "Accepted" and ids() == []
    assert s.clear() == "Unknown"
    assert FakeCharger(ch.store.root, n=2).smart.profiles == []


def test_tx_profile_overrides_and_goes_with_its_transaction():
    ch = FakeCharger()
    s = ch.smart
    s.set_profile(0, profile(pid=1, limits=(16,)))
    ch.start_tx()
    assert ch.limit() == 16.0
    assert s.set_profile(1, profile(pid=2, purpose="TxProfile", limits=(20,))) == "Accepted"
    assert ch.limit() == 20.0
    ch.connectors[0].tx = None
    assert ch.limit() == 16.0
    assert [p[0] for p in s.profiles] == [1]
    assert [p[0] for p in ch.reboot().smart.profiles] == [1]


def test_tx_profile_set_before_the_loop_saw_the_start_stays():
    ch = FakeCharger()
    ch.limit()
    ch.start_tx()  # no control cycle in between
    assert ch.smart.set_profile(1, profile(pid=2, purpose="TxProfile", limits=(9,))) == \
        "Accepted"
    assert ch.limit() == 9.0


def test_stored_tx_profiles_are_dropped_at_boot_without_a_transaction():
    ch = FakeCharger()
    ch.start_tx()
    ch.smart.set_profile(1, profile(pid=2, purpose="TxProfile", limits=(9,)))
    again = ch.reboot()
    assert len(again.smart.profiles) == 1
    assert again.limit() is None and again.smart.profiles == []


def test_change_takes_effect_exactly_at_the_period_boundary():
    ch = FakeCharger()
    ch.clock.advance(5000)  # T0 + 5 s
    ch.smart.set_profile(0, profile(limits=(16, 10, 0), step=30))
    assert ch.limit() == 16.0
    assert ch.smart._until[0] == 30000  # monotonic ms of T0 + 30 s: the next boundary
    ch.clock.advance(24999)
    assert ch.limit() == 16.0
    ch.clock.advance(1)
    assert ch.limit() == 10.0
    ch.clock.advance(30000)
    assert ch.limit() == 0.0  # pause
    assert ch.smart._until[0] == 60000 + 60000  # nothing ahead: held for at most a minute


def test_remote_start_profile_becomes_the_tx_profile():
    ch = FakeCharger()
    s = ch.smart
    c = ch.connectors[0]
    assert not s.expect_tx_profile(c, profile(purpose="TxDefaultProfile"), "TAG1")
    assert not s.expect_tx_profile(c, profile(purpose="TxProfile", stack=99), "TAG1")
    rel = profile(pid=8, purpose="TxProfile", kind="Relative", start=None, limits=(6, 12),
                  step=10)
    assert s.expect_tx_profile(c, rel, "tag1")
    ch.limit()
    assert s.profiles == []  # nothing installed before the transaction starts
    ch.clock.advance(2000)
    ch.start_tx(tag="TAG1", tx_id=None)
    assert ch.limit() == 6.0
    assert [p[0] for p in s.profiles] == [8]
    ch.clock.advance(10000)
    assert ch.limit() == 12.0  # 10 s after the transaction start
    c.tx = None
    assert ch.limit() is None and s.profiles == []


def test_remote_start_profile_carried_by_the_transaction_record():
    ch = FakeCharger(n=2)
    s = ch.smart
    cp = profile(pid=8, purpose="TxProfile", start=None, limits=(7, 11), step=30)
    assert s.expect_tx_profile(ch.connectors[0], cp, "TAG1")
    ch.limit(1)
    ch.clock.advance(5000)
    # The card's pending session moved to connector 2, where the EV was plugged in.
    ch.start_tx(2, tag="TAG1", profile=cp)
    assert ch.limit(2) == 7.0 and ch.limit(1) is None
    assert [(p[0], p[1]) for p in s.profiles] == [(8, 2)]
    ch.clock.advance(30000)  # Absolute without startSchedule: from the transaction start
    assert ch.limit(2) == 11.0
    # A transaction record without a profile: the RAM copy is not used either.
    ch.connectors[1].tx = None
    s.expect_tx_profile(ch.connectors[0], cp, "TAG1")
    ch.start_tx(1, tag="TAG1", profile=None)
    assert ch.limit(1) is None and s.profiles == []
    assert s.install_tx_profile(ch.connectors[1], cp) == "Rejected"  # no transaction there
    assert s.install_tx_profile(ch.connectors[0], cp) == "Accepted"
    assert ch.limit(1) == 7.0


def test_remote_start_profile_needs_the_same_tag_in_time():
    ch = FakeCharger()
    s = ch.smart
    c = ch.connectors[0]
    s.expect_tx_profile(c, profile(purpose="TxProfile", limits=(6,)), "TAG1")
    ch.start_tx(tag="OTHER")
    assert ch.limit() is None
    c.tx = None
    ch.limit()
    s.expect_tx_profile(c, profile(purpose="TxProfile", limits=(6,)), "TAG1")
    ch.clock.advance((60 + 60) * 1000)
    ch.start_tx(tag="TAG1")
    assert ch.limit() is None


def test_absolute_remote_profile_without_start_counts_from_the_transaction():
    ch = FakeCharger()
    c = ch.connectors[0]
    ch.smart.expect_tx_profile(c, profile(purpose="TxProfile", start=None, limits=(6, 12),
                                          step=20), "T")
    ch.clock.advance(15000)
    ch.start_tx(tag="T")
    assert ch.limit() == 6.0
    ch.clock.advance(19999)
    assert ch.limit() == 6.0
    ch.clock.advance(1)
    assert ch.limit() == 12.0


def test_charge_point_max_is_shared_among_running_transactions():
    ch = FakeCharger(n=2)
    ch.smart.set_profile(0, profile(purpose="ChargePointMaxProfile", limits=(20,)))
    ch.start_tx(1)
    assert ch.limit(1) == 20.0
    ch.start_tx(2)
    assert ch.limit(1) == 10.0 and ch.limit(2) == 10.0
    ch.connectors[1].tx = None
    assert ch.limit(1) == 20.0


def test_corrupt_stored_records_are_dropped():
    root = fresh_root()
    ch = FakeCharger(root)
    ch.smart.set_profile(0, profile(pid=3))
    good = ch.smart.profiles[0]
    ch.store.save("chgprofiles", [good, [1, 2], "x", None])
    assert FakeCharger(root).smart.profiles == [good]
    ch.store.save("chgprofiles", {"not": "a list"})
    assert FakeCharger(root).smart.profiles == []


def test_composite_answer():
    ch = FakeCharger(phases=1)
    s = ch.smart
    s.set_profile(0, profile(pid=1, limits=(16, 10), step=300))
    s.set_profile(0, profile(pid=2, purpose="ChargePointMaxProfile", limits=(2300,), unit="W",
                             start=T0 + 600))
    ch.clock.advance(100000)  # T0 + 100 s
    r = s.composite(1, 900)
    assert r == {
        "status": "Accepted", "connectorId": 1, "scheduleStart": "2024-01-01T00:01:40Z",
        "chargingSchedule": {
            "duration": 900, "startSchedule": "2024-01-01T00:01:40Z", "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0},
                                       {"startPeriod": 200, "limit": 10.0}]}}, r
    r = s.composite(1, 900, "W")["chargingSchedule"]["chargingSchedulePeriod"]
    assert r == [{"startPeriod": 0, "limit": 3680.0}, {"startPeriod": 200, "limit": 2300.0}]
    r = s.composite(0, 900)["chargingSchedule"]["chargingSchedulePeriod"]
    assert r == [{"startPeriod": 0, "limit": 16.0}, {"startPeriod": 200, "limit": 10.0}]
    assert s.composite(2, 60) == {"status": "Rejected"}
    assert s.composite(1, -1) == {"status": "Rejected"}
    ch.config.set("ChargingScheduleAllowedChargingRateUnit", "Power")
    assert s.composite(1, 60, "A") == {"status": "Rejected"}
    assert s.composite(1, 60)["chargingSchedule"]["chargingRateUnit"] == "W"


def test_handlers_through_the_dispatcher():
    ch = FakeCharger()
    d = Dispatcher()
    d.register(smc.HANDLERS)
    text, _ = d.handle(ch, "1", "SetChargingProfile",
                       {"connectorId": 0, "csChargingProfiles": profile(limits=(13.3,))})
    assert json.loads(text) == [3, "1", {"status": "Accepted"}]
    text, _ = d.handle(ch, "2", "GetCompositeSchedule",
                       {"connectorId": 1, "duration": 60, "chargingRateUnit": "A"})
    assert '"limit":13.3' in text, text
    text, _ = d.handle(ch, "3", "ClearChargingProfile", {"id": 1})
    assert json.loads(text) == [3, "3", {"status": "Accepted"}]
    text, _ = d.handle(ch, "4", "ClearChargingProfile", {})
    assert json.loads(text) == [3, "4", {"status": "Unknown"}]
    text, _ = d.handle(ch, "5", "SetChargingProfile",
                       {"connectorId": 0, "csChargingProfiles": profile(limits=(13.33,))})
    assert json.loads(text)[2] == "PropertyConstraintViolation", text


def test_keys_are_declared_read_only():
    ch = FakeCharger()
    c = ch.config
    for k, v in (("ChargeProfileMaxStackLevel", "8"),
                 ("ChargingScheduleAllowedChargingRateUnit", "Current,Power"),
                 ("ChargingScheduleMaxPeriods", "24"), ("MaxChargingProfilesInstalled", "10")):
        assert c.text(k) == v and c.key(k).access == "R"
        assert c.change(k, v) == "Rejected"
    for k, bad in (("MaxChargingProfilesInstalled", 17), ("ChargingScheduleMaxPeriods", 0),
                   ("ChargingScheduleAllowedChargingRateUnit", "Amps"),
                   ("ChargingScheduleAllowedChargingRateUnit", "")):
        try:
            c.set(k, bad)
        except ValueError:
            continue
        raise AssertionError((k, bad))


def test_cached_limit_does_not_allocate():
    import micropython

    ch = FakeCharger(n=2)
    ch.smart.set_profile(0, profile(limits=(16, 10), step=3600))
    ch.start_tx(1)
    c = ch.connectors[0]
    now = ch.clock.now_ms()
    assert ch.smart.limit_a(c, now) == 16.0
    assert ch.smart.limit_a(ch.connectors[1], now) == 16.0
    now += 1000  # same period: both answers come from the cache
    micropython.heap_lock()
    try:
        a = ch.smart.limit_a(c, now)
        b = ch.smart.limit_a(ch.connectors[1], now)
    finally:
        micropython.heap_unlock()
    assert a == 16.0 and b == 16.0
