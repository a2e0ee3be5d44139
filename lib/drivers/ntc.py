"""NTC thermistor on an ADC: temperature (beta equation) and the over-temperature flag.

Wiring: NTC from the ADC pin to GND, `series_ohms` from the pin to `vref_mv`, so
`R = series * V / (vref - V)` and `1/T = 1/T25 + ln(R/R25)/beta`. A reading outside
-40..150 C (open or shorted sensor) is a sensor failure: `celsius()` returns NaN and
`overtemp()` is True, failing towards no current (esp32-evse: sensor failure -> E).
`overtemp()` sets at `cutoff_c` and clears at `cutoff_c - hysteresis_c` (evse.limiter CUTOFF_C
71 C and DERATE_HYSTERESIS_C 3 C).
"""

import math
from micropython import const

_READS = const(4)
_K0 = 273.15
_NAN = float("nan")


def celsius_from_mv(mv, series_ohms, vref_mv, r25_ohms, beta):
    """Temperature in C for an ADC voltage; NaN when the sensor looks open or shorted."""
    if mv <= 0 or mv >= vref_mv:
        return _NAN
    r = series_ohms * mv / (vref_mv - mv)
    t = 1 / (1 / (25 + _K0) + math.log(r / r25_ohms) / beta) - _K0
    if t < -40 or t > 150:
        return _NAN
    return t


class NTC:
    def __init__(self, adc, series_ohms=10000, vref_mv=3300, r25_ohms=10000, beta=3950,
                 cutoff_c=71, hysteresis_c=3):
        self.adc = adc
        self.series_ohms = series_ohms
        self.vref_mv = vref_mv
        self.r25_ohms = r25_ohms
        self.beta = beta
        self.cutoff_c = cutoff_c
        self.hysteresis_c = hysteresis_c
        self._hot = False

    def celsius(self):
        total = 0
        for _ in range(_READS):
            total += self.adc.read_uv()
        mv = total / (1000 * _READS)
        return celsius_from_mv(mv, self.series_ohms, self.vref_mv, self.r25_ohms, self.beta)

    def overtemp(self):
        """True above the cut-off (with hysteresis) or when the sensor has failed."""
        t = self.celsius()
        if t != t:
            self._hot = True
            return True
        if t >= self.cutoff_c:
            self._hot = True
        elif t <= self.cutoff_c - self.hysteresis_c:
            self._hot = False
        return self._hot
