"""Hardware drivers for the ESP32 boards: RFID readers, meters, pilot, relay, LED and inputs.

One job per module; every driver takes its hardware objects (`machine.Pin`, `SPI`, `I2C`, `UART`,
`ADC`, `PWM`, `neopixel.NeoPixel`) as arguments, so importing a driver creates nothing and host
tests pass register-level fakes. Only `boards/esp32_common.py` builds hardware from a wiring dict.
"""
