"""Bench (MicroPython Unix port): pilot event -> relay command, on a simulated clock.

Drives the real `Charger.control_step()` (lib/charger + lib/evse) with the simulated board and a
`ManualClock`, stepping the clock 1 ms at a time and running a control step every CONTROL_MS, as
the control loop does. A pilot event (EV unplugged: A; EV stops asking: C -> B; EV asks: B -> C)
is injected at every phase of the control period; the latency is the simulated time from the
event to the relay command (`board.relay()`). Also reports the CPU time of one control step.

    micropython bench/latency_mp.py CONTROL_MS STATE_DIR   -> one JSON line on stdout
MICROPYPATH must hold lib/ and the repository root (boards.sim). Needs no network or simulator.
"""

import json
import sys
import time

import log
from clock import ManualClock
from store import Store
import boards.sim as simboard
from charger.app import Charger

log.info = lambda *a: None  # a quiet console: the bench prints one JSON line


class _Client:
    """Stands in for the OCPP client: the control path only queues messages."""

    boot_id = 0
    online = False

    def queue_tx(self, action, payload, tx_ref):
        pass

    def send(self, action, payload):
        return None

    def wake(self):
        pass

    async def call(self, action, payload, timeout_ms=0):
        raise OSError("offline")


def main():
    period = int(sys.argv[1])
    state = sys.argv[2]
    board = simboard.SimBoard({"connectors": 1, "max_current": 32}, state)
    clock = ManualClock(0)
    ch = Charger(board, Store(state), clock)
    ch.client = _Client()
    ch.config.set("AuthEnabled", False)  # plug-in starts a session (free vend)
    commands = []  # (ms, closed)
    relay = board.relay

    def recording_relay(cid, closed):
        commands.append((clock.now_ms(), closed))
        relay(cid, closed)

    board.relay = recording_relay
    step_us = []

    def run_until(pred, limit_ms):
        end = clock.now_ms() + limit_ms
        while clock.now_ms() < end:
            clock.advance(1)
            if clock.now_ms() % period == 0:
                t = time.ticks_us()
                ch.control_step()
                step_us.append(time.ticks_diff(time.ticks_us(), t))
            if pred():
                return True
        return False

    def event_to_relay(state_after, want_closed, phase):
        # Align to a control step, then `phase` ms later change the pilot.
        run_until(lambda: clock.now_ms() % period == 0, period)
        run_until(lambda: False, phase)
        t0 = clock.now_ms()
        del commands[:]
        board.ev_state[0] = state_after
        if not run_until(lambda: any(c[1] == want_closed for c in commands), 10000):
            raise RuntimeError("no relay command after the pilot went to " + state_after)
        return [c[0] for c in commands if c[1] == want_closed][0] - t0

    results = {"unplug_open": [], "c_to_b_open": [], "b_to_c_close": []}
    for phase in range(period):
        board.ev_state[0] = "B"  # plug in: the session starts, PWM on
        run_until(lambda: board.duty[0] < 1.0, 10000)
        results["b_to_c_close"].append(event_to_relay("C", True, phase))
        results["c_to_b_open"].append(event_to_relay("B", False, phase))
        event_to_relay("C", True, 0)
        results["unplug_open"].append(event_to_relay("A", False, phase))
        run_until(lambda: ch.connectors[0].status == "Available", 10000)
    out = {"control_ms": period, "events": period}
    for name, values in results.items():
        out[name + "_ms"] = {"min": min(values), "mean": sum(values) / len(values),
                             "max": max(values)}
    step_us.sort()
    out["step_us"] = {"median": step_us[len(step_us) // 2], "max": step_us[-1],
                      "steps": len(step_us)}
    print(json.dumps(out))


main()
