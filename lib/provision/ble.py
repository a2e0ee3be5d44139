"""BLE link for provisioning on the ESP32: the `bluetooth` module, imported only on the device.

GATT per provisioning.md section 2: one vendor service with INFO (read: the plaintext INFO
records), RX (write with response, 512-byte buffer: one write is one frame) and TX (read,
notify: frames to the client). Advertises the service UUID (flags 3 bytes + UUID 18 = 21 of
31) with the name `EVSE-XXXX` in the scan response, and again after each disconnect while
`allowed()` says so. The IRQ handler runs on the NimBLE host task: it only copies the written
value and queues it (bound `_QUEUE`, further writes are dropped and counted; the client resends
after a NACK or its ACK timeout); an asyncio task feeds the queue to the ProvService.
`stop()` turns the radio off, which must happen before any TLS starts (section 7).
"""

import asyncio
from micropython import const

import log

SERVICE_UUID = "5e7a0001-8c3b-4f2a-9d1e-0c5f3e9a7b10"
INFO_UUID = "5e7a0002-8c3b-4f2a-9d1e-0c5f3e9a7b10"
RX_UUID = "5e7a0003-8c3b-4f2a-9d1e-0c5f3e9a7b10"
TX_UUID = "5e7a0004-8c3b-4f2a-9d1e-0c5f3e9a7b10"
_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)
_FLAG_READ = const(0x0002)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)
_RX_BUFFER = const(512)
_INFO_BUFFER = const(256)
_QUEUE = const(12)  # IRQ events waiting for the task (the client keeps <= 8 frames in flight)
_ADV_INTERVAL_US = const(200000)
_MTU = const(247)  # asked for; the central decides (iOS about 185)
_EV_OPEN = const(0)
_EV_CLOSE = const(1)
_EV_FRAME = const(2)
_EV_MTU = const(3)


def adv_payload(uuid_bytes):
    """Advertising data: flags (LE general discoverable, no BR/EDR) + complete 128-bit UUID."""
    return b"\x02\x01\x06" + bytes((len(uuid_bytes) + 1, 0x07)) + bytes(uuid_bytes)


def resp_payload(name):
    n = name.encode()[:29]
    return bytes((len(n) + 1, 0x09)) + n


class BLELink:
    def __init__(self, name, allowed=None, bluetooth=None):
        """`name`: EVSE-XXXX; `allowed()`: may we advertise now (window open or unprovisioned);
        `bluetooth`: the module (tests pass a fake; the device imports its own in start())."""
        self.name = name
        self.allowed = allowed or (lambda: True)
        self._bt = bluetooth
        self.ble = None
        self.service = None
        self.conn = None
        self.active = False
        self.dropped = 0
        self._q = []
        self._flag = None
        self._task = None

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self, service):
        bt = self._bt
        if bt is None:
            import bluetooth as bt

            self._bt = bt
        self.service = service
        self._flag = asyncio.ThreadSafeFlag()
        ble = self.ble = bt.BLE()
        ble.active(True)
        try:
            ble.config(gap_name=self.name, mtu=_MTU)
        except (ValueError, OSError) as e:  # older firmware: keep the defaults
            log.warn("ble", "config: %s", e)
        ble.irq(self._irq)
        chars = ((bt.UUID(INFO_UUID), _FLAG_READ), (bt.UUID(RX_UUID), _FLAG_WRITE),
                 (bt.UUID(TX_UUID), _FLAG_READ | _FLAG_NOTIFY))
        ((self.h_info, self.h_rx, self.h_tx),) = ble.gatts_register_services(
            ((bt.UUID(SERVICE_UUID), chars),))
        # The default value buffer is 20 bytes and longer writes are cut silently (section 10).
        ble.gatts_set_buffer(self.h_rx, _RX_BUFFER, False)
        ble.gatts_set_buffer(self.h_info, _INFO_BUFFER)
        self.active = True
        self.advertise()
        self._task = asyncio.create_task(self._pump())
        log.info("ble", "provisioning over BLE as %s", self.name)

    def stop(self):
        """Radio off (NimBLE deinitialised): required before TLS (provisioning.md section 7)."""
        if not self.active:
            return
        self.active = False
        if self._task is not None:
            self._task.cancel()
        try:
            self.ble.gap_advertise(None)
            if self.conn is not None:
                self.ble.gap_disconnect(self.conn)
        except OSError:
            pass
        self.ble.active(False)
        log.info("ble", "radio off")

    def advertise(self):
        if not self.active or self.conn is not None or not self.allowed():
            return
        uuid = bytes(self._bt.UUID(SERVICE_UUID))
        self.ble.gap_advertise(_ADV_INTERVAL_US, adv_data=adv_payload(uuid),
                               resp_data=resp_payload(self.name), connectable=True)

    # ---- IRQ (NimBLE host task): copy, queue, wake; nothing else --------------------------------
    def _irq(self, event, data):
        if event == _IRQ_GATTS_WRITE:
            if data[1] == self.h_rx:
                self._queue(_EV_FRAME, data[0], bytes(self.ble.gatts_read(self.h_rx)))
        elif event == _IRQ_CENTRAL_CONNECT:
            self._queue(_EV_OPEN, data[0], None)
        elif event == _IRQ_CENTRAL_DISCONNECT:
            self._queue(_EV_CLOSE, data[0], None)
        elif event == _IRQ_MTU_EXCHANGED:
            self._queue(_EV_MTU, data[0], data[1])

    def _queue(self, kind, conn, value):
        if len(self._q) >= _QUEUE and kind == _EV_FRAME:
            self.dropped += 1
            return
        self._q.append((kind, conn, value))
        self._flag.set()

    async def _pump(self):
        while True:
            await self._flag.wait()
            while self._q:
                kind, conn, value = self._q.pop(0)
                try:
                    self._event(kind, conn, value)
                except Exception as e:  # one bad event must not stop provisioning
                    log.exception("ble", "event failed", e)

    def _event(self, kind, conn, value):
        if kind == _EV_FRAME:
            self.service.frame(conn, value)
        elif kind == _EV_OPEN:
            self.conn = conn  # NimBLE stops advertising on a connection
            self.service.open(conn)
        elif kind == _EV_CLOSE:
            self.service.closed(conn)
            self.conn = None
            self.advertise()
        elif kind == _EV_MTU:
            self.service.mtu(conn, value)

    # ---- the ProvService's link interface -------------------------------------------------------
    def send(self, conn, frame):
        try:
            self.ble.gatts_notify(conn, self.h_tx, frame)
        except OSError as e:  # link gone: the disconnect event follows
            log.warn("ble", "notify failed: %s", e)

    def close(self, conn):
        try:
            self.ble.gap_disconnect(conn)
        except OSError:
            pass

    def refresh(self, info):
        """Put the current INFO records in the readable characteristic."""
        if self.active:
            self.ble.gatts_write(self.h_info, info[:_INFO_BUFFER])
