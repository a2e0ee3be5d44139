"""Proximity pilot (PP) input: ADC millivolts -> the PP-PE resistance of the plugged cable.

The PP line is pulled up to `vref_mv` through `pullup_ohms` and the cable's coding resistor pulls
it down to PE, so `R = pullup * V / (vref - V)` (evse.md section 5; 1 kOhm to 3.3 V puts 100, 220,
680 and 1500 Ohm at about 300, 595, 1340 and 1980 mV). An open PP (no resistor) reads near vref
and gives None; the caller maps None / out-of-band values to "invalid" with
`evse.limiter.pp_amps_from_ohms`. `_READS` samples are averaged; nothing is allocated per read.
"""

from micropython import const

_READS = const(4)
_OPEN_MARGIN_MV = const(60)  # closer than this to vref: no resistor (or the ADC is saturated)


def ohms_from_mv(mv, pullup_ohms, vref_mv):
    """PP-PE resistance for a PP voltage; None when the line is open (no coding resistor)."""
    if mv < 0:
        mv = 0
    if mv >= vref_mv - _OPEN_MARGIN_MV:
        return None
    return pullup_ohms * mv / (vref_mv - mv)


class ProximityPilot:
    def __init__(self, adc, pullup_ohms=1000, vref_mv=3300):
        self.adc = adc
        self.pullup_ohms = pullup_ohms
        self.vref_mv = vref_mv

    def millivolts(self):
        total = 0
        for _ in range(_READS):
            total += self.adc.read_uv()
        return total // (1000 * _READS)

    def ohms(self):
        """Measured PP-PE resistance (float), or None for an open PP line."""
        return ohms_from_mv(self.millivolts(), self.pullup_ohms, self.vref_mv)
