"""ESP32-S3 (DevKitC-1, WROOM-1) wallbox wiring: one connector, three phases, 16 A, SDM630.

The wiring is data (`WIRING`); `boards.esp32_common.Board` builds the drivers from it, imported
only by `make_board()`. `failsafe()` uses nothing but `machine.Pin`, so boot.py can run it first.

Pin choices (ESP32-S3): analogue inputs on ADC1 (GPIO 1-10; ADC2 = GPIO 11-20 is unusable while
Wi-Fi runs). Avoided: strapping pins 0, 3, 45, 46 (GPIO 0 is the BOOT button, used as the
service button), USB D-/D+ 19/20, flash/PSRAM 26-32 and 33-37 (octal-PSRAM modules), UART0
console 43/44. The relay is on GPIO 21, which floats at reset; the driver's pull-down keeps the
contactor open. The on-board RGB LED is a WS2812 on GPIO 48 (GPIO 38 on DevKitC-1 v1.1 boards).
"""

WIRING = {
    "model": "ESP32-S3",
    "phases": 3,
    "max_current": 16.0,
    "voltage": 230.0,
    "ventilation": False,
    "tethered": False,
    "connectors": (
        {
            "pilot_pwm": 14,
            "pilot_adc": 1,  # ADC1_CH0
            "pp_adc": 2,  # ADC1_CH1
            "relay": 21,  # contactor driver input, 10 kOhm pull-down
            "relay_active_high": True,
        },
    ),
    # Same front end as the DevKitC board: -12 V -> 400 mV, +12 V -> 2400 mV.
    "pilot_cal": (1400, 0.012),
    "pwm_bits": 14,  # the S3's LEDC timers have 14 bits at most
    "pp_cal": (1000, 3300),
    "rcd": {"fault": 5, "fault_active_high": True, "test": 6, "test_active_high": True,
            "trip_ms": 500, "clear_ms": 1000},
    "mains_sense": {"pin": 7, "active_low": True, "pull": "up"},
    # 10 kOhm NTC (beta 3950) to GND, 10 kOhm to 3.3 V, on ADC1_CH3.
    "temp": {"pin": 4, "series_ohms": 10000, "vref_mv": 3300, "r25_ohms": 10000, "beta": 3950,
             "cutoff_c": 71},
    "led": {"type": "ws2812", "pin": 48, "count": 1, "brightness": 64},
    "reader": {"type": "pn532", "i2c": 0, "sda": 8, "scl": 9, "freq": 100000},
    # Alternative: {"type": "mfrc522", "spi": 1, "sck": 12, "mosi": 11, "miso": 13, "cs": 10,
    #               "rst": 15}
    "meter": {"type": "sdm630", "uart": 1, "tx": 17, "rx": 18, "de": 16, "baud": 9600,
              "addrs": (1,)},
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
