"""OCPP-J client shell: connection, registration, one outstanding CALL, tx-queue replay, dispatch.

The thin async layer around the sans-I/O RPC core (ocpp16.rpc) and the WebSocket client (net):
- connects (with exponential backoff and jitter, reset after a stable link) and reports the
  connection status (`Connecting`, `Connected`, `Rejected`, `CertificateValidationFailed`,
  `Offline`) through `on_status`;
- sends BootNotification and holds everything else of its own until it is Accepted (OCPP 1.6
  section 4.2), while still answering the CSMS in Pending;
- keeps at most one CALL of its own outstanding (OCPP-J), taking the oldest of: the bounded RAM
  queue of non-transaction messages and the persistent transaction queue (store.queue);
- retries transaction messages per TransactionMessageAttempts / TransactionMessageRetryInterval,
  spending no attempts while offline;
- dispatches incoming CALLs to the registered handlers (ocpp16.dispatch).
Bounds: `_RAM_QUEUE` non-transaction messages; incoming frames are bounded by the WebSocket layer.
"""

import asyncio
import random
from micropython import const

import log
from ocpp16 import rpc as rpcmod
from ocpp16.errors import OCPPError
from ocpp16.schema import validate
from ocpp16.specs import confirmation_spec

_RAM_QUEUE = const(16)
_CALL_TIMEOUT_MS = const(30000)
_STABLE_MS = const(60000)  # a link that lived this long resets the backoff
TX_ACTIONS = ("StartTransaction", "StopTransaction", "MeterValues")


class CallFailed(Exception):
    """A CALL of ours did not get a CALLRESULT: offline, timeout, or a CALLERROR (`.code`)."""

    def __init__(self, reason, code=None):
        super().__init__(reason)
        self.reason = reason
        self.code = code


class _Pending:
    __slots__ = ("action", "payload", "done", "result", "error", "seq", "triggered")

    def __init__(self, action, payload, seq, triggered=False):
        self.action = action
        self.payload = payload
        self.seq = seq
        self.triggered = triggered  # asked for by TriggerMessage: may go out while Pending
        self.done = asyncio.Event()
        self.result = None
        self.error = None


class OCPPClient:
    def __init__(self, link, clock, config, dispatcher, txq, settings, hooks, ws_factory):
        """`settings()` returns the connection settings dict (url, cp_id, auth_key, ssl_ctx or
        None, profile); `hooks` is the charger: boot payload, tx answers, status resync;
        `ws_factory(link)` builds a WSClient (injected so tests can replace the transport)."""
        self.link = link
        self.clock = clock
        self.config = config
        self.dispatcher = dispatcher
        self.txq = txq
        self.settings = settings
        self.hooks = hooks
        self.ws_factory = ws_factory
        self.rpc = rpcmod.RPC(rand=_urandom)
        self.boot_id = random.getrandbits(30)
        self.status = "Connecting"
        self.last_error = None
        self.registration = None
        self._ws = None
        self._ram = []  # bounded by _RAM_QUEUE
        self._seq = 0
        self._wake = asyncio.Event()
        self._inflight = None  # (uid, kind, item, deadline)
        self._result = None
        self._got = asyncio.Event()
        self._boot_wait_until = 0
        self._tx_retry_at = 0
        self._stop = False
        self._dead = True
        self._last_rx_ms = 0
        self.hb_due = 0
        self._keep = None  # the keepalive (WebSocket ping) task of the current link

    # ---- API for the charger -------------------------------------------------------------
    def _set_status(self, status, err=None):
        changed = err is not None and err != self.last_error
        if err is not None:
            self.last_error = err
        if status != self.status or changed:
            log.info("ocpp", "connection %s%s", status, " ({})".format(err) if err else "")
            self.status = status
            self.hooks.on_connection(status)

    @property
    def online(self):
        return self._ws is not None and self.registration == "Accepted"

    def send(self, action, payload, triggered=False):
        """Queue a non-transaction message (StatusNotification, Heartbeat, ...); returns a
        pending handle whose `done` event is set once answered or failed. `triggered`: the CSMS
        asked for it (TriggerMessage), so it may go out while the boot is Pending (4.2)."""
        self._seq += 1
        p = _Pending(action, payload, self._seq, triggered)
        if len(self._ram) >= _RAM_QUEUE:
            # Drop the oldest StatusNotification first: the charger re-sends statuses on reconnect.
            for i, q in enumerate(self._ram):
                if q.action == "StatusNotification":
                    self._fail(self._ram.pop(i), CallFailed("queue full"))
                    break
            else:
                self._fail(p, CallFailed("queue full"))
                return p
        self._ram.append(p)
        self._wake.set()
        return p

    async def call(self, action, payload, timeout_ms=_CALL_TIMEOUT_MS + 5000):
        """Send a non-transaction CALL and wait for its answer payload (raises CallFailed)."""
        if not self.online:
            raise CallFailed("offline")
        p = self.send(action, payload)
        try:
            await asyncio.wait_for_ms(p.done.wait(), timeout_ms)
        except asyncio.TimeoutError:
            if p in self._ram:
                self._ram.remove(p)
            raise CallFailed("timeout")
        if p.error is not None:
            raise p.error
        return p.result

    def queue_tx(self, action, payload, tx_ref):
        """Persist a transaction message; it is sent in order when the CSMS is reachable."""
        self._seq += 1
        item = {"action": action, "payload": payload, "tx": tx_ref, "ts": self._seq, "tries": 0,
                "boot": self.boot_id}
        try:
            if self.txq.push(item):
                log.info("txq", "+ %s tx %s", action, tx_ref)  # after the write: tests count these
            else:
                log.warn("ocpp", "queue nearly full: periodic %s thinned out", action)
        except (OSError, ValueError) as e:
            # Flash full or broken: the message cannot be kept. Logged loudly; never a crash.
            log.error("ocpp", "%s could not be queued: %s", action, e)
        self._wake.set()

    def wake(self):
        self._wake.set()

    def stop(self):
        self._stop = True
        self._wake.set()

    # ---- connection loop -----------------------------------------------------------------
    async def run(self):
        backoff = self.config.get("ReconnectBackoffMin")
        while not self._stop:
            if not self.link.isconnected():
                self._set_status("Offline", "network down")
                await asyncio.sleep_ms(500)
                continue
            s = self.settings()
            if s.get("refuse"):
                self._set_status(*s["refuse"])
                await asyncio.sleep_ms(1000)
                continue
            if not s.get("url") or not s.get("cp_id"):
                self._set_status("Offline", "not provisioned")
                await asyncio.sleep_ms(1000)
                continue
            ws = self.ws_factory(self.link)
            started = self.clock.now_ms()
            try:
                await ws.connect(
                    s["url"], s["cp_id"], auth_key=s.get("auth_key"), ssl_ctx=s.get("ssl_ctx")
                )
            except Exception as e:  # ConnectError (and anything unexpected) -> status + backoff
                stage = getattr(e, "stage", None)
                detail = "{} {}".format(stage or type(e).__name__, getattr(e, "detail", e))
                if stage == "cert":
                    self._set_status("CertificateValidationFailed", detail)
                elif stage == "auth":
                    self._set_status("Rejected", detail)
                elif stage == "offline":
                    self._set_status("Offline", detail)
                else:
                    log.warn("ocpp", "connect failed: %s", detail)
                    self.last_error = detail
                    if self.status == "Connected":
                        self._set_status("Connecting")
                await self._backoff_sleep(backoff)
                backoff = min(backoff * 2, self.config.get("ReconnectBackoffMax"))
                continue
            self._ws = ws
            self._set_status("Connected")
            try:
                await self._session(ws)
            except Exception as e:  # link lost or a bug: log, reconnect
                log.warn("ocpp", "link lost: %r", e)
            finally:
                self._ws = None
                self._abort_inflight("link lost")
                try:
                    await ws.close()
                except Exception:  # already dead
                    pass
            if self._stop:
                break
            if self.clock.now_ms() - started > _STABLE_MS:
                backoff = self.config.get("ReconnectBackoffMin")
            if self.link.isconnected():
                self._set_status("Connecting", "link lost")
            await self._backoff_sleep(backoff)
            backoff = min(backoff * 2, self.config.get("ReconnectBackoffMax"))

    async def _backoff_sleep(self, base_s):
        # Full jitter in [base/2, base]: chargers that lost the CSMS together do not return together.
        ms = int(base_s * 1000)
        ms = ms // 2 + random.getrandbits(16) % (ms // 2 + 1)
        log.info("ocpp", "reconnect in %d ms", ms)
        end = self.clock.now_ms() + ms
        while not self._stop and self.clock.now_ms() < end:
            await asyncio.sleep_ms(min(200, end - self.clock.now_ms()))

    async def _session(self, ws):
        self._dead = False
        reader = asyncio.create_task(self._reader(ws))
        self._keep = None
        self.ping_changed(ws)
        try:
            await self._sender(ws, reader)
        finally:
            reader.cancel()
            if self._keep is not None:
                self._keep.cancel()
                self._keep = None

    def ping_changed(self, ws=None):
        """(Re)start the WebSocket pings with the WebSocketPingInterval now set (0 = none)."""
        ws = ws or self._ws
        if self._keep is not None:
            self._keep.cancel()
            self._keep = None
        ping = self.config.get("WebSocketPingInterval")
        if ws is not None and ping > 0:
            self._keep = asyncio.create_task(ws.keepalive(ping))

    def heartbeat_changed(self):
        """HeartbeatInterval changed: the next Heartbeat is one new interval from now."""
        self.hb_due = self.clock.now_ms() + self.config.get("HeartbeatInterval") * 1000
        self._wake.set()

    def trigger_boot(self):
        """TriggerMessage BootNotification while not Accepted: send it now, not after the
        interval (once Accepted, send it like any message: `send(..., triggered=True)`)."""
        self._boot_wait_until = 0
        self._wake.set()

    async def _reader(self, ws):
        try:
            await self._read_loop(ws)
        except Exception as e:  # WSClosed / OSError: the link ended; the sender reconnects
            log.info("ocpp", "link closed: %r", e)
        finally:
            # Link gone (or a bug): wake the sender wherever it waits.
            self._dead = True
            self._wake.set()
            self._got.set()

    async def _read_loop(self, ws):
        while True:
            text = await ws.recv()
            self._last_rx_ms = self.clock.now_ms()
            ev = self.rpc.decode(text)
            kind = ev[0]
            if kind == rpcmod.CALL:
                await self._incoming_call(ws, ev[1], ev[2], ev[3])
            elif kind == rpcmod.CALLRESULT or kind == rpcmod.CALLERROR:
                if self._inflight is not None and ev[1] == self._inflight[0]:
                    self._result = ev
                    self._got.set()
                else:
                    log.warn("ocpp", "answer to unknown message id %s ignored", ev[1])
            else:  # BAD frame: answer when an id was recovered, else just log
                log.warn("ocpp", "bad frame: %s %s", ev[2], ev[3])
                if ev[1] is not None:
                    await ws.send(self.rpc.encode_error(ev[1], ev[2], ev[3]))

    async def _incoming_call(self, ws, uid, action, payload):
        if self.registration == "Rejected" and self.clock.now_ms() < self._boot_wait_until:
            # OCPP 1.6 4.2: while Rejected the charger does not answer the CSMS.
            log.info("ocpp", "Rejected: ignoring %s", action)
            return
        out = self.dispatcher.handle(self.hooks, uid, action, payload)
        after = None
        if isinstance(out, tuple):
            out, after = out
        await ws.send(out)
        if after is not None:
            try:
                after()
            except Exception as e:  # an action after the answer must not kill the link
                log.exception("ocpp", "after " + action, e)

    # ---- sending -------------------------------------------------------------------------
    async def _send_call(self, ws, action, payload):
        """Send one CALL and wait for its answer; returns the event tuple or None on timeout."""
        uid, text = self.rpc.encode_call(action, payload)
        self._inflight = (uid, action)
        self._got.clear()
        self._result = None
        await ws.send(text)
        try:
            await asyncio.wait_for_ms(self._got.wait(), _CALL_TIMEOUT_MS)
        except asyncio.TimeoutError:
            log.warn("ocpp", "%s: no answer in %d ms", action, _CALL_TIMEOUT_MS)
            return None
        finally:
            self._inflight = None
        ev = self._result  # None when the link died while waiting
        if ev is not None and ev[0] == rpcmod.CALLRESULT:
            spec = confirmation_spec(action)
            if spec is not None:
                try:
                    validate(ev[2], spec)
                except OCPPError as e:
                    # A malformed answer counts as a failed call, never as data we act on.
                    log.warn("ocpp", "%s answer invalid: %s %s", action, e.code, e.description)
                    return (rpcmod.CALLERROR, ev[1], e.code, e.description, {})
        return ev

    def _abort_inflight(self, reason):
        self._inflight = None

    async def _sender(self, ws, reader):
        now = self.clock.now_ms
        if self.registration == "Pending":
            self.registration = None  # a new link: Pending needs a new BootNotification
        booted = self.registration == "Accepted"
        if booted:
            self.hooks.on_registered(True)  # reconnect: re-send statuses
        while not self._stop:
            if self._dead:
                return
            if not booted:
                trig = self._triggered() if self.registration == "Pending" else None
                if trig is not None:
                    if not await self._send_ram(ws, trig):
                        return
                    continue
                if now() < self._boot_wait_until:
                    await self._sleep_wake(self._boot_wait_until - now())
                    continue
                ev = await self._send_call(ws, "BootNotification", self.hooks.boot_payload())
                if self._dead:
                    return
                if ev is None or ev[0] != rpcmod.CALLRESULT:
                    self._boot_wait_until = now() + 30000
                    continue
                booted = self._on_boot(ev[2])
                continue
            hb = self.config.get("HeartbeatInterval")
            if hb > 0 and now() >= self.hb_due:
                self.hb_due = now() + hb * 1000
                self.send("Heartbeat", {})
            item = self._next_item()
            if item is None:
                wait = self.hb_due - now() if hb > 0 else 1000
                if len(self.txq) and self._tx_retry_at > now():
                    wait = min(wait, self._tx_retry_at - now())
                await self._sleep_wake(max(10, min(wait, 1000)))
                continue
            if isinstance(item, _Pending):
                if not await self._send_ram(ws, item):
                    return
            else:
                await self._send_tx(ws, item)

    async def _send_ram(self, ws, item):
        """Send one RAM-queue message and settle its handle; False when the link died."""
        self._ram.remove(item)
        ev = await self._send_call(ws, item.action, item.payload)
        if ev is None:
            self._fail(item, CallFailed("timeout"))
            return self._link_alive(ws)
        if ev[0] == rpcmod.CALLRESULT:
            item.result = ev[2]
            self._after_result(item.action, item.payload, ev[2], None)
            item.done.set()
        else:
            self._fail(item, CallFailed(ev[3] or ev[2], ev[2]))
        return True

    def _triggered(self):
        for p in self._ram:
            if p.triggered:
                return p
        return None

    def _link_alive(self, ws):
        return not self._dead

    def _on_boot(self, payload):
        status = payload.get("status")
        interval = payload.get("interval", 0)
        t = payload.get("currentTime")
        if t:
            self.hooks.set_time(t)
        self.registration = status
        self.hooks.on_registration(status)
        if status == "Accepted":
            if interval and interval > 0:
                self.config.set("HeartbeatInterval", interval)
            self.hb_due = self.clock.now_ms() + self.config.get("HeartbeatInterval") * 1000
            self.hooks.on_registered(False)
            return True
        wait = interval if interval and interval > 0 else 60
        self._boot_wait_until = self.clock.now_ms() + wait * 1000
        log.info("ocpp", "BootNotification %s: next in %d s", status, wait)
        return False

    async def _sleep_wake(self, ms):
        self._wake.clear()
        try:
            await asyncio.wait_for_ms(self._wake.wait(), int(ms))
        except asyncio.TimeoutError:
            pass

    def _next_item(self):
        """The oldest sendable message: RAM queue head or transaction queue head."""
        ram = self._ram[0] if self._ram else None
        if len(self.txq) and self.clock.now_ms() >= self._tx_retry_at:
            head = self.txq.peek()
            if head is not None:
                seq, item = head
                # Messages from an earlier boot are older than anything queued in this one.
                if ram is None or item.get("boot") != self.boot_id or item["ts"] <= ram.seq:
                    return (seq, item)
        return ram

    async def _send_tx(self, ws, head):
        seq, item = head
        action = item["action"]
        payload = item["payload"]
        if not self.hooks.fill_tx(item):
            # StopTransaction/MeterValues waiting for their StartTransaction answer: the Start is
            # always ahead of them in this queue, so this only happens after an unrecoverable
            # Start; the hook has decided what to do.
            self.txq.remove(seq)
            return
        ev = await self._send_call(ws, action, payload)
        if ev is not None and ev[0] == rpcmod.CALLRESULT:
            self.hooks.on_tx_answer(item, ev[2])
            self.txq.remove(seq)
            self._tx_retry_at = 0
            return
        if ev is None and not self._link_alive(ws):
            return  # offline: no attempt spent
        item["tries"] = item.get("tries", 0) + 1
        attempts = self.config.get("TransactionMessageAttempts")
        if item["tries"] >= attempts:
            log.error("ocpp", "%s dropped after %d attempts", action, item["tries"])
            self.hooks.on_tx_dropped(item)
            self.txq.remove(seq)
            self._tx_retry_at = 0
            return
        self.txq.update(seq, item)
        interval = self.config.get("TransactionMessageRetryInterval")
        self._tx_retry_at = self.clock.now_ms() + interval * 1000 * item["tries"]
        log.warn("ocpp", "%s failed (%s): retry %d in %d s", action,
                 "timeout" if ev is None else ev[2], item["tries"], interval * item["tries"])

    def _after_result(self, action, payload, result, err):
        if action == "Heartbeat" and result and result.get("currentTime"):
            self.hooks.set_time(result["currentTime"])  # Heartbeat sets the clock (4.6)
        elif action == "BootNotification" and result:
            # A triggered BootNotification while Accepted: take its time and interval.
            if result.get("currentTime"):
                self.hooks.set_time(result["currentTime"])
            if result.get("status") == "Accepted" and result.get("interval", 0) > 0:
                self.config.set("HeartbeatInterval", result["interval"])

    def _fail(self, p, err):
        p.error = err
        p.done.set()


def _urandom(n):
    import os

    return os.urandom(n)
