"""Status LED: the pattern table (name -> colour and blink timing) and the LED outputs.

`PATTERNS` is the single table of what the charger shows (the README prints it): a name from
`charger.ledstate` or an `evse.faults` led_pattern -> ((r, g, b), on_ms, off_ms); off_ms 0 =
steady. `FLASHES` are short overlays from `board.led_flash(kind)` -> ((r, g, b), ms). Colours
follow evse.md section 8: green available (OpenEVSE), cyan charging, yellow waiting, red faults
(SmartEVSE fast red blink), orange reserved, blue for the network and provisioning (esp32-evse
timings: connecting 500/500, provisioning window 100/900), magenta for CSMS/certificate trouble.

`StatusLED(out)` keeps the current pattern and an optional flash; `tick(now_ms)` (called from a
board task every few tens of ms) computes the colour and writes the output only when it changes.
Outputs: `NeoPixelOut` (WS2812 via `neopixel`, one or more pixels) and `RGBPWMOut` (three
`machine.PWM` channels, common cathode or anode). No allocation per tick.
"""

from micropython import const

_OFF = (0, 0, 0)
_GREEN = (0, 255, 0)
_CYAN = (0, 200, 255)
_YELLOW = (255, 180, 0)
_ORANGE = (255, 80, 0)
_RED = (255, 0, 0)
_DIM_RED = (80, 0, 0)
_BLUE = (0, 0, 255)
_MAGENTA = (255, 0, 255)
_WHITE = (255, 255, 255)

PATTERNS = {
    # name: (colour, on_ms, off_ms)
    "off": (_OFF, 0, 0),
    "available": (_GREEN, 1000, 0),
    "preparing": (_YELLOW, 500, 500),  # EV plugged / authorised, not charging (esp32-evse B)
    "charging": (_CYAN, 1000, 0),
    "suspended": (_CYAN, 1900, 100),  # PWM paused or EV idle (esp32-evse C1/D1 1900/100)
    "free_vend": (_YELLOW, 1000, 0),  # AuthEnabled=false, idle (a commercial wallbox: yellow)
    "reserved": (_ORANGE, 1000, 0),  # SmartEVSE: orange
    "unavailable": (_DIM_RED, 1000, 0),  # SmartEVSE: red
    "faulted": (_RED, 250, 250),  # SmartEVSE: fast red blink, 50 %
    "connecting": (_BLUE, 500, 500),  # esp32-evse: connecting 500/500
    "provisioning": (_BLUE, 100, 900),  # esp32-evse: AP waiting 100/900
    "rejected": (_MAGENTA, 500, 500),  # CSMS refused the connection or the BootNotification
    "certificate_failure": (_MAGENTA, 100, 900),  # server certificate did not validate
    # Fault-specific patterns (evse.faults FAULTS column 4): red, told apart by rhythm.
    "fault_hard": (_RED, 100, 100),  # welded relay, RCD self-test failed: needs a power cycle
    "fault_ground": (_RED, 250, 250),  # residual current tripped
    "fault_temp": (_ORANGE, 250, 250),  # over-temperature
    "fault_ev": (_RED, 1000, 1000),  # pilot short, diode, ventilation: EV side
    "fault_cable": (_RED, 250, 750),  # proximity resistor missing / out of band
    "fault_meter": (_RED, 750, 250),  # energy meter not answering
}

FLASHES = {
    # kind: (colour, ms) shown once over the pattern
    "tap": (_WHITE, 200),  # card read (SmartEVSE: white 200 ms)
    "accepted": (_GREEN, 1000),  # authorised (SmartEVSE: green 1 s)
    "rejected": (_RED, 2000),  # not authorised (SmartEVSE: red 2 s)
    "timeout": (_RED, 300),  # no answer from the CSMS in time (SmartEVSE: red 300 ms)
}

_UNKNOWN = "faulted"  # an unknown name shows as a fault rather than as "all is well"
_BRIGHTNESS = const(64)  # default WS2812 scale (0-255): full power is blinding


def lit(on_ms, off_ms, t_ms):
    """True if a pattern (on_ms, off_ms) is in its on phase `t_ms` after it started."""
    if off_ms <= 0:
        return on_ms > 0
    return t_ms % (on_ms + off_ms) < on_ms


class NeoPixelOut:
    """WS2812 pixels (`neopixel.NeoPixel`), all showing the same colour."""

    def __init__(self, np, brightness=_BRIGHTNESS):
        self.np = np
        self.brightness = brightness

    def show(self, rgb):
        b = self.brightness
        c = (rgb[0] * b // 255, rgb[1] * b // 255, rgb[2] * b // 255)
        np = self.np
        for i in range(len(np)):
            np[i] = c
        np.write()


class RGBPWMOut:
    """Three PWM channels (r, g, b); active_low for a common-anode LED."""

    def __init__(self, pwms, active_low=False, brightness=255):
        self.pwms = tuple(pwms)
        self.active_low = active_low
        self.brightness = brightness

    def show(self, rgb):
        b = self.brightness
        for i in range(3):
            v = rgb[i] * b // 255 * 257  # 0..255 -> 0..65535
            self.pwms[i].duty_u16(65535 - v if self.active_low else v)


class StatusLED:
    def __init__(self, out):
        self.out = out
        self.name = None
        self._pat = PATTERNS["off"]
        self._start = 0
        self._flash = None
        self._flash_end = 0
        self._shown = None

    def show(self, name, now_ms):
        """Switch to pattern `name` (unknown names show as a fault); False if unknown."""
        known = name in PATTERNS
        pat = PATTERNS[name] if known else PATTERNS[_UNKNOWN]
        if name != self.name:
            self.name = name
            self._pat = pat
            self._start = now_ms
        return known

    def flash(self, kind, now_ms):
        """Overlay flash `kind` for its duration; False (and nothing shown) if unknown."""
        f = FLASHES.get(kind)
        if f is None:
            return False
        self._flash = f[0]
        self._flash_end = now_ms + f[1]
        return True

    def colour(self, now_ms):
        """The colour to show at `now_ms`."""
        if self._flash is not None:
            if now_ms < self._flash_end:
                return self._flash
            self._flash = None
        rgb, on_ms, off_ms = self._pat
        return rgb if lit(on_ms, off_ms, now_ms - self._start) else _OFF

    def tick(self, now_ms):
        """Update the output; writes only on a change."""
        c = self.colour(now_ms)
        if c is not self._shown:
            self._shown = c
            self.out.show(c)
