"""Board modules: the only place that knows pins and parts (architecture.md).

Each module defines `make_board(settings) -> Board` and `failsafe()` (drive every relay output
open; called first at boot). `boards.sim` is the simulated board used by tools/sim.py.
"""


def load(name):
    """Import boards.<name> lazily (imports do nothing else)."""
    return __import__("boards." + name, None, None, ("make_board",))
