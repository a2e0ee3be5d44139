"""Host side of the provisioning protocol: transports (TCP simulator, USB serial, BLE) and client.

Shares the wire format and crypto with the firmware (lib/provision/codec.py, crypto.py, run
here under CPython), so there is one protocol definition (provisioning.md section 8). A
transport moves frames: `send(frame)`, `recv(timeout) -> frame`, `info() -> {tag: bytes}`,
`frame_size`, `close()`. `ProvClient` runs the handshake, seals every later message, sends
messages as BEGIN/DATA with at most `WINDOW` unacknowledged frames, resumes after a NACK and
reassembles the device's answers. bleak and pyserial are imported only by their transports.
"""

import asyncio
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lib_module(name):
    # Loaded by path: on sys.path the name `provision` is also this CLI (tools/provision.py).
    spec = importlib.util.spec_from_file_location(
        "evse_provision_" + name, ROOT / "lib" / "provision" / (name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


C = _lib_module("codec")
crypto = _lib_module("crypto")

SERVICE_UUID = "5e7a0001-8c3b-4f2a-9d1e-0c5f3e9a7b10"
INFO_UUID = "5e7a0002-8c3b-4f2a-9d1e-0c5f3e9a7b10"
RX_UUID = "5e7a0003-8c3b-4f2a-9d1e-0c5f3e9a7b10"
TX_UUID = "5e7a0004-8c3b-4f2a-9d1e-0c5f3e9a7b10"
WINDOW = 8  # unacknowledged DATA frames in flight (below aioble's 10-entry capture queue)
ACK_TIMEOUT_S = 5.0
ANSWER_TIMEOUT_S = 10.0
MAX_RESENDS = 3
QUEUE_MAX = 256  # frames buffered from the device


class TransportError(Exception):
    """The link failed: cannot connect, closed, or the device stopped answering."""


class Refused(Exception):
    """The charger answered with a status other than OK."""

    def __init__(self, status, records):
        self.status = status
        self.records = records
        reason = records.get(C.T_REASON, b"").decode("utf-8", "replace")
        name = C.STATUS_NAMES[status] if status < len(C.STATUS_NAMES) else str(status)
        secs = records.get(C.T_SECONDS)
        if secs is not None and "retry" not in reason:
            reason += " (locked: retry in {} s)".format(C.as_int(secs))
        super().__init__("{}: {}".format(name, reason) if reason else name)


# ---- transports --------------------------------------------------------------------------


class _QueueTransport:
    frame_size = C.MAX_FRAME

    def __init__(self):
        self.queue = asyncio.Queue(QUEUE_MAX)
        self.eof = False

    def _put(self, frm):
        try:
            self.queue.put_nowait(frm)
        except asyncio.QueueFull:
            pass  # the protocol recovers from a lost frame (NACK / resend)

    async def recv(self, timeout):
        if self.eof and self.queue.empty():
            raise TransportError("the charger closed the connection")
        try:
            frm = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            raise TransportError("no answer from the charger within {} s".format(timeout))
        if frm is None:
            self.eof = True
            raise TransportError("the charger closed the connection")
        return frm

    async def info(self, seq=0):
        await self.send(C.frame(C.GET_INFO, seq))
        while True:
            ftype, _seq, fields = C.parse(await self.recv(ANSWER_TIMEOUT_S))
            if ftype == C.INFO:
                return dict((t, bytes(v)) for t, v in C.records(fields[0]))


class StreamTransport(_QueueTransport):
    """TCP to the simulator's --provision-port (u16 length before each frame)."""

    sync = False

    def __init__(self, host, port):
        super().__init__()
        self.host, self.port = host, port
        self.writer = None
        self.task = None

    async def connect(self):
        try:
            reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), ANSWER_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as e:
            raise TransportError("cannot connect to {}:{}: {}".format(self.host, self.port, e))
        self.task = asyncio.ensure_future(self._read(reader))

    async def _read(self, reader):
        dec = C.StreamDecoder(self.sync)
        try:
            while True:
                chunk = await reader.read(4096)
                if not chunk:
                    break
                dec.feed(chunk)
                while True:
                    frm = dec.next_frame()
                    if frm is None:
                        break
                    self._put(frm)
        except (OSError, C.ProtocolError):
            pass
        self._put(None)

    async def send(self, frm):
        if self.writer is None or self.writer.is_closing():
            raise TransportError("connection closed")
        self.writer.write(C.stream_frame(frm, self.sync))
        try:
            await self.writer.drain()
        except OSError as e:
            raise TransportError("connection lost: {}".format(e))

    async def close(self):
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            self.writer.close()


class SerialTransport(_QueueTransport):
    """USB serial: the same frames with a sync marker, so console output is skipped."""

    def __init__(self, port, baud=115200):
        super().__init__()
        self.port, self.baud = port, baud
        self.ser = None
        self.task = None

    async def connect(self):
        try:
            import serial  # pyserial
        except ImportError:
            raise TransportError("--serial needs pyserial (pip install pyserial)")
        try:
            self.ser = serial.serial_for_url(self.port, self.baud, timeout=0.05)
        except (serial.SerialException, OSError, ValueError) as e:
            raise TransportError("cannot open {}: {}".format(self.port, e))
        self.task = asyncio.ensure_future(self._read())

    async def _read(self):
        dec = C.StreamDecoder(sync=True)
        loop = asyncio.get_running_loop()
        try:
            while True:
                chunk = await loop.run_in_executor(None, self.ser.read, 512)
                if chunk:
                    dec.feed(chunk)
                    while True:
                        frm = dec.next_frame()
                        if frm is None:
                            break
                        self._put(frm)
        except (OSError, C.ProtocolError, TypeError):  # TypeError: port closed under the read
            self._put(None)

    async def send(self, frm):
        try:
            self.ser.write(C.stream_frame(frm, sync=True))
            self.ser.flush()
        except OSError as e:
            raise TransportError("serial write failed: {}".format(e))

    async def close(self):
        if self.task is not None:
            self.task.cancel()
        if self.ser is not None:
            self.ser.close()


class BLETransport(_QueueTransport):
    """BLE with bleak: INFO is read; frames go to RX (write with response) and come on TX."""

    frame_size = C.MIN_FRAME  # 20 bytes unless told otherwise (provisioning.md section 8)

    def __init__(self, target, frame_size=None):
        super().__init__()
        self.target = target
        if frame_size:
            self.frame_size = frame_size
        self.client = None

    async def connect(self):
        try:
            from bleak import BleakClient, BleakScanner
        except ImportError:
            raise TransportError("--ble needs bleak (pip install -r requirements-dev.txt)")
        dev = await BleakScanner.find_device_by_filter(
            lambda d, adv: d.address.lower() == self.target.lower() or d.name == self.target,
            timeout=ANSWER_TIMEOUT_S)
        if dev is None:
            raise TransportError("no charger {!r} advertising: hold the service button".format(
                self.target))
        self.client = BleakClient(dev)
        await self.client.connect()
        await self.client.start_notify(TX_UUID, lambda _c, data: self._put(bytes(data)))

    async def send(self, frm):
        await self.client.write_gatt_char(RX_UUID, frm, response=True)

    async def info(self, seq=0):
        raw = await self.client.read_gatt_char(INFO_UUID)
        return dict((t, bytes(v)) for t, v in C.records(bytes(raw)))

    async def close(self):
        if self.client is not None:
            await self.client.disconnect()


async def scan(timeout=5.0):
    """BLE chargers advertising the provisioning service: [(name, address)]."""
    try:
        from bleak import BleakScanner
    except ImportError:
        raise TransportError("scanning needs bleak (pip install -r requirements-dev.txt)")
    found = await BleakScanner.discover(timeout=timeout, service_uuids=[SERVICE_UUID])
    return [(d.name, d.address) for d in found]


# ---- the protocol client ------------------------------------------------------------------


class ProvClient:
    def __init__(self, transport, rand=None):
        import os

        self.t = transport
        self.rand = rand or os.urandom
        self.seq = 0
        self.msg_id = 0
        self.chan = None
        self.asm = C.Assembler()
        self.device_id = None
        self._answer = None

    async def _send(self, frm):
        await self.t.send(frm)

    def _next_seq(self):
        s = self.seq
        self.seq = (self.seq + 1) & 0xFF
        return s

    async def _send_message(self, payload, progress=None):
        msg = C.with_digest(payload)
        if len(msg) > C.MAX_MESSAGE:
            raise Refused(C.TOO_BIG, {C.T_REASON: "message of {} bytes is over the charger's {}"
                                      .format(len(msg), C.MAX_MESSAGE).encode()})
        self.msg_id = (self.msg_id + 1) & 0xFF
        total = len(msg)
        step = C.chunk_size(self.t.frame_size)
        acked = 0
        resends = 0
        await self._send(C.begin(self._next_seq(), self.msg_id, total))
        nxt = 0
        while acked < total:
            while nxt < total and nxt - acked < WINDOW * step:
                await self._send(C.data(self._next_seq(), self.msg_id, nxt, msg[nxt:nxt + step]))
                nxt += step
            try:
                frm = await self.t.recv(ACK_TIMEOUT_S)
            except TransportError:
                if self.t.eof or resends >= MAX_RESENDS:
                    raise
                resends += 1
                nxt = acked  # resume from the last acknowledged offset
                continue
            ftype, _seq, fields = C.parse(frm)
            if ftype == C.ACK and fields[0] == self.msg_id:
                acked = max(acked, min(fields[1], total))
                nxt = max(nxt, acked)
                if progress:
                    progress(acked, total)
            elif ftype == C.NACK and fields[0] == self.msg_id:
                reason = fields[2]
                if reason == C.R_TOO_BIG:
                    raise Refused(C.TOO_BIG, {C.T_REASON: b"message too big for the charger"})
                resends += 1
                if resends > MAX_RESENDS:
                    raise TransportError("transfer failed (NACK reason {})".format(reason))
                if reason in (C.R_DIGEST, C.R_TIMEOUT, C.R_MALFORMED) or fields[1] == 0:
                    acked = nxt = 0
                    await self._send(C.begin(self._next_seq(), self.msg_id, total))
                else:
                    acked = nxt = fields[1]
            elif ftype in (C.BEGIN, C.DATA):
                self._absorb(ftype, fields)  # an answer already (the device refused early)
                if self._answer is not None:
                    return

    def _absorb(self, ftype, fields):
        ev, _m, _v, _r = self.asm.feed(ftype, fields)
        if ev == C.EV_MSG:
            self._answer = bytes(self.asm.payload())

    async def _recv_message(self):
        while self._answer is None:
            ftype, _seq, fields = C.parse(await self.t.recv(ANSWER_TIMEOUT_S))
            if ftype in (C.BEGIN, C.DATA):
                self._absorb(ftype, fields)
        payload, self._answer = self._answer, None
        return payload

    async def call(self, op, recs=(), progress=None, check=True):
        """Send one command; returns (status, {tag: bytes}). Raises Refused if not OK (check)."""
        plain = C.command(op, recs)
        self._answer = None
        await self._send_message(self.chan.seal(plain) if self.chan else plain, progress)
        payload = await self._recv_message()
        if payload[:1] != bytes((C.OP_RESULT,)):
            if self.chan is None:
                raise TransportError("sealed answer outside a session")
            try:
                payload = self.chan.open(payload)
            except crypto.SealError as e:
                raise TransportError("answer refused: {} (not our charger?)".format(e))
        elif self.chan is not None:
            self.chan = None  # the device ended the session (it answers in plaintext then)
        if len(payload) < 2 or payload[0] != C.OP_RESULT:
            raise TransportError("malformed answer")
        status = payload[1]
        out = dict((t, bytes(v)) for t, v in C.records(payload, 2))
        if check and status != C.OK:
            raise Refused(status, out)
        return status, out

    async def info(self):
        return await self.t.info(self._next_seq())

    async def login(self, secret):
        """HELLO, PROOF, and the device's proof checked. Raises Refused or TransportError."""
        nc = self.rand(crypto.NONCE)
        _, recs = await self.call(C.OP_HELLO, [(C.T_VERSION, C.u8(C.VERSION)), (C.T_NONCE_C, nc)])
        nd = recs.get(C.T_NONCE_D, b"")
        self.device_id = recs.get(C.T_DEVICE_ID, b"")
        if len(nd) != crypto.NONCE:
            raise TransportError("malformed CHALLENGE")
        k_enc, k_mac = crypto.derive(secret, self.device_id, nd, nc)
        _, recs = await self.call(C.OP_PROOF, [(C.T_PROOF, crypto.client_proof(k_mac, nc, nd))])
        if not crypto.ct_equal(recs.get(C.T_PROOF, b""), crypto.device_proof(k_mac, nd, nc)):
            raise TransportError("the charger's proof is wrong: it does not hold this secret")
        self.chan = crypto.Channel(k_enc, k_mac, crypto.DIR_CLIENT, self.rand)
