"""Pilot duty cycle <-> advertised current, IEC 61851-1 annex A (SAE J1772).

The EVSE advertises a current with the PWM duty: 6 A <= I <= 51 A: D = I / 0.6 %; 51 A < I <= 80 A:
D = I / 2.5 + 64 %; below 6 A no PWM (duty 1.0 = steady +12 V). Currents are handled in integer
deci-amps (0.1 A resolution, rounded down so the EVSE never advertises more than its limit) and
duties in integer per-mille, so the results are exact and 6 A gives exactly 10.0 %. The EV side
(`current_for_duty`) follows the reading table of evse.md section 2.
"""

from micropython import const

MIN_AMPS = const(6)
MAX_AMPS = const(80)
# Deci-amp limits. 51 A < I < 52.5 A would give a duty below 85 %, which an EV reads with the
# first formula as less than 51 A ("gap in the norm", EVerest Charger.cpp): clamp it to 51 A.
_MIN_DA = const(60)
_MAX_DA = const(800)
_SPLIT_DA = const(510)
_GAP_END_DA = const(525)
NO_PWM = 1.0


_REAL = (int, float)  # built once: a tuple literal of names would allocate on every call


def _number(v):
    if v is True or v is False:
        return False
    return isinstance(v, _REAL) and v == v


def offer_deciamps(amps):
    """Current the EVSE advertises for a limit of `amps`, in 0.1 A steps (int); 0 = no PWM.

    Rounded down to 0.1 A; below 6 A -> 0; above 80 A -> 800; 51..52.5 A -> 510. Bad input
    (None, NaN, non-numbers, negative) -> 0, i.e. no charging.
    """
    if not _number(amps) or amps < MIN_AMPS:
        return 0
    if amps >= MAX_AMPS:
        return _MAX_DA
    if isinstance(amps, int):
        da = amps * 10  # no float boxing on MicroPython for the common whole-amp case
    else:
        # The epsilon keeps 6.3 A from becoming 62 through binary rounding (6.3 * 10 = 62.99..).
        da = int(amps * 10 + 0.0001)
    if _SPLIT_DA < da < _GAP_END_DA:
        return _SPLIT_DA
    return da


def duty_permille(da):
    """Duty in per-mille (int, 1000 = steady +12 V) for an advertised current in deci-amps.

    Rounded to the nearest 0.1 %: matches the duty table of evse.md section 2 and is never below
    100 (10.0 %) for 6 A (a Nissan Leaf stops below 10 %, SmartEVSE/smartevse#30).
    """
    if da < _MIN_DA:
        return 1000
    if da > _MAX_DA:
        da = _MAX_DA
    elif _SPLIT_DA < da < _GAP_END_DA:
        da = _SPLIT_DA
    if da <= _SPLIT_DA:
        # D% = I / 0.6 = da / 6; per-mille = da * 10 / 6, rounded half up.
        return (da * 10 + 3) // 6
    # D% = I / 2.5 + 64 = da / 25 + 64; per-mille = da * 2 / 5 + 640, rounded half up.
    return 640 + (da * 2 + 2) // 5


def duty_for_current(amps):
    """Duty fraction (0.1 .. 0.96) advertising `amps`; 1.0 (no PWM) below 6 A or for bad input."""
    return duty_permille(offer_deciamps(amps)) / 1000


def current_for_duty(duty):
    """Current (A) an EV reads from a duty fraction; 0.0 where the duty means no charging.

    < 3 %, 3-7 % (digital communication, not supported here), 7-8 % (error) and > 97 % (incl.
    100 % = x1 states) -> 0.0; 8-10 % -> 6 A; 10-85 % -> D * 0.6; 85-96 % -> (D - 64) * 2.5;
    96-97 % -> 80 A. The duty is rounded to 0.1 % first. Bad input -> 0.0.
    """
    if not _number(duty) or duty < 0 or duty > 1:
        return 0.0
    p = int(duty * 1000 + 0.5)
    if p < 80 or p > 970:
        return 0.0
    if p < 100:
        return 6.0
    if p <= 850:
        return p * 6 / 100
    if p <= 960:
        return (p - 640) / 4
    return 80.0


def duty_u16(duty):
    """Duty fraction -> 16-bit compare value for `machine.PWM.duty_u16()`, rounded up.

    Rounding up keeps 10 % at 6554/65535 = 10.0008 %, never 9.99 % (esp32-evse's 10-bit timer
    gives 102/1023 = 9.97 % for 6 A, evse.md section 2). Bad input -> 65535 (steady +12 V).
    """
    if not _number(duty) or duty >= 1 or duty < 0:
        return 65535
    v = duty * 65535
    n = int(v)
    return n + 1 if n < v else n
