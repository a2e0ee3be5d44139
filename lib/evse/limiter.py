"""Effective current limit of one connector: the minimum of all limit sources, with its reason.

Sources (evse.md section 9): board maximum, configured maximum (MaxCurrent), cable rating from
the proximity pilot (IEC 61851-1 annex B; evse.md section 5), OCPP smart charging, the local
energy manager (stale after a configurable time -> a configured safe current), and thermal
derating (evse.md section 6). The result may be below 6 A: ConnectorControl then pauses (no PWM).
A missing or out-of-band PP resistor and the temperature cut-off are faults (`pp_invalid`,
`overtemp` attributes) that the app copies into its FaultLatch. Fixed-size state, no allocation
except the (amps, reason) tuple `effective()` returns.
"""

from micropython import const

# Source names accepted by Limiter.set(), in tie-break order (the first binding one is reported).
SOURCES = ("board", "config", "cable", "ocpp", "ems")
_EMS = const(4)
# Extra reasons effective() may report.
REASON_EMS_STALE = "ems_stale"
REASON_THERMAL = "thermal"

# Energy manager data older than this is stale (OpenEVSE pauses after 120 s; SmartEVSE's 11 s is
# reported as too strict with slow P1/MQTT feeds).
EMS_STALE_MS = const(120000)

# Thermal derating (OpenEVSE open_evse.h): >= 65 C half, >= 68 C quarter, both at least 6 A;
# >= 71 C cut-off (fault). Each step is left 3 C below its threshold (OpenEVSE restores at 62 C).
DERATE_HALF_C = const(65)
DERATE_QUARTER_C = const(68)
CUTOFF_C = const(71)
DERATE_HYSTERESIS_C = const(3)
_FACTORS = (1.0, 0.5, 0.25, 0.0)
_ENTER_C = (None, DERATE_HALF_C, DERATE_QUARTER_C, CUTOFF_C)
_MIN_CHARGE_A = 6.0

# Proximity resistor bands (ohms, EVerest YetiSimulator read_pp_ampacity), lower edge inclusive.
# A value on a shared edge takes the lower rating (the safe side).
_PP_BANDS = ((80, 140, 63), (140, 308, 32), (308, 936, 20), (936, 2460, 13))


_REAL = (int, float)  # built once: a tuple literal of names would allocate on every call


def _number(v):
    if v is True or v is False:
        return False
    return isinstance(v, _REAL) and v == v


def pp_amps_from_ohms(ohms):
    """Cable rating (A: 13, 20, 32 or 63) for a PP-PE resistance; None = missing/short/invalid."""
    if not _number(ohms):
        return None
    for lo, hi, amps in _PP_BANDS:
        if lo <= ohms < hi:
            return amps
    if ohms == 2460:
        return 13
    return None


def derate_for_temperature(temp_c, prev=1.0):
    """Thermal factor (1.0, 0.5, 0.25, or 0.0 = cut-off) for `temp_c`.

    `prev` is the factor returned last time: a step is held until the temperature falls
    DERATE_HYSTERESIS_C below its threshold. None (no sensor fitted) -> 1.0. NaN or non-numbers
    (sensor failed) -> 0.0: fail towards no current.
    """
    if temp_c is None:
        return 1.0
    if not _number(temp_c):
        return 0.0
    level = 0
    for i in (3, 2, 1):
        if temp_c >= _ENTER_C[i]:
            level = i
            break
    held = _FACTORS.index(prev) if prev in _FACTORS else 0
    while held > level and temp_c <= _ENTER_C[held] - DERATE_HYSTERESIS_C:
        held -= 1
    return _FACTORS[max(level, held)]


def watts_to_amps(watts, phases=3, volts=230.0):
    """Per-phase current for a power: watts / (phases * volts). Raises ValueError on bad input."""
    _check_phases(phases, volts)
    if not _number(watts):
        raise ValueError("watts must be a number")
    return watts / (phases * volts)


def amps_to_watts(amps, phases=3, volts=230.0):
    """Power for a per-phase current: amps * phases * volts. Raises ValueError on bad input."""
    _check_phases(phases, volts)
    if not _number(amps):
        raise ValueError("amps must be a number")
    return amps * phases * volts


def _check_phases(phases, volts):
    if phases not in (1, 2, 3) or phases is True:
        raise ValueError("phases must be 1, 2 or 3")
    if not _number(volts) or volts <= 0:
        raise ValueError("volts must be a positive number")


def _amps(v):
    # A limit source: None = no limit; anything that is not a non-negative number -> 0 (pause).
    if v is None:
        return None
    if not _number(v) or v < 0:
        return 0.0
    return v


class Limiter:
    """Minimum of the limit sources, with staleness, derating and a change hook.

    on_change(amps, reason, now_ms) is called from effective() whenever the effective limit or
    its reason changes, so the app can log every change with its reason.
    """

    def __init__(self, board_max_a, config_max_a=None, ems_stale_ms=EMS_STALE_MS, ems_safe_a=0.0,
                 on_change=None):
        if not _number(board_max_a) or board_max_a <= 0:
            raise ValueError("board_max_a must be a positive number")
        self._limits = [board_max_a, _amps(config_max_a), None, None, None]
        self._ems_ms = 0
        self.ems_stale_ms = ems_stale_ms
        self.ems_safe_a = _amps(ems_safe_a) or 0.0
        self.on_change = on_change
        self.derate = 1.0
        self.temp_c = None
        self.overtemp = False
        self.pp_invalid = False
        self.amps = None
        self.reason = None

    def set(self, source, amps, now_ms):
        """Set a source's limit in amps (None = no limit from it). Unknown source -> ValueError.

        Bad amps (NaN, negative, non-numbers) count as 0 A. 'board' cannot be None. Setting
        'cable' also clears a PP fault (tethered cable or a new valid reading).
        """
        if source not in SOURCES:
            raise ValueError("unknown limit source: {}".format(source))
        i = SOURCES.index(source)
        v = _amps(amps)
        if i == 0 and not v:
            raise ValueError("board maximum must be a positive number")
        self._limits[i] = v
        if i == _EMS:
            self._ems_ms = now_ms
        elif source == "cable":
            self.pp_invalid = False

    def set_pp_ohms(self, ohms, now_ms):
        """Apply a PP resistance reading; returns the cable rating or None (fault: pp_invalid)."""
        amps = pp_amps_from_ohms(ohms)
        self.set("cable", amps if amps is not None else 0.0, now_ms)
        self.pp_invalid = amps is None
        return amps

    def set_temperature(self, temp_c, now_ms):
        """Apply a temperature reading (C; None = no sensor); returns the derating factor."""
        self.temp_c = temp_c
        self.derate = derate_for_temperature(temp_c, self.derate)
        self.overtemp = self.derate == 0.0
        return self.derate

    def effective(self, now_ms):
        """(amps, reason): the binding limit now and the name of the source that binds."""
        lim = self._limits
        best = lim[0]
        reason = SOURCES[0]
        for i in range(1, len(SOURCES)):
            v = lim[i]
            if v is None:
                continue
            r = SOURCES[i]
            if i == _EMS and now_ms - self._ems_ms >= self.ems_stale_ms:
                v = self.ems_safe_a
                r = REASON_EMS_STALE
            if v < best:
                best = v
                reason = r
        if self.pp_invalid:
            best = 0.0
            reason = "cable"
        if self.derate == 0.0:
            best = 0.0
            reason = REASON_THERMAL
        elif self.derate < 1.0 and best >= _MIN_CHARGE_A:
            # Derate what would flow otherwise, but never into the no-charging range.
            t = best * self.derate
            if t < _MIN_CHARGE_A:
                t = _MIN_CHARGE_A
            if t < best:
                best = t
                reason = REASON_THERMAL
        if best != self.amps or reason != self.reason:
            self.amps = best
            self.reason = reason
            if self.on_change is not None:
                self.on_change(best, reason, now_ms)
        return best, reason
