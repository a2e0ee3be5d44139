"""Shared pytest setup: the MicroPython unit-test collector and the CPython import paths."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Sans-I/O cores from lib/ also run under CPython (fast property tests); `micropython` is stubbed.
for p in (ROOT / "host_tests" / "stubs", ROOT / "lib", ROOT / "tools", ROOT):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from mprunner import collect_file  # noqa: E402


def pytest_pycollect_makemodule(module_path, parent):
    # host_tests/mp/test_*.py run inside the MicroPython Unix port, not in CPython.
    return collect_file(module_path, parent)

# Fixtures for the lab CSMS and the simulator live in their own modules.
pytest_plugins = ["csms_fixtures", "sim_fixtures"]
