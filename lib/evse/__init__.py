"""Pure IEC 61851 EVSE state machines: pilot, duty, connector safety, faults, current limiter.

No hardware, asyncio or time imports: every time input is `now_ms`, a non-wrapping monotonic
millisecond counter passed in by the caller. Import the modules directly (`from evse import
control`); this file stays empty so importing the package costs nothing.
"""
