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
from ocpp16.timefmt import parse_rfc3339_ms
from charger.connector import Connector
from charger.idtag import uid_to_id_tag
from charger import session as sess
from charger import ledstate
from charger import availability
from charger.metering import Aligned
from charger.status import StatusReporter

FIRMWARE_VERSION = "0.1.0"
_CONTROL_MS = const(20)
_TAPS = const(4)  # bound of the tap queue; a fifth tap while four wait is ignored
_SOFT_RESET_FLUSH_MS = const(10000)  # Soft reset: time for the StopTransactions to go out


class Charger:
    def __init__(self, board, store, clock=None):
        from net.wsclient import WSClient

        # One WebSocket client for every connection, made before anything else: its buffers
        # (8 KB and more) are allocated once while the heap is still in one piece, and a
        # reconnect never needs a large free block again.
        self._wsclient = WSClient(board.link)
        self.board = board
        self.store = store
        self.clock = clock or Clock()
        self.config = cfg.Config(store)
        self.connectors = []
        self.client = None
        self.smart = None  # ocpp16.smartcharging.SmartCharging, from run()
        self.registration = None
        self.conn_status = "Connecting"
        self.led = None
        self._taps = []
        self._tap_event = asyncio.Event()
        self._tasks = []
        self.restart_requested = None
        self.firmware_version = FIRMWARE_VERSION  # the active bundle's, from ocpp16.firmware.boot
        self.heap_peak = 0  # highest gc.mem_alloc() the control loop saw (diagnostics)
        self.monitor = None  # charger.monitor.LoopMonitor when the board asks for bench mode
        self.prov = store.load("provisioning", {}) or {}
        self._declare_keys()
        self._apply_preconfig()
        for i in range(board.connectors):
            self.connectors.append(Connector(i + 1, self))
        self.txids = store.load("txids", {}) or {}
        st = store.load("session", {}) or {}
        self.next_ref = st.get("next_ref", 1)
        # Hooks of other feature modules (see charger.session): local list / cache, listeners
        # told of transaction start and stop, DataTransfer vendors (ocpp16.core.data_transfer).
        self.local_auth = None
        self.tx_listeners = []
        self.vendors = {}
        self.operative = True  # the whole charge point (ChangeAvailability on connector 0)
        self.scheduled_operative = None
        availability.load(self)
        from ocpp16.localauth import LocalAuth
        from ocpp16.reservation import Reservations

        from charger.authcache import AuthCache

        # The Local Authorization List first, then the authorization cache (OCPP 1.6 3.5.3).
        self.local_auth = LocalAuth(self, AuthCache(store, self.clock, self.config))
        self.reservations = Reservations(self)  # marks connector.reserved; ends used ones
        self.tx_listeners.append(self.reservations)
        self.reporter = StatusReporter(self)
        self.aligned = Aligned(self)
        self._restart_flush = False

    # ---- configuration --------------------------------------------------------------------
    def _declare_keys(self):
        from ocpp16 import core, firmware, smartcharging

        core.declare_keys(self.config, self.board)
        firmware.declare_keys(self.config, self.board)
        smartcharging.declare_keys(self.config, self.board)
        from ocpp16 import localauth, reservation

        localauth.declare_keys(self.config, self.board)
        reservation.declare_keys(self.config, self.board)
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
        hold = getattr(self, "hold_csms", None)
        if hold:  # BLE provisioning mode (provision.radio): no TLS while the radio is on
            return {"refuse": ("Offline", hold)}
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

                cert = key = None
                if p.get("profile") == 3:  # mutual TLS with the provisioned client certificate
                    cert = self.store.load_blob("client_cert")
                    key = self.store.load_blob("client_key")
                    if cert is None or key is None:
                        cert = key = None
                s["ssl_ctx"] = client_context(ca, cert, key)
        return s

    # ---- OCPP client hooks ----------------------------------------------------------------
    def boot_payload(self):
        b = self.board
        return {
            "chargePointVendor": b.vendor,
            "chargePointModel": b.model,
            "firmwareVersion": self.firmware_version,
            "chargePointSerialNumber": b.serial,
        }

    def set_time(self, text):
        try:
            self.clock.set_unix_ms(parse_rfc3339_ms(text))
        except ValueError:
            # Be lenient with the one value we only read: a CSMS that omits the UTC offset
            # means UTC in practice.
            try:
                self.clock.set_unix_ms(parse_rfc3339_ms(text + "Z"))
            except (ValueError, TypeError):
                log.warn("clock", "CSMS sent a bad time %r", text)

    def on_connection(self, status):
        self.conn_status = status

    def on_registration(self, status):
        self.registration = status

    def on_registered(self, reconnect):
        """Boot accepted (or link back): report every connector's status again."""
        self.reporter.resync()

    def fill_tx(self, item):
        return sess.fill_tx(self, item)

    def on_tx_answer(self, item, payload):
        sess.on_tx_answer(self, item, payload)

    def on_tx_dropped(self, item):
        sess.on_tx_answer(self, item, None)

    # ---- status ---------------------------------------------------------------------------
    def status_changed(self, c):
        """A connector's status changed: charger.status reports it (MinimumStatusDuration)."""
        self.reporter.update(c.id, c.status, c.error_code, c.vendor_error(), self.clock.now_ms())

    def send_status(self, cid):
        """Send connector `cid`'s (an id, 0 = charge point, or a Connector) current status now
        (TriggerMessage StatusNotification)."""
        self.reporter.send_now(getattr(cid, "id", cid))

    def meter_sample(self, c, context):
        """Connector c's MeterValuesSampledData values now (TriggerMessage MeterValues)."""
        from charger.metering import sampled_values

        return sampled_values(self, c, self.config.get("MeterValuesSampledData"), context)

    # ---- transactions (session rules in charger.session) ------------------------------------
    def start_transaction(self, c, id_tag, parent, profile=None):
        sess.start(self, c, id_tag, parent, profile)

    def stop_transaction(self, c, reason, id_tag=None):
        sess.stop(self, c, reason, id_tag)

    # ---- CSMS requests (handlers in ocpp16.core call these) --------------------------------
    def remote_start(self, cid, id_tag, profile):
        """RemoteStartTransaction: Accepted when a connector can take it (OCPP 1.6 5.11).

        A given connector must be free (no transaction, operative, no fault, not reserved for
        another idTag); without one the charger picks as for a card. With
        AuthorizeRemoteTxRequests the idTag is authorised first; the session then starts on
        plug-in (ConnectionTimeOut) or at once when the EV is already plugged in.
        """
        if cid is not None:
            if not 1 <= cid <= len(self.connectors):
                return "Rejected"
            c = self.connectors[cid - 1]
            if not sess.can_take(c, id_tag, None):
                return "Rejected"
        else:
            c = sess.choose_connector(self, id_tag, None)
            if c is None:
                return "Rejected"
        if profile is not None and not self.smart.expect_tx_profile(c, profile, id_tag):
            return "Rejected"  # 5.16.2: it must be a TxProfile we can run
        if self.config.get("AuthorizeRemoteTxRequests"):
            # Finished authorisations leave the task list, so it stays bounded.
            self._tasks = [t for t in self._tasks if not t.done()]
            self._tasks.append(asyncio.create_task(self._remote_authorize(c, id_tag, profile)))
        else:
            sess.prepare(self, c, id_tag, None, profile)
        return "Accepted"

    async def _remote_authorize(self, c, id_tag, profile):
        status, parent = await sess.authorize(self, id_tag)
        if status == "Accepted" and sess.can_take(c, id_tag, parent):
            sess.prepare(self, c, id_tag, parent, profile)
        else:
            log.info("session", "remote start not authorised: %s", status)

    def change_availability(self, cid, operative):
        """ChangeAvailability (OCPP 1.6 5.2): rules and persistence in charger.availability."""
        return availability.change(self, cid, operative)

    def save_availability(self):
        availability.save(self)

    def clear_cache(self):
        """ClearCache: empties the authorisation cache of `local_auth` when it keeps one."""
        fn = getattr(self.local_auth, "clear_cache", None)
        if fn is not None:
            fn()
        return "Accepted"

    def unlock(self, c):
        """UnlockConnector (5.18): a running transaction stops first (reason UnlockCommand)."""
        if not self.board.has_lock:
            return "NotSupported"
        if c.tx is not None:
            self.stop_transaction(c, "UnlockCommand")
        return "Unlocked" if self.board.unlock(c.id) else "UnlockFailed"

    async def data_transfer(self, vendor_id, message_id=None, data=None):
        """Charger -> CSMS DataTransfer: returns (status, data); raises ValueError for a bad
        field, CallFailed when it cannot be delivered (offline, not Accepted, CALLERROR)."""
        from ocpp16.core import send_data_transfer

        return await send_data_transfer(self.client, vendor_id, message_id, data)

    # ---- firmware management (ocpp16.firmware; TriggerMessage asks these) -------------------
    def firmware_status(self):
        """FirmwareStatusNotification status to report now: Idle unless an update runs."""
        from ocpp16.firmware import firmware_status

        return firmware_status(self)

    def diagnostics_status(self):
        """DiagnosticsStatusNotification status to report now: Uploading or Idle."""
        from ocpp16.firmware import diagnostics_status

        return diagnostics_status(self)

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
        self.reservations.tick()  # expiry, and which connectors show Reserved
        for c in self.connectors:
            c.sense(now)
            c.step(now, c.limit(now), c.faults(now, faults))
            sess.meter_values(self, c, now)
        availability.apply_scheduled(self)
        for c in self.aligned.tick():
            sess.persist(self, c)
        self.reporter.tick(now)
        used = gc.mem_alloc()  # a scan of the allocation table, no allocation: fine at 50 Hz
        if used > self.heap_peak:
            self.heap_peak = used
        pattern = ledstate.pattern(self)
        if pattern != self.led:
            self.led = pattern
            self.board.led(pattern)

    # ---- lifecycle ------------------------------------------------------------------------
    def request_restart(self, reason):
        """Restart after the current answer went out (Reset, provisioning, firmware update).

        Transactions still running then stop with reason Reboot (PowerLoss for the simulator's
        `shutdown`, a switch-off); their StopTransactions wait in the persistent queue."""
        log.info("charger", "restart requested: %s", reason)
        self.restart_requested = reason

    def reset(self, kind):
        """Reset Hard/Soft (5.14): stop every transaction (HardReset/SoftReset), then restart.
        A Soft reset first gives the StopTransactions up to _SOFT_RESET_FLUSH_MS to reach the
        CSMS; after a Hard one the queue delivers them after the next BootNotification."""
        reason = "HardReset" if kind == "Hard" else "SoftReset"
        for c in self.connectors:
            if c.tx is not None:
                self.stop_transaction(c, reason)
        self._restart_flush = kind != "Hard"
        self.request_restart("Reset " + kind)

    async def _before_restart(self):
        reason = "PowerLoss" if self.restart_requested == "shutdown" else "Reboot"
        for c in self.connectors:
            if c.tx is not None:
                self.stop_transaction(c, reason)
        if not self._restart_flush:
            return
        end = self.clock.now_ms() + _SOFT_RESET_FLUSH_MS
        while len(self.txq) and self.client.online and self.clock.now_ms() < end:
            await asyncio.sleep_ms(50)

    async def run(self):
        from ocpp16.client import OCPPClient
        from ocpp16.dispatch import Dispatcher
        from ocpp16 import core
        from store.queue import TxQueue
        d = Dispatcher()
        d.register(core.HANDLERS)
        from ocpp16 import smartcharging

        self.smart = smartcharging.SmartCharging(self)
        d.register(smartcharging.HANDLERS)
        from ocpp16 import localauth, reservation, trigger

        d.register(localauth.HANDLERS)
        d.register(reservation.HANDLERS)
        d.register(trigger.HANDLERS)
        from ocpp16 import firmware

        d.register(firmware.HANDLERS)
        self.txq = TxQueue(self.store.root, store=self.store, budget=getattr(self.board, "txq_budget", None))
        self.client = OCPPClient(
            self.board.link,
            self.clock,
            self.config,
            d,
            self.txq,
            self.settings,
            self,
            lambda link: self._wsclient,
        )
        client = self.client
        self.config.key("HeartbeatInterval").on_change = lambda v: client.heartbeat_changed()
        self.config.key("WebSocketPingInterval").on_change = lambda v: client.ping_changed()
        sess.recover_after_boot(self)
        firmware.boot(self)  # running version; resumes a firmware update across the restart
        bench = getattr(self.board, "bench", None) or {}
        if bench.get("gc_threshold"):
            gc.threshold(int(bench["gc_threshold"]))  # collect often: heap peak ~ live peak
        gc.collect()
        self._tasks = [
            asyncio.create_task(self._control_loop()),
            asyncio.create_task(self._rfid_loop()),
            asyncio.create_task(self.client.run()),
        ]
        if bench.get("monitor"):
            from charger.monitor import LoopMonitor

            self.monitor = LoopMonitor(self.clock)
            self._tasks.append(asyncio.create_task(self.monitor.run()))
        await self.board.start(self)
        while self.restart_requested is None:
            await asyncio.sleep_ms(100)
        await self._before_restart()
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
        m = self.monitor
        # Read the instruments before this snapshot's own gc.collect() stalls the loop.
        peak = max(self.heap_peak, m.heap_peak) if m else self.heap_peak
        stall = m.stall_max_us / 1000 if m else None
        stalls = m.by_second() if m else None
        uptime = self.clock.now_ms()
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
            "heap_peak": peak,
            "loop_stall_max_ms": stall,
            "loop_stall_by_s": stalls,
            "uptime_ms": uptime,
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
