"""The charger application: wires board, EVSE logic, sessions, storage and the OCPP client.

`Charger(board, store)` owns the connectors and the OCPP client and runs the control loop
(`_CONTROL_MS`), the RFID loop and the OCPP connection as asyncio tasks. It is also the context
handed to OCPP handlers (`ctx`) and the hooks object of the OCPP client. The same code runs on the
ESP32 and in the simulator: only `board` differs.
"""

import asyncio
import gc
from micropython import const

import log
from clock import Clock
from ocpp16 import config as cfg
from ocpp16.timefmt import parse_rfc3339
from charger.connector import Connector
from charger.idtag import uid_to_id_tag
from charger import session as sess
from charger import ledstate

FIRMWARE_VERSION = "0.1.0"
_CONTROL_MS = const(20)
_TAPS = const(4)  # bound of the tap queue; a fifth tap while four wait is ignored


class Charger:
    def __init__(self, board, store, clock=None):
        self.board = board
        self.store = store
        self.clock = clock or Clock()
        self.config = cfg.Config(store)
        self.connectors = []
        self.client = None
        self.registration = None
        self.conn_status = "Connecting"
        self.led = None
        self._taps = []
        self._tap_event = asyncio.Event()
        self._tasks = []
        self.restart_requested = None
        self.prov = store.load("provisioning", {}) or {}
        self._declare_keys()
        self._apply_preconfig()
        for i in range(board.connectors):
            self.connectors.append(Connector(i + 1, self))
        self.txids = store.load("txids", {}) or {}
        st = store.load("session", {}) or {}
        self.next_ref = st.get("next_ref", 1)
        self.status0 = None
        avail = store.load("availability") or []
        for c, op in zip(self.connectors, avail):
            c.operative = bool(op)

    # ---- configuration --------------------------------------------------------------------
    def _declare_keys(self):
        from ocpp16 import core

        core.declare_keys(self.config, self.board)
        c = self.config
        c.declare("AuthEnabled", cfg.BOOL, True)
        c.declare("FreeVendIdTag", cfg.STR, "FREEVEND", check=_id_tag_check)
        c.declare("IdTagByteOrder", cfg.STR, "little", check=_one_of(("little", "big")))
        c.declare("IdTagCase", cfg.STR, "upper", check=_one_of(("upper", "lower")))
        c.declare("MaxCurrent", cfg.INT, int(self.board.max_current), check=_amps_check)
        c.declare("ReconnectBackoffMin", cfg.INT, 2, check=_range(1, 3600))
        c.declare("ReconnectBackoffMax", cfg.INT, 120, check=_range(1, 86400))

    def _apply_preconfig(self):
        """`--config KEY=VALUE` from the simulator's command line, applied once after declare."""
        pre = self.store.load("preconfig")
        if not pre:
            return
        for key, text in pre.items():
            if not self.config.has(key):
                log.warn("config", "--config %s: unknown key", key)
                continue
            try:
                self.config.set_text(key, str(text))
            except (ValueError, TypeError) as e:
                log.warn("config", "--config %s refused: %s", key, e)
        self.store.delete("preconfig")

    def settings(self):
        """Connection settings for the OCPP client (from the provisioning record)."""
        p = self.prov
        s = {"url": p.get("url"), "cp_id": p.get("cp_id"), "auth_key": None, "ssl_ctx": None}
        pw = p.get("password")
        if pw:
            from net.auth import authorization_key_bytes

            s["auth_key"] = authorization_key_bytes(pw)
        if s["url"] and s["url"].startswith("wss:"):
            ca = self.store.load_blob("ca")
            if ca is None:
                # Never fall back to unverified TLS: without a CA nothing can be validated.
                s["refuse"] = ("CertificateValidationFailed", "wss:// needs a CA certificate")
            else:
                from net.tls import client_context

                s["ssl_ctx"] = client_context(ca)
        return s

    # ---- OCPP client hooks ----------------------------------------------------------------
    def boot_payload(self):
        b = self.board
        return {
            "chargePointVendor": b.vendor,
            "chargePointModel": b.model,
            "firmwareVersion": FIRMWARE_VERSION,
            "chargePointSerialNumber": b.serial,
        }

    def set_time(self, text):
        try:
            self.clock.set_unix(parse_rfc3339(text))
        except ValueError:
            # Be lenient with the one value we only read: a CSMS that omits the UTC offset
            # means UTC in practice.
            try:
                self.clock.set_unix(parse_rfc3339(text + "Z"))
            except (ValueError, TypeError):
                log.warn("clock", "CSMS sent a bad time %r", text)

    def on_connection(self, status):
        self.conn_status = status

    def on_registration(self, status):
        self.registration = status

    def on_registered(self, reconnect):
        """Boot accepted (or link back): report every connector's status again."""
        self.status0 = None
        self.send_status0()
        for c in self.connectors:
            self.send_status(c)

    def fill_tx(self, item):
        return sess.fill_tx(self, item)

    def on_tx_answer(self, item, payload):
        sess.on_tx_answer(self, item, payload)

    def on_tx_dropped(self, item):
        sess.on_tx_answer(self, item, None)

    # ---- status ---------------------------------------------------------------------------
    def status_changed(self, c):
        log.info("status", "connector %d %s", c.id, c.status)
        self.send_status(c)

    def send_status(self, c):
        if self.client is None or self.registration != "Accepted" or c.status is None:
            return
        p = {"connectorId": c.id, "errorCode": c.error_code, "status": c.status}
        ts = self.clock.timestamp()
        if ts:
            p["timestamp"] = ts
        self.client.send("StatusNotification", p)

    def send_status0(self):
        s = "Available"
        if all(not c.operative for c in self.connectors):
            s = "Unavailable"
        if s != self.status0 and self.client is not None and self.registration == "Accepted":
            self.status0 = s
            p = {"connectorId": 0, "errorCode": "NoError", "status": s}
            ts = self.clock.timestamp()
            if ts:
                p["timestamp"] = ts
            self.client.send("StatusNotification", p)

    # ---- transactions (session rules in charger.session) ------------------------------------
    def start_transaction(self, c, id_tag, parent):
        sess.start(self, c, id_tag, parent)

    def stop_transaction(self, c, reason, id_tag=None):
        sess.stop(self, c, reason, id_tag)

    # ---- CSMS requests (handlers in ocpp16.core call these) --------------------------------
    def remote_start(self, cid, id_tag, profile):
        """RemoteStartTransaction: Accepted when a connector can take it (OCPP 1.6 5.11)."""
        if cid is not None:
            if not 1 <= cid <= len(self.connectors):
                return {"status": "Rejected"}
            c = self.connectors[cid - 1]
        else:
            free = [c for c in self.connectors if c.tx is None and not c.finishing]
            plugged = [c for c in free if c.plugged]
            c = (plugged or free or [None])[0]
        if c is None or c.tx is not None or not c.operative or c.fault is not None:
            return {"status": "Rejected"}
        if self.config.get("AuthorizeRemoteTxRequests"):
            self._tasks.append(asyncio.create_task(self._remote_authorize(c, id_tag)))
        else:
            sess.prepare(self, c, id_tag, None)
        return {"status": "Accepted"}

    async def _remote_authorize(self, c, id_tag):
        status, parent = await sess.authorize(self, id_tag)
        if status == "Accepted" and c.tx is None:
            sess.prepare(self, c, id_tag, parent)
        else:
            log.info("session", "remote start not authorised: %s", status)

    def change_availability(self, cid, operative):
        targets = self.connectors if cid == 0 else [self.connectors[cid - 1]]
        busy = False
        for c in targets:
            if c.tx is not None and not operative:
                c.scheduled_operative = operative
                busy = True
            else:
                c.operative = operative
                c.scheduled_operative = None
        self.store.save("availability", [c.operative for c in self.connectors])
        return "Scheduled" if busy else "Accepted"

    def clear_cache(self):
        return "Accepted"

    def unlock(self, c):
        if not self.board.has_lock:
            return "NotSupported"
        if c.tx is not None:
            self.stop_transaction(c, "UnlockCommand")
        return "Unlocked" if self.board.unlock(c.id) else "UnlockFailed"

    # ---- RFID -----------------------------------------------------------------------------
    def tap(self, uid):
        """Called by the board's reader (loop context) with the UID bytes in reader order."""
        if len(self._taps) >= _TAPS:
            log.warn("rfid", "tap ignored: %d taps waiting", len(self._taps))
            return
        self._taps.append(uid)
        self._tap_event.set()

    async def _rfid_loop(self):
        while True:
            await self._tap_event.wait()
            self._tap_event.clear()
            while self._taps:
                uid = self._taps.pop(0)
                try:
                    tag = uid_to_id_tag(
                        uid, self.config.get("IdTagByteOrder"), self.config.get("IdTagCase")
                    )
                except ValueError as e:
                    log.warn("rfid", "card refused: %s", e)
                    continue
                try:
                    await sess.on_card(self, tag)
                except Exception as e:  # one bad tap must never stop the reader
                    log.exception("rfid", "tap handling failed", e)

    # ---- control loop ---------------------------------------------------------------------
    async def _control_loop(self):
        while True:
            try:
                self.control_step()
            except Exception as e:  # fail toward an open relay, keep the loop alive
                log.exception("control", "control step failed: relays opened", e)
                for c in self.connectors:
                    self.board.relay(c.id, False)
                    self.board.set_duty(c.id, 1.0)
                    c.relay, c.duty = False, 1.0
            await asyncio.sleep_ms(_CONTROL_MS)

    def control_step(self):
        now = self.clock.now_ms()
        faults = self.board.faults()
        for c in self.connectors:
            c.sense(now)
            c.step(now, c.limit(now), c.faults(now, faults))
            sess.meter_values(self, c, now)
        self.send_status0()
        pattern = ledstate.pattern(self)
        if pattern != self.led:
            self.led = pattern
            self.board.led(pattern)

    # ---- lifecycle ------------------------------------------------------------------------
    def request_restart(self, reason):
        """Restart after the current answer went out (Reset, provisioning, firmware update)."""
        log.info("charger", "restart requested: %s", reason)
        self.restart_requested = reason

    async def run(self):
        from ocpp16.client import OCPPClient
        from ocpp16.dispatch import Dispatcher
        from ocpp16 import core
        from store.queue import TxQueue
        from net.wsclient import WSClient

        d = Dispatcher()
        d.register(core.HANDLERS)
        self.txq = TxQueue(self.store.root, store=self.store, budget=getattr(self.board, "txq_budget", None))
        self.client = OCPPClient(
            self.board.link,
            self.clock,
            self.config,
            d,
            self.txq,
            self.settings,
            self,
            lambda link: WSClient(link),
        )
        sess.recover_after_boot(self)
        gc.collect()
        self._tasks = [
            asyncio.create_task(self._control_loop()),
            asyncio.create_task(self._rfid_loop()),
            asyncio.create_task(self.client.run()),
        ]
        await self.board.start(self)
        while self.restart_requested is None:
            await asyncio.sleep_ms(100)
        await self.shutdown()
        await self.board.close()
        self.board.reset()

    async def shutdown(self):
        """Clean stop: relays open, link closed (the answer to Reset has already gone out)."""
        for c in self.connectors:
            self.board.relay(c.id, False)
            self.board.set_duty(c.id, 1.0)
        if self.client is not None:
            self.client.stop()
            ws = self.client._ws
            if ws is not None:
                try:
                    await ws.close()
                except Exception:  # dying link: nothing more to do
                    pass
        for t in self._tasks:
            t.cancel()

    # ---- status for the simulator and diagnostics ----------------------------------------
    def snapshot(self):
        gc.collect()
        free = gc.mem_free()
        used = gc.mem_alloc()
        conns = []
        for c in self.connectors:
            tx = c.tx
            conns.append(
                {
                    "id": c.id,
                    "status": c.status,
                    "pilot": c.pilot,
                    "duty": round(c.duty, 4),
                    "relay": c.relay,
                    "transaction_id": tx.get("tx_id") if tx else None,
                    "id_tag": tx["id_tag"] if tx else None,
                    "energy_wh": int(c.energy_wh),
                    "power_w": int(c.power_w),
                    "offered_a": round(c.control.offered_a, 1),
                    "error_code": c.error_code,
                }
            )
        return {
            "ocpp": self.conn_status,
            "registration": self.registration,
            "led": self.led,
            "limit_a": round(min(c.limit_a for c in self.connectors), 1),
            "queued_messages": len(self.txq) if self.client else 0,
            "heap_free": free,
            "heap_used": used,
            "last_error": self.client.last_error if self.client else None,
            "connectors": conns,
        }


def _one_of(values):
    def check(v):
        if v not in values:
            raise ValueError("must be one of " + ", ".join(values))

    return check


def _range(lo, hi):
    def check(v):
        if not lo <= v <= hi:
            raise ValueError("must be {}..{}".format(lo, hi))

    return check


def _amps_check(v):
    if not 6 <= v <= 80:
        raise ValueError("must be 6..80 A")


def _id_tag_check(v):
    if not 1 <= len(v) <= 20:
        raise ValueError("idTag must be 1..20 characters")
