"""boards.esp32_devkitc / esp32_s3 / esp32_common with a fake `machine`: failsafe and relay
polarity, the board interface (same names as boards.sim), pilot, PP, RCD IRQ and self-test,
weld, over-temperature, meters, LED, button, watchdog supervision, start/close, crash reset."""
# mp-heapsize: 512K

import sys
import asyncio

import fakes_hw
from fakes_hw import HW, PilotWave, drive, ResetCalled

fakes_hw.install()  # before any board import: the board modules import `machine`

from fakes_devices import FakeMFRC522, FakeCard, FakeModbusSlave, FakePN532, FakeRCD  # noqa
from evse.duty import duty_for_current  # noqa

UID = b"\x04\xA1\xB2\xC3"


def _copy(wiring, **changes):
    w = dict(wiring)
    w.update(changes)
    return w


def _conn(wiring, **changes):
    c = dict(wiring["connectors"][0])
    c.update(changes)
    return (c,)


def _world(card=None, pp_mv=595, ev_high=12.0):
    """Idle inputs of the DevKitC wiring: RCD healthy, no AC behind the relay, button up."""
    HW.reset()
    chip = FakeMFRC522(5, card)
    HW.spi[2] = chip
    rcd = FakeRCD(27, 34, trip_ms=30, release_ms=10)
    drive(35, 1)  # opto off: no mains behind the relay
    drive(0, 1)  # BOOT button released
    HW.adc[39] = pp_mv  # 220 Ohm: 32 A cable
    HW.adc[36] = PilotWave(25, 1400, 0.012, ev_high, -12.0)
    return chip, rcd


def _board(wiring=None, **world):
    from boards import esp32_devkitc
    from boards.esp32_common import Board

    extra = _world(**world)
    b = Board(wiring or esp32_devkitc.WIRING, hwtime=HW.time, network=fakes_hw.network)
    return b, extra


class _Charger:
    def __init__(self, prov=None):
        self.prov = prov or {}
        self.taps = []

    def tap(self, uid):
        self.taps.append(bytes(uid))


# ---- failsafe and import ----------------------------------------------------------------------
def test_board_module_import_is_light_and_failsafe_opens_relays():
    HW.reset()
    from boards import esp32_devkitc, esp32_s3

    assert "boards.esp32_common" not in sys.modules  # failsafe pulls in nothing heavy
    assert not any(k.startswith("drivers") for k in sys.modules)
    esp32_devkitc.failsafe()
    g = HW.gpio(26)
    assert g.mode == fakes_hw.FakePin.OUT and g.writes == [0]
    esp32_s3.failsafe()
    assert HW.gpio(21).writes == [0]


def test_failsafe_active_low_relay_drives_high():
    from boards import esp32_devkitc

    HW.reset()
    saved = esp32_devkitc.WIRING
    esp32_devkitc.WIRING = _copy(saved, connectors=_conn(saved, relay_active_high=False))
    try:
        esp32_devkitc.failsafe()
    finally:
        esp32_devkitc.WIRING = saved
    assert HW.gpio(26).writes == [1]


# ---- relay polarity ---------------------------------------------------------------------------
def test_relay_polarity_active_high():
    b, _ = _board()
    assert 1 not in HW.gpio(26).writes  # open from the first write on
    b.relay(1, True)
    assert HW.level(26) == 1
    b.relay(1, False)
    assert HW.level(26) == 0


def test_relay_polarity_active_low_never_glitches_closed():
    from boards import esp32_devkitc

    w = esp32_devkitc.WIRING
    b, _ = _board(_copy(w, connectors=_conn(w, relay_active_high=False)))
    assert HW.gpio(26).writes[0] == 1 and 0 not in HW.gpio(26).writes
    b.relay(1, True)
    assert HW.level(26) == 0
    b.relay(1, False)
    assert HW.level(26) == 1


# ---- interface ------------------------------------------------------------------------------
def test_interface_matches_the_simulated_board():
    import boards.sim

    b, _ = _board()
    for name in ("vendor", "model", "serial", "connectors", "phases", "max_current", "voltage",
                 "ventilation", "has_lock", "rcd_selftest_supported", "link", "pilot_levels",
                 "set_duty", "relay", "rcd_selftest", "faults", "meter", "cable_amps",
                 "ems_limit", "led", "led_flash", "provisioning_window", "unlock", "reset",
                 "start", "close"):
        assert hasattr(boards.sim.SimBoard, name) or name in ("serial", "connectors", "phases",
                                                              "max_current", "link"), name
        assert hasattr(b, name), name
    for name in ("reset_after_crash", "watchdog_feed_if_alive", "factory_reset_requested"):
        assert hasattr(b, name), name
    from net.link import SocketLink

    assert isinstance(b.link, SocketLink)


def test_attributes_from_the_wiring():
    b, _ = _board()
    assert b.serial == "240AC4123456"
    assert b.model == "ESP32-DevKitC" and b.connectors == 1 and b.phases == 1
    assert b.max_current == 32.0 and b.voltage == 230.0
    assert b.rcd_selftest_supported and not b.has_lock and not b.ventilation
    assert b.ems_limit() is None
    assert not b.unlock(1)
    try:
        b.relay(2, True)
    except ValueError:
        return
    raise AssertionError("connector 2 accepted")


# ---- pilot and PP ------------------------------------------------------------------------------
def test_duty_and_pilot_levels():
    b, _ = _board(ev_high=9.0)
    pwm = HW.pwms[25]
    assert pwm.freq_hz == 1000 and pwm.duty_u16() == 65535
    high, low = b.pilot_levels(1)
    assert high == low and abs(high - 9.0) < 0.05
    b.set_duty(1, duty_for_current(6))
    assert pwm.duty_u16() == 6554
    high, low = b.pilot_levels(1)
    assert abs(high - 9.0) < 0.05 and abs(low + 12.0) < 0.05, (high, low)


def test_cable_amps_from_pp():
    b, _ = _board()
    assert b.cable_amps(1) == 32
    HW.adc[39] = 3300  # cable removed / no resistor
    assert b.cable_amps(1) == 32  # cached for 200 ms
    HW.time.advance(200)
    assert b.cable_amps(1) == 0
    HW.adc[39] = 3300 * 1500 / 2500
    HW.time.advance(200)
    assert b.cable_amps(1) == 13


def test_tethered_cable_has_no_pp_rating():
    from boards import esp32_devkitc

    b, _ = _board(_copy(esp32_devkitc.WIRING, tethered=True))
    assert b.cable_amps(1) is None


# ---- RCD -----------------------------------------------------------------------------------
def test_rcd_trip_opens_relay_from_the_irq_and_blocks_closing():
    b, _ = _board()
    b.relay(1, True)
    assert HW.level(26) == 1
    drive(34, 1)  # residual current
    assert HW.level(26) == 0  # opened by the IRQ, no loop involved
    assert b.faults()["rcd"]
    b.relay(1, True)
    assert HW.level(26) == 0  # refused while tripped
    drive(34, 0)
    assert not b.faults()["rcd"]
    b.relay(1, True)
    assert HW.level(26) == 1


def test_rcd_selftest_through_the_board():
    b, (_, rcd) = _board()
    assert b.rcd_selftest(1)
    assert not b.faults()["rcd"]
    rcd.trip_ms = None  # a dead RCD
    assert not b.rcd_selftest(1)


def test_board_without_rcd_test_pin():
    from boards import esp32_devkitc

    w = esp32_devkitc.WIRING
    rw = dict(w["rcd"])
    rw["test"] = None
    b, _ = _board(_copy(w, rcd=rw))
    assert not b.rcd_selftest_supported and not b.rcd_selftest(1)


# ---- weld and temperature ------------------------------------------------------------------
def test_weld_after_one_second_of_mains_with_relay_open():
    b, _ = _board()
    b.relay(1, True)
    drive(35, 0)  # AC behind the closed relay: normal
    HW.time.advance(2000)
    assert not b.faults()["weld"]
    b.relay(1, False)
    b.faults()
    HW.time.advance(1000)
    assert not b.faults()["weld"]  # settle + 1 s not yet over
    HW.time.advance(400)
    assert b.faults()["weld"]
    drive(35, 1)
    HW.time.advance(200)
    assert not b.faults()["weld"]


def test_s3_board_overtemp_from_ntc():
    from boards import esp32_s3
    from boards.esp32_common import Board

    HW.reset()
    HW.i2c[0x24] = FakePN532(UID)
    drive(7, 1)
    drive(0, 1)
    HW.adc[4] = 1650  # 25 C
    b = Board(esp32_s3.WIRING, hwtime=HW.time, network=fakes_hw.network)
    assert b.phases == 3 and b.max_current == 16.0
    assert not b.faults()["overtemp"] and abs(b.temperature() - 25.0) < 0.1
    HW.adc[4] = 300  # about 90 C
    assert not b.faults()["overtemp"]  # read once per second
    HW.time.advance(1000)
    assert b.faults()["overtemp"]


# ---- meters ---------------------------------------------------------------------------------
async def _fake_sleep(ms):
    HW.time.advance(ms)
    await asyncio.sleep_ms(0)


async def test_modbus_meter_reading_and_lost_fault():
    b, _ = _board()
    slave = FakeModbusSlave(1, {0x0000: 230.0, 0x0006: 10.0, 0x000C: 2300.0, 0x0048: 5.0})
    HW.uarts[2].device = slave
    b._bus._sleep_ms = _fake_sleep
    assert b.meter(1) is None  # not read yet
    m = b._meters[0]
    assert await m.poll()
    r = b.meter(1)
    assert r["power_w"] == 2300.0 and r["energy_wh"] == 5000.0 and r["voltage_v"] == [230.0]
    slave.mode = "silent"
    for _ in range(3):
        await m.poll()
    assert b.meter(1) is None and b.faults()["meter_lost"]


def test_s0_meter_wiring():
    from boards import esp32_devkitc

    w = _copy(esp32_devkitc.WIRING, meter={"type": "s0", "pins": (33,), "pulses_per_kwh": 500})
    b, _ = _board(w)
    drive(33, 1)  # pulled up
    drive(33, 0)  # one pulse
    drive(33, 1)
    assert b.meter(1)["energy_wh"] == 2.0
    assert not b.faults()["meter_lost"]


def test_single_phase_meter_on_a_three_phase_board_is_refused():
    from boards import esp32_devkitc

    try:
        _board(_copy(esp32_devkitc.WIRING, phases=3))
    except ValueError:
        return
    raise AssertionError("SDM120 accepted for three phases")


def test_no_meter():
    from boards import esp32_devkitc

    b, _ = _board(_copy(esp32_devkitc.WIRING, meter=None))
    assert b.meter(1) is None and not b.faults()["meter_lost"]


# ---- LED, button ------------------------------------------------------------------------------
def test_led_pattern_reaches_the_ws2812():
    from drivers.led import PATTERNS

    b, _ = _board()
    b.led("charging")
    b.status_led.tick(b.clock.now_ms())
    r, g, bl = PATTERNS["charging"][0]
    assert HW.neopixel.pixels[0] == (r * 64 // 255, g * 64 // 255, bl * 64 // 255)
    b.led_flash("accepted")
    b.status_led.tick(b.clock.now_ms())
    assert HW.neopixel.pixels[0] == (0, 64, 0)


def test_service_button_window_and_factory_reset():
    b, _ = _board()
    assert not b.provisioning_window()
    drive(0, 0)
    b.button.update(b.clock.now_ms())
    HW.time.advance(3500)
    b.button.update(b.clock.now_ms())
    drive(0, 1)
    b.button.update(b.clock.now_ms())
    assert b.provisioning_window()
    HW.time.advance(60000)
    assert not b.provisioning_window()
    assert not b.factory_reset_requested
    drive(0, 0)
    b.button.update(b.clock.now_ms())
    HW.time.advance(10000)
    b.button.update(b.clock.now_ms())
    assert b.factory_reset_requested


# ---- watchdog, start/close, reset --------------------------------------------------------------
async def test_start_joins_wifi_reads_a_card_and_close_cancels():
    b, (chip, _) = _board(card=FakeCard(UID))
    ch = _Charger({"wifi_ssid": "lab", "wifi_password": "secret"})
    await b.start(ch)
    assert HW.wlan.connects == [("lab", "secret")] and HW.wlan.is_active
    assert not b.link.isconnected()
    HW.wlan.connected = True
    assert b.link.isconnected()
    for _ in range(5):
        await asyncio.sleep_ms(0)
    assert ch.taps == [UID]
    assert HW.wdt is not None and HW.wdt.timeout == 8000
    tasks = list(b._tasks)
    assert len(tasks) == 6  # wifi, led, button, rfid, meter, supervisor
    await b.close()
    await asyncio.sleep_ms(0)
    assert all(t.done() for t in tasks)


async def test_no_wifi_credentials_no_connect():
    b, _ = _board()
    await b.start(_Charger())
    assert HW.wlan is None or HW.wlan.connects == []
    await b.close()


async def test_watchdog_fed_only_while_the_control_loop_is_alive():
    b, _ = _board()
    await b.start(_Charger())
    wdt = HW.wdt
    await b.close()  # drive the supervisor's check by hand
    feeds = wdt.feeds
    b.faults()  # one control step
    assert b.watchdog_feed_if_alive() and wdt.feeds == feeds + 1
    HW.time.advance(1999)
    assert b.watchdog_feed_if_alive()
    HW.time.advance(1)
    assert not b.watchdog_feed_if_alive()
    assert wdt.feeds == feeds + 2


def test_reader_failure_is_flagged():
    from boards import esp32_devkitc
    from boards.esp32_common import Board

    HW.reset()
    pn = FakePN532(UID)
    HW.i2c[0x24] = pn
    drive(35, 1)
    drive(0, 1)
    w = _copy(esp32_devkitc.WIRING, reader={"type": "pn532", "i2c": 0, "sda": 21, "scl": 22})
    b = Board(w, hwtime=HW.time, network=fakes_hw.network)
    assert b._reader_init()
    assert b._rfid_poll() == UID
    pn.mute = True
    for _ in range(3):
        assert b._rfid_poll() is None
    assert b.reader_failed
    pn.mute = False
    assert b._reader_init() and not b.reader_failed


def test_reset_after_crash_opens_relays_then_resets():
    b, _ = _board()
    b.relay(1, True)
    b.set_duty(1, 0.5)
    try:
        b.reset_after_crash()
    except ResetCalled:
        pass
    else:
        raise AssertionError("no machine.reset()")
    assert HW.level(26) == 0 and HW.pwms[25].duty_u16() == 65535 and HW.resets == 1


# ---- the real charger on the ESP32 board ---------------------------------------------------------
def _state_dir():
    import os
    import random

    # MicroPython's os has no getpid: a random name keeps concurrent runs apart.
    root = "/tmp/esp32-board-test-%d" % random.getrandbits(24)
    try:
        for e in list(os.ilistdir(root)):
            os.remove(root + "/" + e[0])
        os.rmdir(root)
    except OSError:
        pass
    return root


class _Client:
    """Stands in for the OCPP client: this test looks at the hardware only."""

    last_error = None
    online = False

    def queue_tx(self, *args):
        pass

    def send(self, *args):
        pass


def test_the_charger_drives_the_esp32_board():
    from charger.app import Charger
    from store import Store

    b, (chip, rcd) = _board(ev_high=12.0)
    wave = HW.adc[36]
    ch = Charger(b, Store(_state_dir()), clock=b.clock)
    ch.client = _Client()
    ch.config.set_text("AuthEnabled", "false")  # free vend: no CSMS needed

    def steps(n):
        for _ in range(n):
            ch.control_step()
            HW.time.advance(20)

    steps(5)
    assert HW.level(26) == 0 and HW.pwms[25].duty_u16() == 65535  # A: +12 V, open
    wave.high_v = 9.0  # EV plugged in: B
    steps(20)
    assert HW.pwms[25].duty_u16() == 34931  # 32 A cable and board: 53.3 %
    assert HW.level(26) == 0
    wave.high_v = 6.0  # EV asks for power: C
    steps(200)
    assert rcd.trip_ms and b.rcd.last_selftest is True  # self-test ran before closing
    assert HW.level(26) == 1
    wave.high_v = 9.0  # C -> B: open within 100 ms
    steps(5)
    assert HW.level(26) == 0
    wave.high_v = 6.0
    steps(200)
    assert HW.level(26) == 1
    drive(34, 1)  # residual current: the IRQ opens, the charger latches the fault
    assert HW.level(26) == 0
    steps(5)
    assert ch.connectors[0].fault == "rcd" and HW.level(26) == 0
