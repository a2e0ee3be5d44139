"""Fake `machine`, `network` and `neopixel` for driver and board tests in the Unix port.

`install()` puts fake modules into sys.modules (before `import boards.esp32_common`); `HW` holds
the state of the fake chip: GPIO levels and IRQ handlers by pin number, PWM duties, ADC sources,
bus devices, the WDT, Wi-Fi and a fake time (`HW.time`) whose sleeps advance it. `HW.reset()`
gives every test a fresh chip. Device fakes (MFRC522, PN532, Modbus slave) are in
fakes_devices.py.
"""

import sys


class ResetCalled(Exception):
    """machine.reset() was called (it never returns on the chip)."""


class FakeTime:
    """ticks_ms / ticks_us / ticks_diff / sleep_ms like the `time` module, moved by hand."""

    def __init__(self):
        self.us = 1000000
        self.on_advance = []  # callables run after every advance (device models)

    def ticks_us(self):
        return self.us

    def ticks_ms(self):
        return self.us // 1000

    def ticks_diff(self, a, b):
        return a - b

    def advance_us(self, us):
        self.us += us
        for fn in self.on_advance:
            fn()

    def sleep_ms(self, ms):
        self.advance_us(ms * 1000)

    def sleep_us(self, us):
        self.advance_us(us)

    # Clock-compatible helpers for tests
    def advance(self, ms):
        self.advance_us(ms * 1000)


class _GPIO:
    def __init__(self, num):
        self.num = num
        self.level = 0
        self.mode = None
        self.pull = None
        self.handler = None
        self.trigger = 0
        self.hard = None
        self.writes = []  # levels written by the firmware, in order
        self.watchers = []  # callables(level) on every write (chip-select lines, test pins)


class FakePin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, num, mode=-1, pull=-1, value=None):
        self.num = num
        g = HW.gpio(num)
        self._g = g
        if mode != -1:
            g.mode = mode
        if pull != -1:
            g.pull = pull
        if value is not None:
            self.value(value)

    def value(self, v=None):
        g = self._g
        if v is None:
            return g.level
        v = 1 if v else 0
        g.writes.append(v)
        g.level = v
        for w in g.watchers:
            w(v)
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, **kw):
        # Like ports/esp32/machine_pin.c: no `hard` argument unless HW.hard_irq says so (the
        # ESP32 schedules every pin handler with mp_sched_schedule).
        if "hard" in kw and not HW.hard_irq:
            raise TypeError("unexpected keyword argument 'hard'")
        g = self._g
        g.handler = handler
        g.trigger = trigger
        g.hard = kw.get("hard", False)

    def __repr__(self):
        return "Pin({})".format(self.num)


def drive(num, level):
    """The outside world sets input `num` to `level`; fires its IRQ on a matching edge."""
    g = HW.gpio(num)
    old = g.level
    g.level = 1 if level else 0
    if g.handler is None or old == g.level:
        return
    edge = FakePin.IRQ_RISING if g.level else FakePin.IRQ_FALLING
    if g.trigger & edge:
        g.handler(FakePin(num))


class FakePWM:
    def __init__(self, pin, freq=None, duty_u16=None, **kw):
        self.pin = pin
        self.freq_hz = freq
        self._duty = duty_u16
        self.history = []
        HW.pwms[pin.num] = self
        if duty_u16 is not None:
            self.history.append(duty_u16)

    def duty_u16(self, v=None):
        if v is None:
            return self._duty
        if not 0 <= v <= 65535:
            raise ValueError("duty_u16 out of range")
        self._duty = v
        self.history.append(v)

    def freq(self, f=None):
        if f is None:
            return self.freq_hz
        self.freq_hz = f

    def deinit(self):
        self._duty = None


class FakeADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, pin, **kw):
        self.pin = pin
        self.attn = None
        self.reads = 0

    def atten(self, a):
        self.attn = a

    def read_uv(self):
        """Microvolts from HW.adc[pin]: a number (mV) or a callable returning mV."""
        self.reads += 1
        src = HW.adc.get(self.pin.num, 0)
        mv = src() if callable(src) else src
        return int(mv * 1000)

    def read_u16(self):
        return min(65535, self.read_uv() * 65535 // 3300000)


class FakeSPI:
    def __init__(self, bus_id, **kw):
        self.id = bus_id
        self.kw = kw

    def _dev(self):
        return HW.spi[self.id]

    def write(self, buf):
        self._dev().transfer(bytes(buf), None)

    def write_readinto(self, wbuf, rbuf):
        self._dev().transfer(bytes(wbuf), rbuf)


class FakeI2C:
    def __init__(self, bus_id, **kw):
        self.id = bus_id
        self.kw = kw

    def _dev(self, addr):
        d = HW.i2c.get(addr)
        if d is None:
            raise OSError(19)  # ENODEV: nobody acknowledged the address
        return d

    def writeto(self, addr, buf):
        self._dev(addr).write(bytes(buf))

    def readfrom_into(self, addr, buf):
        self._dev(addr).read_into(buf)


class FakeUART:
    def __init__(self, uart_id, **kw):
        self.id = uart_id
        self.kw = kw
        self.rx = bytearray()
        self.tx_log = []
        self.device = None  # object with on_write(uart, data)
        HW.uarts[uart_id] = self

    def write(self, data):
        data = bytes(data)
        self.tx_log.append(data)
        if self.device is not None:
            self.device.on_write(self, data)
        return len(data)

    def flush(self):
        pass

    def any(self):
        if self.device is not None and hasattr(self.device, "on_poll"):
            self.device.on_poll(self)
        return len(self.rx)

    def read(self, n=None):
        if not self.rx:
            return None
        n = len(self.rx) if n is None else min(n, len(self.rx))
        out = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return out

    def readinto(self, buf, n=None):
        limit = len(buf) if n is None else min(n, len(buf))
        chunk = getattr(self.device, "chunk", None) or limit
        k = min(limit, len(self.rx), chunk)
        for i in range(k):
            buf[i] = self.rx[i]
        self.rx = self.rx[k:]
        return k


class FakeWDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        HW.wdt = self

    def feed(self):
        self.feeds += 1


class FakeTimer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, tid=0, **kw):
        self.id = tid
        self.kw = kw

    def init(self, **kw):
        self.kw = kw

    def deinit(self):
        pass


class _Module:
    def __init__(self, name, **attrs):
        self.__name__ = name
        for k, v in attrs.items():
            setattr(self, k, v)


def _unique_id():
    return b"\x24\x0a\xc4\x12\x34\x56"


def _reset():
    HW.resets += 1
    raise ResetCalled()


class FakeNeoPixel:
    def __init__(self, pin, n, **kw):
        self.pin = pin
        self.n = n
        self.pixels = [(0, 0, 0)] * n
        self.writes = []
        HW.neopixel = self

    def __len__(self):
        return self.n

    def __setitem__(self, i, rgb):
        self.pixels[i] = tuple(rgb)

    def __getitem__(self, i):
        return self.pixels[i]

    def write(self):
        self.writes.append(tuple(self.pixels))


class FakeWLAN:
    def __init__(self, iface):
        self.iface = iface
        self.is_active = False
        self.connected = False
        self.connects = []

    def active(self, v=None):
        if v is None:
            return self.is_active
        self.is_active = bool(v)

    def connect(self, ssid, password):
        self.connects.append((ssid, password))

    def disconnect(self):
        self.connected = False

    def isconnected(self):
        return self.connected


def _wlan(iface):
    if HW.wlan is None:
        HW.wlan = FakeWLAN(iface)
    return HW.wlan


def _hostname(name=None):
    if name is not None:
        HW.hostname = name
    return HW.hostname


class _HW:
    def reset(self):
        self.gpios = {}
        self.pwms = {}
        self.adc = {}
        self.spi = {}
        self.i2c = {}
        self.uarts = {}
        self.wdt = None
        self.wlan = None
        self.hostname = None
        self.neopixel = None
        self.resets = 0
        self.hard_irq = False  # the ESP32 port has no hard pin IRQs
        self.time = FakeTime()

    def gpio(self, num):
        g = self.gpios.get(num)
        if g is None:
            g = _GPIO(num)
            self.gpios[num] = g
        return g

    def level(self, num):
        return self.gpio(num).level


HW = _HW()
HW.reset()

machine = _Module(
    "machine", Pin=FakePin, PWM=FakePWM, ADC=FakeADC, SPI=FakeSPI, I2C=FakeI2C, UART=FakeUART,
    WDT=FakeWDT, Timer=FakeTimer, unique_id=_unique_id, reset=_reset,
)
network = _Module("network", STA_IF=0, AP_IF=1, WLAN=_wlan, hostname=_hostname)
neopixel = _Module("neopixel", NeoPixel=FakeNeoPixel)


def install():
    """Replace machine, network and neopixel for every later import."""
    sys.modules["machine"] = machine
    sys.modules["network"] = network
    sys.modules["neopixel"] = neopixel


class PilotWave:
    """ADC source for a pilot input: a 1 kHz square wave from the fake PWM's duty.

    high_v / low_v are the pilot volts of the two phases (set by the test as the EV changes);
    each read advances the fake time by `read_us` (the ADC conversion time); for `slope_us`
    after each edge the level ramps linearly (op-amp slew). Returns ADC millivolts through the
    inverse of the board calibration (offset_mv, v_per_mv).
    """

    def __init__(self, pwm_pin, offset_mv, v_per_mv, high_v=12.0, low_v=-12.0, read_us=20,
                 slope_us=0):
        self.pwm_pin = pwm_pin
        self.offset_mv = offset_mv
        self.v_per_mv = v_per_mv
        self.high_v = high_v
        self.low_v = low_v
        self.read_us = read_us
        self.slope_us = slope_us

    def volts(self, t_us):
        pwm = HW.pwms.get(self.pwm_pin)
        duty = (pwm.duty_u16() if pwm is not None else 65535) / 65535
        if duty >= 1.0:
            return self.high_v
        if duty <= 0.0:
            return -12.0
        period = 1000
        ph = t_us % period
        on = duty * period
        hi, lo, s = self.high_v, self.low_v, self.slope_us
        if ph < on:
            if s and ph < s:
                return lo + (hi - lo) * ph / s
            return hi
        if s and ph - on < s:
            return hi + (lo - hi) * (ph - on) / s
        return lo

    def __call__(self):
        t = HW.time.us
        HW.time.us += self.read_us
        return self.volts(t) / self.v_per_mv + self.offset_mv
