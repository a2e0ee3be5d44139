"""ESP32 board built from a wiring dict: the hardware interface the charger application calls.

`Board(wiring)` creates the drivers of `lib/drivers` from the pins in `wiring` (see
boards/esp32_devkitc.py for the keys) and implements the board interface of boards/sim.py:
pilot levels and PWM, relays, RCD self-test, faults, meter, cable rating, LED, service button,
Wi-Fi link, reset. Relays are built first and driven OPEN before anything else.

Safety paths that do not depend on the asyncio loop: the RCD trip input has a pin IRQ that
writes every relay pin to its OPEN level (drivers/rcd.py; on the ESP32 it is a scheduled IRQ:
it runs between two bytecodes, whatever task or loop state); `relay(cid, True)` refuses to close
while the RCD input is tripped; `machine.WDT` is started in `start()` and fed only by the
supervisor task, and only while the control loop is alive - the charger calls `faults()` once
per control step, so a `faults()` call within `_ALIVE_MS` is the heartbeat. A stalled loop (or a
dead supervisor) therefore resets the chip within `wdt_ms`; GPIOs float on reset, so the relay
driver's pull resistor opens the contactor, and boot.py's `failsafe()` drives it open again.
boards/esp32_parts.py builds the drivers, importing only the parts the wiring names. Bounded:
the tasks are a fixed set, kept in `_tasks` and cancelled by `close()`.
"""

import asyncio
import binascii
import time
from micropython import const

import machine

import log
from clock import Clock
from evse.limiter import pp_amps_from_ohms

_ALIVE_MS = const(2000)  # no faults() call for this long: the control loop is dead
_SUPERVISE_MS = const(1000)
_WDT_MS = const(8000)  # > RCD self-test (<= 1.5 s) and a blocking DNS lookup
_RFID_MS = const(250)
_SAME_CARD_MS = const(3000)  # the same UID again within this time is the same tap
_READER_RETRY_MS = const(10000)
_READER_CHECK = const(40)  # polls between MFRC522 health checks (10 s)
_LED_MS = const(50)
_BUTTON_MS = const(50)
_METER_MS = const(2000)  # SmartEVSE polls its meters every 2 s
_PP_CACHE_MS = const(200)
_TEMP_CACHE_MS = const(1000)


class _Conn:
    """The parts of one connector."""

    def __init__(self):
        self.relay = None
        self.pilot = None
        self.pp = None
        self.meter = None
        self.cable = None
        self.cable_ms = None


class Board:
    has_lock = False  # no lock actuator driver yet: unlock() answers False

    def __init__(self, wiring, settings=None, hwtime=None, network=None):
        """Build the board from `wiring`; `settings` may override max_current.

        hwtime: the time source for drivers and the clock (the `time` module; tests pass a
        fake); network: the `network` module (imported on first use when None).
        Raises ValueError for an unknown part type or a meter with too few phases.
        """
        from boards import esp32_parts as parts

        self.wiring = wiring
        settings = settings or {}
        t = hwtime or time
        self.clock = Clock(ticks_ms=t.ticks_ms, ticks_diff=t.ticks_diff)
        self.charger = None
        self._tasks = []
        self._wdt = None
        self._beat = None
        self._rfid_polls = 0
        self.reader_failed = False
        # Relays first: every relay output OPEN before any other part is set up.
        self._conns = []
        for cw in wiring["connectors"]:
            c = _Conn()
            c.relay = parts.relay(cw)
            self._conns.append(c)
        self.vendor = wiring.get("vendor", "OpenEVSE-MP")
        self.model = wiring["model"]
        self.serial = binascii.hexlify(machine.unique_id()).decode().upper()
        self.connectors = len(self._conns)
        self.phases = int(wiring.get("phases", 1))
        self.max_current = float(settings.get("max_current", wiring.get("max_current", 16)))
        self.voltage = float(wiring.get("voltage", 230.0))
        self.ventilation = bool(wiring.get("ventilation", False))
        self.tethered = bool(wiring.get("tethered", False))
        # The RCD IRQ next, so a trip opens the relays from here on.
        self.rcd = parts.rcd(wiring.get("rcd"), [c.relay for c in self._conns], t)
        self.rcd_selftest_supported = self.rcd is not None and self.rcd.selftest_supported
        pp_cal = wiring.get("pp_cal", (1000, 3300))
        for c, cw in zip(self._conns, wiring["connectors"]):
            c.pilot = parts.pilot(cw, wiring["pilot_cal"], wiring.get("pwm_bits", 16), t)
            c.pp = None if self.tethered else parts.proximity(cw, pp_cal)
        self.ac, self.weld = parts.mains_sense(wiring.get("mains_sense"), t)
        self.ntc = parts.temp(wiring.get("temp"))
        self._hot = False
        self._hot_ms = None
        self.status_led = parts.led(wiring.get("led"))
        self.reader = parts.reader(wiring.get("reader"), t)
        self._meters, self._bus = parts.meters(wiring.get("meter"), self.connectors, self.phases,
                                               self.voltage, t)
        for i, c in enumerate(self._conns):
            c.meter = self._meters[i] if i < len(self._meters) else None
        self.button = parts.button(wiring.get("button"))
        from drivers.wlan import WlanLink

        net = network or __import__("network")
        self.link = WlanLink(net, "evse-" + self.serial[-6:].lower())
        self._faults = {
            "rcd": False, "weld": False, "overtemp": False, "meter_lost": False,
            "pilot_short": False, "diode": False,
        }

    # ---- the interface the charger calls -------------------------------------------------------
    def _conn(self, cid):
        if not 1 <= cid <= len(self._conns):
            raise ValueError("no connector {}".format(cid))
        return self._conns[cid - 1]

    def pilot_levels(self, cid):
        """(high_v, low_v) of the pilot; low == high while the PWM is off."""
        return self._conn(cid).pilot.levels()

    def set_duty(self, cid, duty):
        self._conn(cid).pilot.set_duty(duty)

    def relay(self, cid, closed):
        """Drive the relay; a close is refused (relay stays open) while the RCD is tripped."""
        c = self._conn(cid)
        if closed and self.rcd is not None and self.rcd.tripped():
            log.warn("board", "relay %d: close refused, RCD tripped", cid)
            closed = False
        c.relay.set(closed)

    def rcd_selftest(self, cid):
        """Pulse the RCD test pin; True if it tripped and released in time (blocks <= 1.5 s).

        With a relay of another connector closed the shared RCD is not pulsed (its trip would
        open that connector under load): the last result stands, False if there is none.
        """
        if not self.rcd_selftest_supported:
            return False
        me = self._conn(cid)
        for c in self._conns:
            if c is not me and c.relay.closed:
                return bool(self.rcd.last_selftest)
        ok = self.rcd.selftest()
        log.info("board", "RCD self-test %s", "passed" if ok else "FAILED")
        return ok

    def faults(self):
        """Fault inputs (one dict, updated in place). Also the control loop's heartbeat."""
        now = self.clock.now_ms()
        self._beat = now
        f = self._faults
        if self.rcd is not None:
            f["rcd"] = self.rcd.take_latch() or self.rcd.tripped()
        if self.ac is not None:
            all_open = True
            for c in self._conns:
                if c.relay.closed:
                    all_open = False
            f["weld"] = self.weld.update(now, self.ac.present(), all_open)
        if self.ntc is not None:
            if self._hot_ms is None or now - self._hot_ms >= _TEMP_CACHE_MS:
                self._hot_ms = now
                self._hot = self.ntc.overtemp()
            f["overtemp"] = self._hot
        lost = False
        for m in self._meters:
            if m.lost:
                lost = True
        f["meter_lost"] = lost
        return f

    def temperature(self):
        """Board temperature in C (NaN: sensor failed), or None without a sensor."""
        return None if self.ntc is None else self.ntc.celsius()

    def meter(self, cid):
        """The connector's meter reading dict, or None (no meter, lost, not read yet)."""
        m = self._conn(cid).meter
        return None if m is None else m.read()

    def cable_amps(self, cid):
        """Cable rating from PP: 13/20/32/63 A, 0 = missing/invalid, None = tethered/no PP."""
        c = self._conn(cid)
        if c.pp is None:
            return None
        now = self.clock.now_ms()
        if c.cable_ms is None or now - c.cable_ms >= _PP_CACHE_MS:
            c.cable_ms = now
            c.cable = pp_amps_from_ohms(c.pp.ohms()) or 0
        return c.cable

    def ems_limit(self):
        """No energy manager on these boards: None (the limiter ignores the source)."""
        return None

    def led(self, pattern):
        if self.status_led is not None and not self.status_led.show(pattern, self.clock.now_ms()):
            log.warn("board", "unknown LED pattern %s", pattern)

    def led_flash(self, kind):
        if self.status_led is not None:
            self.status_led.flash(kind, self.clock.now_ms())

    def provisioning_window(self):
        return self.button is not None and self.button.window_open(self.clock.now_ms())

    @property
    def factory_reset_requested(self):
        """True once the service button was held >= 10 s (the charger acts on it)."""
        return self.button is not None and self.button.factory_reset_requested

    def unlock(self, cid):
        self._conn(cid)
        return False

    def open_all(self):
        """Every relay open (no allocation: also safe from an IRQ or a crash path)."""
        for c in self._conns:
            c.relay.open()

    def reset(self):
        machine.reset()

    def reset_after_crash(self):
        """Relays open, pilots at steady +12 V, then a hard reset."""
        self.open_all()
        for c in self._conns:
            try:
                c.pilot.set_duty(1.0)
            except (OSError, ValueError):  # the PWM is gone: the reset stops it anyway
                pass
        machine.reset()

    def watchdog_feed_if_alive(self, charger=None):
        """Feed the WDT if the control loop called faults() within _ALIVE_MS. Returns alive."""
        beat = self._beat
        alive = beat is not None and self.clock.now_ms() - beat < _ALIVE_MS
        if alive and self._wdt is not None:
            self._wdt.feed()
        return alive

    # ---- tasks ---------------------------------------------------------------------------------
    async def start(self, charger):
        """Join Wi-Fi (provisioned SSID), start the reader/meter/LED/button/watchdog tasks."""
        self.charger = charger
        prov = charger.prov
        if prov.get("wifi_ssid"):
            self.link.connect_wifi(prov.get("wifi_ssid"), prov.get("wifi_password"))
        else:
            log.warn("wifi", "no Wi-Fi provisioned")
        tasks = [asyncio.create_task(self.link.keep())]
        if self.status_led is not None:
            tasks.append(asyncio.create_task(self._led_task()))
        if self.button is not None:
            tasks.append(asyncio.create_task(self._button_task()))
        if self.reader is not None:
            tasks.append(asyncio.create_task(self._rfid_task()))
        if self._bus is not None:
            tasks.append(asyncio.create_task(self._meter_task()))
        wdt_ms = self.wiring.get("wdt_ms", _WDT_MS)
        if wdt_ms:
            self._wdt = machine.WDT(timeout=wdt_ms)  # cannot be stopped once started
            self._beat = self.clock.now_ms()  # grace: the control loop starts with us
            tasks.append(asyncio.create_task(self._supervisor()))
        self._tasks = tasks

    async def close(self):
        """Cancel the board's tasks (the WDT keeps running: reset() follows)."""
        for t in self._tasks:
            t.cancel()
        self._tasks = []

    async def _supervisor(self):
        was_alive = True
        while True:
            alive = self.watchdog_feed_if_alive()
            if was_alive and not alive:
                log.error("board", "control loop stalled: watchdog not fed")
            was_alive = alive
            await asyncio.sleep_ms(_SUPERVISE_MS)

    async def _led_task(self):
        while True:
            self.status_led.tick(self.clock.now_ms())
            await asyncio.sleep_ms(_LED_MS)

    async def _button_task(self):
        while True:
            ev = self.button.update(self.clock.now_ms())
            if ev == "window":
                log.info("board", "service button: provisioning window open")
            elif ev == "factory_reset" and self.charger is not None:
                # Same path as the simulator's long press: mark the store, then restart; the
                # next boot wipes provisioning and state but not the device secret.
                from provision import storage

                log.warn("board", "service button: factory reset requested")
                try:
                    storage.request_factory_reset(self.charger.store)
                except OSError as e:
                    log.error("board", "factory reset not marked: %s", e)
                else:
                    self.charger.request_restart("factory reset")
            await asyncio.sleep_ms(_BUTTON_MS)

    async def _meter_task(self):
        while True:
            for m in self._meters:
                was = m.lost
                await m.poll()
                if m.lost != was:
                    log.warn("meter", "meter %d %s (%s)", m.addr, "lost" if m.lost else "back",
                             m.last_error)
            await asyncio.sleep_ms(_METER_MS)

    async def _rfid_task(self):
        last_uid = None
        last_ms = 0
        while True:
            if self.reader_failed or self._rfid_polls == 0:
                if not self._reader_init():
                    await asyncio.sleep_ms(_READER_RETRY_MS)
                    continue
            uid = self._rfid_poll()
            if uid:
                now = self.clock.now_ms()
                if uid != last_uid or now - last_ms > _SAME_CARD_MS:
                    self.led_flash("tap")
                    self.charger.tap(uid)
                last_uid, last_ms = uid, now
            await asyncio.sleep_ms(_RFID_MS)

    def _reader_init(self):
        try:
            v = self.reader.init()
        except Exception as e:  # any driver or bus error: report, retry later
            if not self.reader_failed:
                log.error("rfid", "reader init failed: %s", e)
            self.reader_failed = True
            return False
        log.info("rfid", "reader ready (%s)", v)
        self.reader_failed = False
        self._rfid_polls = 1
        return True

    def _rfid_poll(self):
        """One read; marks the reader failed on ReaderFailure or a failed health check."""
        self._rfid_polls += 1
        r = self.reader
        if self._rfid_polls % _READER_CHECK == 0 and hasattr(r, "alive") and not r.alive():
            log.error("rfid", "reader stopped answering")
            self.reader_failed = True
            return None
        try:
            return r.read_uid()
        except Exception as e:  # card errors are expected; ReaderFailure means re-init
            if type(e).__name__ == "ReaderFailure":
                log.error("rfid", "%s", e)
                self.reader_failed = True
            else:
                log.info("rfid", "read failed: %s", e)
            return None
