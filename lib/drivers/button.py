"""Service button: a press of 3 s opens the provisioning window, 10 s asks for a factory reset.

Polled (`update(now_ms)`, every 50 ms is plenty) rather than interrupt-driven: the durations are
seconds and polling needs no debounce state. Held >= `window_press_ms` and released opens the
window for `window_ms`; held >= `reset_press_ms` sets `factory_reset_requested` at once (the
window is not opened by that press). Time is non-wrapping `now_ms`.
"""

from micropython import const

WINDOW_PRESS_MS = const(3000)
RESET_PRESS_MS = const(10000)
WINDOW_MS = const(60000)


class ServiceButton:
    def __init__(self, pin, active_low=True, window_press_ms=WINDOW_PRESS_MS,
                 reset_press_ms=RESET_PRESS_MS, window_ms=WINDOW_MS):
        self.pin = pin
        self.active = 0 if active_low else 1
        self.window_press_ms = window_press_ms
        self.reset_press_ms = reset_press_ms
        self.window_ms = window_ms
        self.factory_reset_requested = False
        self.window_until = None
        self._down_ms = None

    def update(self, now_ms):
        """Sample the button; returns the event it completed: None, 'window' or 'factory_reset'."""
        pressed = self.pin.value() == self.active
        if pressed:
            if self._down_ms is None:
                self._down_ms = now_ms
            elif (now_ms - self._down_ms >= self.reset_press_ms
                  and not self.factory_reset_requested):
                self.factory_reset_requested = True
                return "factory_reset"
            return None
        down = self._down_ms
        self._down_ms = None
        if down is None:
            return None
        held = now_ms - down
        if self.window_press_ms <= held < self.reset_press_ms:
            self.window_until = now_ms + self.window_ms
            return "window"
        return None

    def window_open(self, now_ms):
        return self.window_until is not None and now_ms < self.window_until
