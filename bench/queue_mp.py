"""Bench (MicroPython Unix port): how many offline sessions the transaction queue holds.

Appends synthetic sessions - StartTransaction, SAMPLES periodic MeterValues (the default
measurands Energy.Active.Import.Register and Power.Active.Import), StopTransaction, in the item
shape of `OCPPClient.queue_tx` - to the real `store.queue.TxQueue` in a scratch directory until
the queue refuses: first periodic MeterValues are thinned (the queue's full policy), then dropped,
then Start/Stop use the reserve up to the hard limit. Reports the sessions kept at full fidelity,
the bytes per session and per message, and the queue's own budget and limits.

    micropython bench/queue_mp.py STATE_DIR SAMPLES   -> one JSON line on stdout
"""

import json
import sys

import log
from store import Store
from store import queue as qmod

log.info = lambda *a: None


def _stamp(i):
    return "2025-01-{:02d}T{:02d}:{:02d}:{:02d}Z".format(1 + i // 86400 % 28, i // 3600 % 24,
                                                         i // 60 % 60, i % 60)


def _sv(value, measurand, unit):
    return {"value": value, "context": "Sample.Periodic", "measurand": measurand,
            "location": "Outlet", "unit": unit}


def main():
    root = sys.argv[1]
    samples = int(sys.argv[2])
    try:
        q = qmod.TxQueue(root, store=Store(root))
    except TypeError:  # an older queue without the store argument
        q = qmod.TxQueue(root)
    seq = 0
    t = 0
    sessions = {"full": 0, "thinned": 0, "start_stop_only": 0}
    per_action = {}

    def push(action, payload, ref):
        nonlocal seq
        seq += 1
        item = {"action": action, "payload": payload, "tx": ref, "ts": seq, "tries": 0,
                "boot": 123456789}
        before = q.bytes if hasattr(q, "bytes") else 0
        kept = q.push(item)
        if kept is not False and hasattr(q, "bytes"):
            n, total = per_action.get(action, (0, 0))
            per_action[action] = (n + 1, total + q.bytes - before)
        return kept is not False

    ref = 0
    energy = 1234567
    while True:
        ref += 1
        t += 600
        try:
            push("StartTransaction", {"connectorId": 1, "idTag": "C3B2A104",
                                      "meterStart": energy, "timestamp": _stamp(t)}, ref)
            dropped = 0
            for _ in range(samples):
                t += 60
                energy += 122
                mv = {"timestamp": _stamp(t), "sampledValue": [
                    _sv("%d" % energy, "Energy.Active.Import.Register", "Wh"),
                    _sv("%.1f" % 7360.0, "Power.Active.Import", "W")]}
                if not push("MeterValues", {"connectorId": 1, "meterValue": [mv]}, ref):
                    dropped += 1
            push("StopTransaction", {"meterStop": energy, "reason": "Local", "idTag": "C3B2A104",
                                     "timestamp": _stamp(t)}, ref)
        except OSError:
            break  # the hard limit: even a Start/Stop no longer fits
        if dropped == 0:
            sessions["full"] += 1
        elif dropped < samples:
            sessions["thinned"] += 1
        else:
            sessions["start_stop_only"] += 1
        if ref > 100000:
            break
    out = {"samples_per_session": samples, "sessions": sessions,
           "budget_bytes": getattr(q, "budget", None),
           "hard_limit_bytes": getattr(q, "hard_limit", None),
           "queued_messages": len(q), "queued_bytes": getattr(q, "bytes", None),
           "bytes_per_message": {a: v[1] // v[0] for a, v in per_action.items()}}
    b = out["bytes_per_message"]
    if b:
        out["bytes_per_session"] = (b.get("StartTransaction", 0) + samples * b.get("MeterValues", 0)
                                    + b.get("StopTransaction", 0))
    print(json.dumps(out))


main()
