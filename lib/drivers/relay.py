"""Relay (contactor) output with its polarity: the one place that knows which level is "open".

`Relay(pin, active_high)` drives the pin OPEN at construction. `open()` does a single
`pin.value()` call and allocates nothing, so the RCD interrupt handler may call it from a hard
IRQ. Only a hardware pull resistor keeps a relay open while the chip resets (GPIOs float as
inputs), so boards must pair this with a pull-down (active-high driver) or pull-up (active-low
driver) on the driver input (evse.md section 6, "Relay / contactor").
"""


def open_level(active_high):
    """Pin level that leaves the relay open (de-energised)."""
    return 0 if active_high else 1


class Relay:
    def __init__(self, pin, active_high=True):
        self.pin = pin
        self.active_high = bool(active_high)
        self.open_value = open_level(active_high)
        self.closed_value = 1 - self.open_value
        self.closed = False
        pin.value(self.open_value)

    def set(self, closed):
        """Close (True) or open (False) the relay."""
        if closed:
            self.pin.value(self.closed_value)
            self.closed = True
        else:
            self.open()

    def open(self):
        """Open the relay. ISR-safe: one pin write, no allocation."""
        self.pin.value(self.open_value)
        self.closed = False

    def is_closed(self):
        """What the pin is driving now (reads the output latch back)."""
        return self.pin.value() == self.closed_value
