"""Firmware log: one line per event to the console, plus a bounded ring for diagnostics uploads.

Lines look like `W store: config corrupt, using backup`. The ring keeps the last `RING_LINES`
lines (bounded, preallocated list) so GetDiagnostics can upload recent history without a file.
Never log secrets (passwords, AuthorizationKey) or full idTags.
"""

import sys

RING_LINES = 64
_ring = [None] * RING_LINES
_pos = 0
_sink = None  # optional callable(line) for the simulator/tests


def set_sink(fn):
    global _sink
    _sink = fn


def _emit(level, tag, msg, args):
    global _pos
    if args:
        try:
            msg = msg % args
        except (TypeError, ValueError):
            msg = "{} {}".format(msg, args)
    line = "{} {}: {}".format(level, tag, msg)
    _ring[_pos % RING_LINES] = line
    _pos += 1
    try:
        sys.stderr.write(line + "\n")
    except OSError:
        pass
    if _sink is not None:
        _sink(line)


def info(tag, msg, *args):
    _emit("I", tag, msg, args)


def warn(tag, msg, *args):
    _emit("W", tag, msg, args)


def error(tag, msg, *args):
    _emit("E", tag, msg, args)


def exception(tag, msg, e):
    """Log an unexpected exception with its traceback (console only, first line in the ring)."""
    _emit("E", tag, "{}: {!r}".format(msg, e), ())
    try:
        sys.print_exception(e)
    except AttributeError:  # CPython
        import traceback

        traceback.print_exception(e)


def recent():
    """The ring's lines, oldest first (a generator: no list of the whole ring is built)."""
    start = _pos - RING_LINES if _pos > RING_LINES else 0
    for i in range(start, _pos):
        yield _ring[i % RING_LINES]


def redact_tag(id_tag):
    """Show only the last 4 characters of an idTag in logs (EVerest does the same)."""
    if not id_tag:
        return id_tag
    return "*" * max(0, len(id_tag) - 4) + id_tag[-4:]
