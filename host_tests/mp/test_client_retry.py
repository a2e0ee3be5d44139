"""ocpp16.client transaction-message delivery: retries, attempts, offline, order.

The OCPP client runs against a scripted fake WebSocket (the protocol peer in whole-charger
tests is the lab CSMS; here the CSMS's answers are scripted to reach the retry paths it never
takes): a StartTransaction answered with CALLERROR is retried per TransactionMessageAttempts and
then dropped without blocking the next message; a link that dies while a message waits for its
answer spends no attempt, and the message goes out again, in order, after the reconnect.
"""
# mp-heapsize: 1M

import asyncio
import json
import random

from clock import Clock
from ocpp16 import config as cfg
from ocpp16.client import OCPPClient
from ocpp16.dispatch import Dispatcher
from ocpp16.timefmt import format_rfc3339
from store import Store
from store.queue import TxQueue
from store.tree import rmtree


class FakeLink:
    def isconnected(self):
        return True


class ScriptedWS:
    """Answers each CALL with script(action, n) -> 'ok' | 'error' | 'drop' (n: how many times
    this action was seen)."""

    def __init__(self, script):
        self.script = script
        self.seen = {}
        self.sent = []  # (action, payload) in order
        self.inbox = []
        self.evt = asyncio.Event()
        self.closed = False

    async def connect(self, url, cp_id, auth_key=None, ssl_ctx=None):
        self.closed = False

    async def send(self, text):
        msg = json.loads(text)
        if msg[0] != 2:
            return
        uid, action, payload = msg[1], msg[2], msg[3]
        n = self.seen.get(action, 0) + 1
        self.seen[action] = n
        self.sent.append((action, payload))
        what = self.script(action, n)
        if what == "drop":
            self.closed = True
            self.evt.set()
            return
        if what == "error":
            reply = [4, uid, "InternalError", "scripted failure", {}]
        elif action == "BootNotification":
            reply = [3, uid, {"status": "Accepted", "interval": 300,
                              "currentTime": format_rfc3339(1795000000)}]
        elif action == "StartTransaction":
            reply = [3, uid, {"transactionId": 40 + n, "idTagInfo": {"status": "Accepted"}}]
        else:
            reply = [3, uid, {}]
        self.inbox.append(json.dumps(reply))
        self.evt.set()

    async def recv(self):
        while not self.inbox:
            if self.closed:
                raise OSError("link lost")
            self.evt.clear()
            await self.evt.wait()
        return self.inbox.pop(0)

    async def close(self, code=1000, reason=""):
        self.closed = True
        self.evt.set()

    async def keepalive(self, interval_s):
        pass


class Hooks:
    def __init__(self):
        self.answers = []
        self.dropped = []
        self.clock = None

    def boot_payload(self):
        return {"chargePointVendor": "Test", "chargePointModel": "Fake"}

    def set_time(self, text):
        pass

    def on_connection(self, status):
        pass

    def on_registration(self, status):
        pass

    def on_registered(self, reconnect):
        pass

    def fill_tx(self, item):
        item["payload"].setdefault("timestamp", "2026-11-24T20:00:00Z")
        return True

    def on_tx_answer(self, item, payload):
        self.answers.append((item["action"], item["tx"]))

    def on_tx_dropped(self, item):
        self.dropped.append((item["action"], item["tx"]))


def make(script, attempts=3):
    root = "/tmp/client-retry-test-%d" % random.getrandbits(24)
    rmtree(root)
    st = Store(root)
    c = cfg.Config(st)
    for key, default in (("HeartbeatInterval", 0), ("ReconnectBackoffMin", 1),
                         ("ReconnectBackoffMax", 1), ("TransactionMessageAttempts", attempts),
                         ("TransactionMessageRetryInterval", 0), ("WebSocketPingInterval", 0)):
        c.declare(key, cfg.INT, default)
    ws = ScriptedWS(script)
    hooks = Hooks()
    client = OCPPClient(FakeLink(), Clock(), c, Dispatcher(), TxQueue(root, store=st),
                        lambda: {"url": "ws://csms/ocpp", "cp_id": "CP1"}, hooks, lambda l: ws)
    return client, ws, hooks


async def run_until(client, cond, ms=8000):
    task = asyncio.create_task(client.run())
    waited = 0
    while not cond() and waited < ms:
        await asyncio.sleep_ms(10)
        waited += 10
    client.stop()
    await asyncio.sleep_ms(20)
    task.cancel()
    return cond()


def start(tx):
    return {"connectorId": 1, "idTag": "AA", "meterStart": tx}


async def test_callerror_is_retried_then_dropped_without_blocking_the_next():
    client, ws, hooks = make(lambda a, n: "error" if a == "StartTransaction" and n <= 5 else "ok")
    client.queue_tx("StartTransaction", start(1), 1)
    client.queue_tx("StopTransaction", {"meterStop": 5, "reason": "Local"}, 1)
    client.queue_tx("StartTransaction", start(2), 2)
    ok = await run_until(client, lambda: len(client.txq) == 0)
    assert ok, (ws.sent, hooks.dropped)
    starts = [p for a, p in ws.sent if a == "StartTransaction"]
    # First Start: 3 attempts (TransactionMessageAttempts), then dropped; the Stop after it
    # goes on; the second Start fails twice more and succeeds on its third attempt.
    assert [p["meterStart"] for p in starts] == [1, 1, 1, 2, 2, 2], starts
    assert hooks.dropped == [("StartTransaction", 1)]
    assert ("StopTransaction", 1) in hooks.answers and ("StartTransaction", 2) in hooks.answers


async def test_a_dead_link_spends_no_attempt_and_order_is_kept():
    def script(action, n):
        if action == "StartTransaction" and n <= 4:
            return "drop"  # the link dies while the message waits for its answer
        return "ok"

    client, ws, hooks = make(script, attempts=2)
    client.queue_tx("StartTransaction", start(7), 7)
    client.queue_tx("MeterValues", {"connectorId": 1, "meterValue": []}, 7)
    client.queue_tx("StopTransaction", {"meterStop": 9, "reason": "Local"}, 7)
    ok = await run_until(client, lambda: len(client.txq) == 0, ms=15000)
    assert ok, ws.sent
    tx_actions = [a for a, _ in ws.sent if a != "BootNotification"
                  and a != "StatusNotification" and a != "Heartbeat"]
    # Four cuts, yet with 2 attempts allowed the Start was never dropped, and nothing overtook it.
    assert tx_actions == ["StartTransaction"] * 5 + ["MeterValues", "StopTransaction"], tx_actions
    assert hooks.dropped == []
