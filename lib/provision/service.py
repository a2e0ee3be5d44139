"""Provisioning service: runs sessions over one transport and carries out restart and reset.

The async shell around `provision.session` (sans-I/O). A transport delivers `open(conn)`,
`data(conn, bytes)` (stream transports: the simulator's TCP port, USB serial; frames carry a
u16 length) or `frame(conn, bytes)` (BLE: one GATT write is one frame), and `closed(conn)`;
the service answers through `link.send(conn, bytes)` and `link.close(conn)`. Bounds: at most
`_MAX_SESSIONS` connections at once. After an answer that commits or resets, the service waits
`_SETTLE_MS` for it to leave, then asks the charger to restart. It also keeps the last CSMS
connection outcome in flash, so INFO shows it after the restart into provisioning mode.
"""

import asyncio
from micropython import const

import log
from provision import codec as C
from provision import storage
from provision.device import ACT_FACTORY_RESET, Provisioner
from provision.session import Session

_MAX_SESSIONS = const(2)
_SETTLE_MS = const(500)  # provisioning.md section 6: let the OK leave before the reset
_TICK_MS = const(1000)
_STATUS_SAVE_MS = const(10000)  # at most one flash write of the CSMS outcome per 10 s
_OUTCOMES = ("Connected", "Rejected", "CertificateValidationFailed")


def _urandom(n):
    import os

    return os.urandom(n)


class ProvService:
    def __init__(self, store, board, charger, link, stream=True, frame_size=C.MAX_FRAME,
                 firmware_version=None, rand=None, sync=False):
        self.clock = charger.clock
        self.prov = Provisioner(store, board, charger, self.clock.now_ms(), firmware_version)
        self.store = store
        self.charger = charger
        self.link = link
        self.stream = stream
        self.sync = sync  # serial: a marker before each length (console output is skipped)
        self.frame_size = frame_size
        self.rand = rand or _urandom
        self.sessions = {}  # conn -> (Session, StreamDecoder or None)
        self.pending = None  # action waiting for its answer to leave
        last = store.load(storage.LAST_STATUS) or {}
        self._saved = (last.get("status"), last.get("error")) if isinstance(last, dict) else None
        self._saved_at = None
        self._task = None

    # ---- transport events -----------------------------------------------------------------
    def open(self, conn):
        if len(self.sessions) >= _MAX_SESSIONS:
            log.warn("provision", "connection refused: %d sessions open", len(self.sessions))
            self.link.close(conn)
            return
        dec = C.StreamDecoder(self.sync) if self.stream else None
        self.sessions[conn] = (Session(self.prov, self.frame_size, self.rand), dec)

    def data(self, conn, chunk):
        entry = self.sessions.get(conn)
        if entry is None:
            return
        dec = entry[1]
        try:
            dec.feed(chunk)
            while True:
                frm = dec.next_frame()
                if frm is None:
                    return
                self.frame(conn, frm)
                if conn not in self.sessions:
                    return
        except C.ProtocolError as e:
            log.warn("provision", "stream refused: %s", e)
            self._drop(conn)

    def frame(self, conn, frm):
        entry = self.sessions.get(conn)
        if entry is None:
            return
        self._emit(conn, entry[0], entry[0].feed(frm, self.clock.now_ms()))

    def mtu(self, conn, mtu):
        """BLE MTU exchanged: notifications may now carry MTU - 3 bytes per frame."""
        entry = self.sessions.get(conn)
        if entry is not None:
            entry[0].frame_size = max(C.MIN_FRAME, min(mtu - 3, C.MAX_FRAME))

    def closed(self, conn):
        entry = self.sessions.pop(conn, None)
        if entry is not None:
            entry[0].close()

    # ---- output -----------------------------------------------------------------------------
    def _emit(self, conn, sess, frames):
        if frames:
            if self.stream:
                self.link.send(conn, b"".join(C.stream_frame(f, self.sync) for f in frames))
            else:
                for f in frames:
                    self.link.send(conn, f)
        if sess.action is not None and self.pending is None:
            self.pending = sess.action
            asyncio.create_task(self._finish(sess.action))
        if sess.closed:
            self._drop(conn)

    def _drop(self, conn):
        entry = self.sessions.pop(conn, None)
        if entry is not None:
            entry[0].close()
        self.link.close(conn)

    async def _finish(self, action):
        await asyncio.sleep_ms(_SETTLE_MS)
        if action == ACT_FACTORY_RESET:
            self.factory_reset("provisioning session")
        else:
            self.charger.request_restart("provisioning")

    def factory_reset(self, why):
        """Wipe provisioning and stored state (not the device secret) at the restart."""
        log.warn("provision", "factory reset requested (%s)", why)
        try:
            storage.request_factory_reset(self.store)
        except OSError as e:
            log.error("provision", "cannot mark the factory reset: %s", e)
            return
        self.charger.request_restart("factory reset")

    # ---- housekeeping -------------------------------------------------------------------------
    def start(self):
        self._task = asyncio.create_task(self.run())
        return self._task

    async def run(self):
        while True:
            await asyncio.sleep_ms(_TICK_MS)
            try:
                self.tick()
            except Exception as e:  # housekeeping must never stop provisioning
                log.exception("provision", "tick failed", e)

    def tick(self):
        now = self.clock.now_ms()
        for conn, entry in list(self.sessions.items()):
            self._emit(conn, entry[0], entry[0].tick(now))
        self._keep_status(now)
        refresh = getattr(self.link, "refresh", None)
        if refresh is not None:  # BLE: the INFO characteristic is read without a frame
            refresh(C.tlv(self.prov.info(now)))

    def _keep_status(self, now):
        ch = self.charger
        status = getattr(ch, "conn_status", None)
        client = getattr(ch, "client", None)
        if status not in _OUTCOMES or client is None:
            return
        cur = (status, client.last_error if status != "Connected" else None)
        if cur == self._saved:
            return
        if self._saved_at is not None and now - self._saved_at < _STATUS_SAVE_MS:
            return
        try:
            self.store.save(storage.LAST_STATUS, {"status": cur[0], "error": cur[1]})
            self._saved = cur
            self._saved_at = now
        except OSError as e:
            log.warn("provision", "cannot keep the connection outcome: %s", e)

    def close(self):
        for conn in list(self.sessions):
            self._drop(conn)
        if self._task is not None:
            self._task.cancel()
