"""The MicroPython test runner itself: these run inside the Unix port."""

import sys


def test_runs_in_micropython():
    assert sys.implementation.name == "micropython"


async def test_async_tests_run_in_a_loop():
    import asyncio

    await asyncio.sleep_ms(1)
