"""Control pilot hardware: the 1 kHz PWM output and ADC sampling of its high and low phases.

`Pilot(pwm, adc, offset_mv, v_per_mv, pwm_bits=16)` sets the duty through
`machine.PWM.duty_u16` with the rounding of `evse.duty.duty_u16` (6 A never lands below 10 %),
rounded up once more to the LEDC timer's resolution: the ESP32 port truncates duty_u16 to it
(16 bits at 1 kHz on the ESP32, 14 on the S3, where 6554 would become 1638/16384 = 9.998 %).
Duty 1.0 gives 65535, which the port clamps to one count short of 100 %: a 15 ns (ESP32) or
61 ns (S3) dip per period that the pilot op-amp cannot follow. It measures the pilot as volts:
`pilot_v = (adc_mv - offset_mv) * v_per_mv` (the board's divider/offset calibration).

How the phases are sampled (evse.md section 4). SmartEVSE reads the ADC from a timer ISR 50 us
after each rising edge; MicroPython on the ESP32 cannot: pin callbacks are scheduled (run
between bytecodes, jitter up to milliseconds; ports/esp32/machine_pin.c), the LEDC timer gives
no edge interrupt, and the ADC driver must not be called from a real interrupt. So we take a burst of back-to-back ADC reads across about two PWM periods
(`_BURST` samples max, `_WINDOW_US`) and synchronise in software: the samples are split into
high and low runs at the midpoint between min and max; only runs bounded by two edges are used;
in a high run we take the sample `settle_us` after the rising edge, in a low run the last sample
at least `guard_us` before the next rising edge (the end of the period); the per-period values
are averaged. Limits: a phase shorter than about three sample intervals (a `read_uv()` takes
tens of microseconds: measure on the target) may be missed - 10 % duty (100 us high) should
work, 96 % (40 us low, only at 80 A) may not and then reads as "no swing" (state E, relay
open: fails safe). Interrupts and Wi-Fi can stretch the sample spacing; the run split does not
depend on it, only the settle/guard distances do (the interval is estimated from the burst
time). A burst blocks the loop for about 2 ms. For exact timing use a C module that reads the
ADC from an LEDC/MCPWM-synchronised interrupt. With the PWM off (duty 1.0 or 0.0) a short
average is returned as both levels.
"""

from array import array
from micropython import const
import time

from evse.duty import duty_u16

_BURST = const(128)  # bound of the sample buffer (2 bytes per sample)
_WINDOW_US = const(2200)  # a little over two 1 kHz periods
_STEADY = const(8)  # reads averaged when the PWM is off
_SETTLE_US = const(50)  # SmartEVSE samples the high phase 50 us after the rising edge
_GUARD_US = const(20)  # keep the low sample this far ahead of the next rising edge
_MIN_SWING_V = 2.0  # evse.pilot.MIN_SWING_V: less than this is no visible PWM


def split_levels(buf, n, min_swing, interval_us, settle_us=_SETTLE_US, guard_us=_GUARD_US):
    """(high, low) from `n` burst samples in `buf` taken every `interval_us` (pure function).

    Returns (mean, mean) when max - min < min_swing (no PWM visible); falls back to (max, min)
    if the burst holds no complete high or low run. Allocates nothing but the result.
    """
    if n <= 0:
        return None, None
    lo = hi = buf[0]
    total = 0
    for i in range(n):
        v = buf[i]
        total += v
        if v < lo:
            lo = v
        elif v > hi:
            hi = v
    if hi - lo < min_swing:
        m = total / n
        return m, m
    mid = (hi + lo) / 2
    iv = interval_us if interval_us > 0 else 1
    settle = int((settle_us + iv - 1) // iv)
    guard = int((guard_us + iv - 1) // iv)
    hsum = lsum = 0
    hcnt = lcnt = 0
    i = 0
    high = buf[0] >= mid
    while i < n and (buf[i] >= mid) == high:  # the first run started before the burst
        i += 1
    while i < n:
        start = i
        high = buf[i] >= mid
        while i < n and (buf[i] >= mid) == high:
            i += 1
        if i >= n:
            break  # the last run is cut by the end of the burst
        last = i - 1
        if high:
            k = start + settle  # shortly after the rising edge, inside the phase
            if k > last - guard:
                k = last - guard
        else:
            k = last - guard  # near the end of the period
        if k < start:
            k = start
        if high:
            hsum += buf[k]
            hcnt += 1
        else:
            lsum += buf[k]
            lcnt += 1
    if hcnt == 0 or lcnt == 0:
        return hi, lo
    return hsum / hcnt, lsum / lcnt


class Pilot:
    """One connector's pilot: PWM generator plus its measuring ADC (`read_uv()`)."""

    def __init__(self, pwm, adc, offset_mv, v_per_mv, ticks_us=None, ticks_diff=None,
                 pwm_bits=16):
        self.pwm = pwm
        self._step = 1 << (16 - pwm_bits) if 0 < pwm_bits < 16 else 1
        self.adc = adc
        self.offset_mv = offset_mv
        self.v_per_mv = v_per_mv
        self.duty = 1.0
        self.interval_us = 0
        self._ticks_us = ticks_us or time.ticks_us
        self._ticks_diff = ticks_diff or time.ticks_diff
        self._buf = array("h", bytes(2 * _BURST))  # mV samples, preallocated
        self._swing_mv = _MIN_SWING_V / v_per_mv
        pwm.duty_u16(65535)

    def set_duty(self, duty):
        """Duty fraction; 1.0 = steady +12 V, 0.0 = steady -12 V (state F)."""
        v = duty_u16(duty)
        step = self._step
        if step > 1 and v < 65535:
            v = (v + step - 1) // step * step  # the port truncates to its resolution
            if v > 65535:
                v = 65535
        self.pwm.duty_u16(v)
        self.duty = duty

    def volts(self, mv):
        """ADC millivolts -> pilot volts through the board's calibration."""
        return (mv - self.offset_mv) * self.v_per_mv

    def _sample(self, limit):
        buf = self._buf
        read = self.adc.read_uv
        tu = self._ticks_us
        t0 = tu()
        n = 0
        elapsed = 0
        while n < limit:
            buf[n] = read() // 1000
            n += 1
            if n & 7 == 0:
                elapsed = self._ticks_diff(tu(), t0)
                if limit == _BURST and elapsed >= _WINDOW_US:
                    break
        elapsed = self._ticks_diff(tu(), t0)
        self.interval_us = elapsed / n
        return n

    def levels(self):
        """(high_v, low_v) of the pilot; low == high while the PWM is off."""
        pwm_on = 0.0 < self.duty < 1.0
        n = self._sample(_BURST if pwm_on else _STEADY)
        if pwm_on:
            high, low = split_levels(self._buf, n, self._swing_mv, self.interval_us)
        else:
            high, low = split_levels(self._buf, n, 1 << 30, self.interval_us)
        return self.volts(high), self.volts(low)
