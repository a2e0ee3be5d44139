"""ESP32 boot: drive every relay output open before anything else runs.

Kept tiny on purpose: it runs before main.py and before any import that could fail. The board
module named in /board.txt (default esp32_devkitc) knows its relay pins.
"""

try:
    with open("/board.txt") as _f:
        _name = _f.read().strip()
except OSError:
    _name = "esp32_devkitc"
try:
    __import__("boards." + _name, None, None, ("failsafe",)).failsafe()
except ImportError as _e:
    print("boot: no board module", _name, _e)
