"""Generic ESP32-DevKitC (ESP32-WROOM-32) wallbox wiring: one connector, single phase, 32 A.

The wiring is data (`WIRING`); `boards.esp32_common.Board` builds the drivers from it, imported
only by `make_board()`. `failsafe()` uses nothing but `machine.Pin`, so boot.py can run it first.

Pin choices (ESP32): analogue inputs on ADC1 (GPIO 32-39) because ADC2 is unusable while Wi-Fi
runs; the pilot and PP ADCs and the two digital fault inputs use the input-only GPIO 34-39
(they have no internal pulls: the front end must drive them or carry external resistors).
The relay avoids the strapping pins (0, 2, 5, 12, 15) and pins that toggle at boot (1, 3 UART0,
14 and 15 PWM briefly); GPIO 26 floats at reset and the relay driver's pull-down keeps the
contactor open. GPIO 6-11 are the flash. GPIO 16/17 are free on WROOM modules (not on WROVER,
where PSRAM uses them). GPIO 0 is the on-board BOOT button, used as the service button (held at
power-up it selects the ROM loader, held later it is an ordinary input). GPIO 5 is a strapping
pin that must be high at boot: it is the MFRC522 chip select, idle high.
"""

WIRING = {
    "model": "ESP32-DevKitC",
    "phases": 1,
    "max_current": 32.0,
    "voltage": 230.0,
    "ventilation": False,
    "tethered": False,  # Type 2 socket: the cable rating comes from PP
    "connectors": (
        {
            "pilot_pwm": 25,  # to the +/-12 V op-amp driver, 1 kOhm source resistor
            "pilot_adc": 36,  # SENSOR_VP, ADC1_CH0: pilot divider output
            "pp_adc": 39,  # SENSOR_VN, ADC1_CH3: PP, 1 kOhm pull-up to 3.3 V
            "relay": 26,  # contactor driver input, 10 kOhm pull-down
            "relay_active_high": True,
        },
    ),
    # Pilot front end: -12 V -> 400 mV, +12 V -> 2400 mV at the ADC (calibrate per unit):
    # pilot_v = (mv - offset_mv) * v_per_mv.
    "pilot_cal": (1400, 0.012),
    "pwm_bits": 16,  # LEDC duty resolution at 1 kHz (80 MHz APB clock)
    "pp_cal": (1000, 3300),  # (pull-up ohms, pull-up supply mV)
    # 6 mA DC residual-current module (RCM14-03 class): trip output, test input.
    "rcd": {"fault": 34, "fault_active_high": True, "test": 27, "test_active_high": True,
            "trip_ms": 500, "clear_ms": 1000},
    # Opto-coupler behind the contactor (open collector, external pull-up): weld check.
    "mains_sense": {"pin": 35, "active_low": True},
    "temp": None,  # no thermistor fitted: overtemp stays False
    "led": {"type": "ws2812", "pin": 4, "count": 1, "brightness": 64},
    "reader": {"type": "mfrc522", "spi": 2, "sck": 18, "mosi": 23, "miso": 19, "cs": 5,
               "rst": 13, "baud": 1000000},
    # Alternative: {"type": "pn532", "i2c": 0, "sda": 21, "scl": 22}
    "meter": {"type": "sdm120", "uart": 2, "tx": 17, "rx": 16, "de": 32, "baud": 9600,
              "addrs": (1,)},
    # Alternative: {"type": "s0", "pins": (33,), "pulses_per_kwh": 1000}
    "button": {"pin": 0, "active_low": True},
    "wdt_ms": 8000,
}


def failsafe():
    """Drive every relay output to its OPEN level (machine.Pin only; first thing at boot)."""
    from machine import Pin

    for c in WIRING["connectors"]:
        Pin(c["relay"], Pin.OUT, value=0 if c.get("relay_active_high", True) else 1)


def make_board(settings=None):
    from boards.esp32_common import Board

    return Board(WIRING, settings)
