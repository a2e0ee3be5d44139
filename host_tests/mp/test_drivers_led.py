"""drivers.led: the pattern table is complete (every name charger.ledstate returns, every
evse.faults LED pattern, every led_flash kind the charger uses), well formed, and the blinking,
flash overlay and outputs (WS2812, RGB PWM) behave."""

import os

from fakes_hw import HW, FakePin, FakePWM, FakeNeoPixel
from drivers.led import PATTERNS, FLASHES, StatusLED, NeoPixelOut, RGBPWMOut, lit
from evse.faults import FAULTS, KINDS, led_pattern


def _quoted_after(text, marker):
    """Every "name" directly after `marker` in text (no regex: MicroPython's re is small)."""
    out = []
    i = text.find(marker)
    while i >= 0:
        j = i + len(marker)
        if text[j] == '"':
            k = text.find('"', j + 1)
            out.append(text[j + 1 : k])
        i = text.find(marker, j)
    return out


def test_every_ledstate_pattern_exists():
    with open("lib/charger/ledstate.py") as f:
        names = _quoted_after(f.read(), "return ")
    assert len(names) >= 12, names
    for n in names:
        assert n in PATTERNS, n


def test_every_fault_pattern_exists():
    for kind in KINDS:
        assert led_pattern(kind) in PATTERNS, kind
    assert len(KINDS) == len(FAULTS)


def test_every_flash_kind_used_by_the_charger_exists():
    found = []
    for name in os.listdir("lib/charger"):
        if name.endswith(".py"):
            with open("lib/charger/" + name) as f:
                found += _quoted_after(f.read(), "led_flash(")
    assert "rejected" in found and "accepted" in found, found
    for k in found:
        assert k in FLASHES, k
    assert "tap" in FLASHES  # the board flashes it on every card read


def test_the_named_patterns_of_the_brief_exist():
    for n in ("available", "preparing", "charging", "suspended", "free_vend", "reserved",
              "unavailable", "faulted", "connecting", "provisioning", "rejected",
              "certificate_failure"):
        assert n in PATTERNS, n


def test_table_is_well_formed():
    for name, row in PATTERNS.items():
        rgb, on_ms, off_ms = row
        assert len(rgb) == 3 and all(0 <= c <= 255 for c in rgb), name
        assert on_ms >= 0 and off_ms >= 0, name
    for kind, (rgb, ms) in FLASHES.items():
        assert len(rgb) == 3 and ms > 0, kind


def test_states_that_need_telling_apart_look_different():
    keys = {}
    for name in ("available", "preparing", "charging", "suspended", "free_vend", "reserved",
                 "unavailable", "faulted", "connecting", "provisioning", "rejected",
                 "certificate_failure"):
        keys.setdefault(PATTERNS[name], []).append(name)
    for row, names in keys.items():
        assert len(names) == 1, names


def test_blink_timing():
    assert lit(1000, 0, 12345)  # steady
    assert not lit(0, 0, 5)  # off
    assert lit(500, 500, 0) and lit(500, 500, 499)
    assert not lit(500, 500, 500) and not lit(500, 500, 999)
    assert lit(500, 500, 1000)


class _Out:
    def __init__(self):
        self.shown = []

    def show(self, rgb):
        self.shown.append(rgb)


def test_status_led_blinks_and_writes_only_on_change():
    out = _Out()
    led = StatusLED(out)
    assert led.show("connecting", 0)
    for t in range(0, 2000, 50):
        led.tick(t)
    blue = PATTERNS["connecting"][0]
    assert out.shown == [blue, (0, 0, 0), blue, (0, 0, 0)]


def test_flash_overlays_then_returns_to_the_pattern():
    out = _Out()
    led = StatusLED(out)
    led.show("available", 0)
    led.tick(0)
    assert led.flash("rejected", 100)
    led.tick(100)
    assert out.shown[-1] == FLASHES["rejected"][0]
    led.tick(2099)
    led.tick(2100)
    assert out.shown[-1] == PATTERNS["available"][0]
    assert not led.flash("nonsense", 0)


def test_unknown_pattern_shows_as_a_fault():
    out = _Out()
    led = StatusLED(out)
    assert not led.show("no-such-pattern", 0)
    led.tick(0)
    assert out.shown[-1] == PATTERNS["faulted"][0]


def test_neopixel_output_scales_brightness():
    HW.reset()
    np = FakeNeoPixel(FakePin(4), 2)
    NeoPixelOut(np, 64).show((255, 128, 0))
    assert np.pixels == [(64, 32, 0), (64, 32, 0)]
    assert len(np.writes) == 1


def test_rgb_pwm_output_and_common_anode():
    HW.reset()
    pwms = [FakePWM(FakePin(p), freq=1000, duty_u16=0) for p in (13, 14, 15)]
    RGBPWMOut(pwms).show((255, 0, 128))
    assert [p.duty_u16() for p in pwms] == [65535, 0, 128 * 257]
    RGBPWMOut(pwms, active_low=True).show((255, 0, 0))
    assert [p.duty_u16() for p in pwms] == [0, 65535, 65535]
