"""Runs the test functions of one MicroPython test file inside the Unix port.

Invoked by host_tests/mprunner.py as `micropython _harness.py <test file> <name> ...`; prints one
`@@MPTEST <json>` line per test so the CPython side can report each test to pytest. Async tests
(coroutine functions) run in a fresh asyncio loop. MicroPython only.
"""

import sys
import io
import json
import gc


def _load(path):
    d = path.rsplit("/", 1)
    if len(d) == 2:
        sys.path.insert(0, d[0])
        name = d[1]
    else:
        name = d[0]
    return __import__(name[:-3] if name.endswith(".py") else name)


def _run_one(mod, name):
    fn = getattr(mod, name, None)
    if fn is None:
        return {"name": name, "ok": False, "tb": "no such test function in the module"}
    try:
        r = fn()
        if r is not None and hasattr(r, "send"):
            import asyncio

            asyncio.run(r)
            asyncio.new_event_loop()
        return {"name": name, "ok": True}
    except Exception as e:  # every failure is reported, never swallowed
        buf = io.StringIO()
        sys.print_exception(e, buf)
        return {"name": name, "ok": False, "tb": buf.getvalue()}


def main():
    mod = _load(sys.argv[1])
    for name in sys.argv[2:]:
        gc.collect()
        res = _run_one(mod, name)
        sys.stdout.write("@@MPTEST " + json.dumps(res) + "\n")


main()
