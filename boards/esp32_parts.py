"""Build one ESP32 board's drivers from its wiring dict (used by boards.esp32_common.Board).

Each function takes one section of the wiring (see boards/esp32_devkitc.py for the keys) and
returns the driver(s), or None when the section is absent / "none". Driver modules are imported
inside the function that needs them, so a board pays only for the parts it has. `t` is the time
source (the `time` module on the chip, a fake in tests): ticks_ms, ticks_us, ticks_diff,
sleep_ms. ADCs use 11 dB attenuation (about 0.15-2.45 V linear on the ESP32, to 3.1 V on S3).
"""

import machine

from drivers.relay import Relay, open_level


def adc(pin):
    a = machine.ADC(machine.Pin(pin))
    a.atten(machine.ADC.ATTN_11DB)
    return a


def input_pin(pin, pull=None):
    """An input; GPIO 34-39 of the ESP32 have no internal pulls (use pull=None + a resistor)."""
    Pin = machine.Pin
    if pull == "up":
        return Pin(pin, Pin.IN, Pin.PULL_UP)
    if pull == "down":
        return Pin(pin, Pin.IN, Pin.PULL_DOWN)
    return Pin(pin, Pin.IN)


def relay(cw):
    """The connector's relay, OPEN from the first write (value= sets the output latch before
    the output driver is enabled, so an active-low relay never sees a closing glitch)."""
    Pin = machine.Pin
    high = cw.get("relay_active_high", True)
    return Relay(Pin(cw["relay"], Pin.OUT, value=open_level(high)), high)


def pilot(cw, cal, bits, t):
    from drivers.pilot import Pilot

    pwm = machine.PWM(machine.Pin(cw["pilot_pwm"]), freq=1000, duty_u16=65535)
    return Pilot(pwm, adc(cw["pilot_adc"]), cal[0], cal[1], t.ticks_us, t.ticks_diff, bits)


def proximity(cw, cal):
    if cw.get("pp_adc") is None:
        return None
    from drivers.pp import ProximityPilot

    return ProximityPilot(adc(cw["pp_adc"]), cal[0], cal[1])


def rcd(rw, relays, t):
    """The RCD monitor with its trip IRQ armed on `relays`, or None."""
    if not rw:
        return None
    from drivers.rcd import RCD

    Pin = machine.Pin
    test = Pin(rw["test"], Pin.OUT) if rw.get("test") is not None else None
    r = RCD(input_pin(rw["fault"], rw.get("pull")), rw.get("fault_active_high", True), test,
            rw.get("test_active_high", True), rw.get("trip_ms", 500), rw.get("clear_ms", 1000),
            t.ticks_ms, t.ticks_diff, t.sleep_ms)
    r.arm(relays)
    return r


def mains_sense(mw, t):
    """(ACSense with its IRQ armed, WeldCheck) or (None, None)."""
    if not mw:
        return None, None
    from drivers.acsense import ACSense, WeldCheck

    ac = ACSense(input_pin(mw["pin"], mw.get("pull")), mw.get("active_low", True),
                 ticks_ms=t.ticks_ms, ticks_diff=t.ticks_diff)
    ac.arm()
    return ac, WeldCheck()


def temp(tw):
    if not tw:
        return None
    from drivers.ntc import NTC

    return NTC(adc(tw["pin"]), tw.get("series_ohms", 10000), tw.get("vref_mv", 3300),
               tw.get("r25_ohms", 10000), tw.get("beta", 3950), tw.get("cutoff_c", 71))


def led(lw):
    """A StatusLED on a WS2812 or three PWM pins, dark; None without an LED."""
    if not lw or lw.get("type", "none") == "none":
        return None
    from drivers.led import StatusLED, NeoPixelOut, RGBPWMOut

    Pin = machine.Pin
    if lw["type"] == "ws2812":
        np = __import__("neopixel").NeoPixel(Pin(lw["pin"], Pin.OUT), lw.get("count", 1))
        out = NeoPixelOut(np, lw.get("brightness", 64))
    elif lw["type"] == "rgb_pwm":
        pwms = [machine.PWM(Pin(p), freq=1000, duty_u16=0) for p in lw["pins"]]
        out = RGBPWMOut(pwms, lw.get("active_low", False), lw.get("brightness", 255))
    else:
        raise ValueError("unknown LED type {}".format(lw["type"]))
    s = StatusLED(out)
    s.tick(0)
    return s


def reader(rw, t):
    """MFRC522 (SPI) or PN532 (I2C), not yet initialised; None without a reader."""
    if not rw or rw.get("type", "none") == "none":
        return None
    Pin = machine.Pin
    if rw["type"] == "mfrc522":
        from drivers.mfrc522 import MFRC522

        spi = machine.SPI(rw["spi"], baudrate=rw.get("baud", 1000000), polarity=0, phase=0,
                          sck=Pin(rw["sck"]), mosi=Pin(rw["mosi"]), miso=Pin(rw["miso"]))
        rst = Pin(rw["rst"], Pin.OUT) if rw.get("rst") is not None else None
        return MFRC522(spi, Pin(rw["cs"], Pin.OUT), rst)
    if rw["type"] == "pn532":
        from drivers.pn532 import PN532

        i2c = machine.I2C(rw["i2c"], scl=Pin(rw["scl"]), sda=Pin(rw["sda"]),
                          freq=rw.get("freq", 100000))
        return PN532(i2c, ticks_ms=t.ticks_ms, ticks_diff=t.ticks_diff, sleep_ms=t.sleep_ms)
    raise ValueError("unknown reader type {}".format(rw["type"]))


def meters(mw, n, phases, voltage, t):
    """(one meter per connector, Modbus bus or None); ([], None) without meters."""
    kind = mw.get("type", "none") if mw else "none"
    if kind == "none":
        return [], None
    out = []
    if kind == "s0":
        from drivers.s0_meter import S0Meter

        for pin in mw["pins"][:n]:
            m = S0Meter(input_pin(pin, mw.get("pull", "up")), mw.get("pulses_per_kwh", 1000),
                        phases, voltage, ticks_ms=t.ticks_ms, ticks_diff=t.ticks_diff)
            m.arm()
            out.append(m)
        return out, None
    from drivers.modbus_meter import ModbusRTU, ModbusMeter, MODELS

    if kind not in MODELS:
        raise ValueError("unknown meter type {}".format(kind))
    if MODELS[kind]["phases"] < phases:  # the charger reads current_a[i] for every phase
        raise ValueError("{} measures fewer phases than the board has".format(kind))
    uart = machine.UART(mw["uart"], baudrate=mw.get("baud", 9600), tx=mw["tx"], rx=mw["rx"],
                        timeout=0)
    de = machine.Pin(mw["de"], machine.Pin.OUT, value=0) if mw.get("de") is not None else None
    bus = ModbusRTU(uart, de)
    for addr in mw["addrs"][:n]:
        out.append(ModbusMeter(bus, addr, kind))
    return out, bus


def button(bw):
    if not bw:
        return None
    from drivers.button import ServiceButton

    low = bw.get("active_low", True)
    return ServiceButton(input_pin(bw["pin"], bw.get("pull", "up" if low else None)), low)
