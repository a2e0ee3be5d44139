"""Firmware entry point, the same on the ESP32 and in the simulator (Unix port).

Order matters: (1) fail-safe - the board's relay outputs are driven open before anything else;
(2) an installed application bundle (lib/update/apps.py: trial boots, rollback) goes first on
sys.path, so the application below is the bundle's; (3) load the stored configuration and the
board module named in it; (4) start the charger application in the asyncio loop. On the ESP32
any unhandled exception opens the relays and resets the chip; in the simulator it exits non-zero
and tools/sim.py restarts the process.
"""

import sys
import os

_UNIX = sys.platform in ("linux", "darwin")


def _board_name():
    if _UNIX:
        return os.getenv("EVSE_BOARD") or "sim"
    try:
        with open("/board.txt") as f:
            return f.read().strip()
    except OSError:
        return "esp32_devkitc"


def _settings():
    if _UNIX:
        import json

        return json.loads(os.getenv("EVSE_SIM_ARGS") or "{}")
    return {}


def main():
    import boards

    board_mod = boards.load(_board_name())
    board_mod.failsafe()
    if _use_bundle():
        import boards  # again: from the bundle if it carries this board's module

        board_mod = boards.load(_board_name())
        board_mod.failsafe()
    settings = _settings()
    import log
    from store import Store

    state_dir = os.getenv("EVSE_STATE_DIR") if _UNIX else "/data"
    store = Store(state_dir or "state")
    import provision

    provision.recover(store)  # finish a commit or factory reset that a power cut interrupted
    board = board_mod.make_board(settings)
    if settings.get("first_boot"):
        _apply_command_line(store, settings)
    import asyncio

    try:
        # Inside the try: an application that fails to import must restart the chip too, so a
        # bundle on trial gets its next boot counted (and rolled back) instead of a REPL.
        from charger.app import Charger

        charger = Charger(board, store)
        asyncio.run(charger.run())
    except Exception as e:  # last line of defence: relays open, then restart
        log.exception("main", "fatal", e)
        board_mod.failsafe()
        for i in range(board.connectors):
            try:
                board.relay(i + 1, False)
            except Exception:  # hardware already failing: nothing more to do
                pass
        board.reset_after_crash() if hasattr(board, "reset_after_crash") else sys.exit(1)


def _use_bundle():
    """Put the active application bundle first on sys.path; False: the base image runs.

    Any error here means the base image: a bad record or bundle must never stop the charger.
    """
    try:
        from store import Store
        from update import apps

        state_dir = (os.getenv("EVSE_STATE_DIR") if _UNIX else "/data") or "state"
        return apps.boot(Store(state_dir), _board_name())
    except Exception as e:  # the base image must always start
        print("main: bundle selection failed, running the base image:", repr(e))
        return False
    finally:
        for name in ("update.apps", "update", "store.tree"):  # a rare feature from here on
            sys.modules.pop(name, None)


def _apply_command_line(store, s):
    """Simulator command-line values, stored as a provisioning step would store them."""
    import log
    import provision

    fields = {"url": s.get("csms"), "cp_id": s.get("id"), "password": s.get("password")}
    if s.get("ca"):
        with open(s["ca"], "rb") as f:
            fields["ca"] = f.read()
    try:
        if any(v is not None for v in fields.values()):
            provision.commit(store, fields)
    except (ValueError, OSError) as e:
        log.error("main", "command-line provisioning refused: %s", e)
    cfg = s.get("config") or {}
    if cfg:
        rec = store.load("preconfig", {}) or {}
        rec.update(cfg)
        store.save("preconfig", rec)


main()
