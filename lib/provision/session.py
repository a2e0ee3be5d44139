"""One provisioning connection as a sans-I/O state machine: frames in, frames out.

provisioning.md sections 3-5. `Session(prov, frame_size, rand)`; `feed(frame, now)` and
`tick(now)` return the frames to send (a list, possibly empty). After them the caller checks
`closed` (disconnect) and `action` (restart or factory reset once the answer has gone out).
States, in order: IDLE (plaintext: GET_INFO frames, HELLO) -> CHALLENGED (PROOF) -> AUTHED
(every message sealed, counters checked) -> CLOSED. Rules:
- HELLO is refused while locked out (LOCKED + seconds) or outside the window (WINDOW_CLOSED).
- A wrong PROOF counts toward the lockout, is answered NOT_AUTHENTICATED and closes.
- A sealed message with a bad tag or an unexpected counter (replay, reorder) closes at once.
- A partial message is dropped after `PARTIAL_TIMEOUT_MS` without a frame (NACK timeout).
The session imports no socket, asyncio or time; time and randomness come in.
"""

from micropython import const

import log
from provision import codec as C
from provision import crypto

PARTIAL_TIMEOUT_MS = const(10000)
IDLE, CHALLENGED, AUTHED, CLOSED = 0, 1, 2, 3


class Session:
    def __init__(self, prov, frame_size, rand, asm=None):
        self.prov = prov
        self.frame_size = frame_size
        self.rand = rand
        self.asm = asm or C.Assembler()
        self.state = IDLE
        self.seq = 0  # next outgoing frame seq
        self.last_seq_in = -1
        self.msg_out = 0
        self.last_rx = 0
        self.nc = None
        self.nd = None
        self.chan = None
        self.staged = {}
        self.action = None
        self.out = []

    @property
    def closed(self):
        return self.state == CLOSED

    def _frame(self, builder, *args):
        self.out.append(builder(self.seq, *args))
        self.seq = (self.seq + 1) & 0xFF

    def _send_message(self, payload):
        if self.chan is not None:
            payload = self.chan.seal(payload)
        msg = C.with_digest(payload)
        self.msg_out = (self.msg_out + 1) & 0xFF
        n = 0
        for frm in C.message_frames(msg, self.msg_out, self.frame_size, self.seq):
            self.out.append(frm)
            n += 1
        self.seq = (self.seq + n) & 0xFF

    def _result(self, status, recs=()):
        self._send_message(C.result(status, recs))

    def _fail(self, status, reason, seconds=None):
        """Answer in plaintext (the peer may not hold the keys) and close."""
        log.warn("provision", "session closed: %s", reason)
        self.chan = None
        self._result(status, C.error_records(reason, None, seconds))
        self.close()

    def _take(self):
        out = self.out
        self.out = []
        return out

    # ---- input ------------------------------------------------------------------------------
    def feed(self, frm, now):
        if self.state == CLOSED:
            return []
        try:
            ftype, seq, fields = C.parse(frm)
        except C.ProtocolError as e:
            self._fail(e.status, "bad frame: {}".format(e))
            return self._take()
        if ftype in (C.BEGIN, C.DATA):
            if seq == self.last_seq_in:
                return []  # the same frame twice in a row: a link-layer duplicate
            self.last_seq_in = seq
        self.last_rx = now
        if ftype == C.GET_INFO:
            self.out.append(C.frame(C.INFO, self.seq, C.tlv(self.prov.info(now))))
            self.seq = (self.seq + 1) & 0xFF
            return self._take()
        if ftype not in (C.BEGIN, C.DATA, C.ABORT):
            return []  # ACK/NACK/INFO come only from the device: ignore
        ev, msg_id, value, reason = self.asm.feed(ftype, fields)
        if ev == C.EV_ACK:
            self._frame(C.ack, msg_id, value)
        elif ev == C.EV_NACK:
            self._frame(C.nack, msg_id, value, reason)
        elif ev == C.EV_MSG:
            self._frame(C.ack, msg_id, value + C.DIGEST)
            self._message(self.asm.payload(), now)
        return self._take()

    def tick(self, now):
        """Drop a partial message after PARTIAL_TIMEOUT_MS of silence."""
        if self.asm.partial and now - self.last_rx >= PARTIAL_TIMEOUT_MS:
            msg_id = self.asm.msg_id
            self.asm.reset()
            self._frame(C.nack, msg_id, 0, C.R_TIMEOUT)
        return self._take()

    # ---- messages ---------------------------------------------------------------------------
    def _message(self, payload, now):
        if self.state == AUTHED:
            try:
                plain = self.chan.open(payload)
            except crypto.SealError as e:
                self._fail(C.NOT_AUTHENTICATED, "message refused: {}".format(e))
                return
            self._sealed(plain, now)
            return
        op = payload[0]
        try:
            recs = C.records(payload, 1)
        except C.ProtocolError as e:
            self._result(e.status, C.error_records(str(e)))
            return
        if op == C.OP_HELLO:
            self._hello(recs, now)
        elif op == C.OP_PROOF:
            self._proof(recs, now)
        else:  # a command (or a sealed envelope) before the handshake
            self._result(C.NOT_AUTHENTICATED, C.error_records("authenticate first (HELLO)"))

    def _locked(self, now):
        left = self.prov.lockout.seconds_left(now)
        if left:
            self._result(C.LOCKED, C.error_records(
                "locked after failed attempts: retry in {} s".format(left), None, left))
        return left

    def _hello(self, recs, now):
        rec = dict((t, v) for t, v in recs)
        nc = rec.get(C.T_NONCE_C)
        ver = rec.get(C.T_VERSION)
        if ver is None or len(ver) != 1 or ver[0] != C.VERSION:
            self._result(C.BAD_FRAME, C.error_records("protocol version 1 expected"))
            return
        if nc is None or len(nc) != crypto.NONCE:
            self._result(C.BAD_FRAME, C.error_records("HELLO needs a 16-byte nonce"))
            return
        if self._locked(now):
            return
        if not self.prov.window_open():
            self._result(C.WINDOW_CLOSED, C.error_records(
                "provisioning window closed: hold the service button"))
            return
        self.nc = bytes(nc)
        self.nd = self.rand(crypto.NONCE)
        self.state = CHALLENGED
        self._result(C.OK, [(C.T_VERSION, C.u8(C.VERSION)), (C.T_DEVICE_ID, self.prov.device_id),
                            (C.T_NONCE_D, self.nd)])

    def _proof(self, recs, now):
        if self.state != CHALLENGED:
            self._result(C.NOT_AUTHENTICATED, C.error_records("PROOF before HELLO"))
            return
        if self._locked(now):
            return
        got = None
        for t, v in recs:
            if t == C.T_PROOF:
                got = v
        secret = self.prov.secret()
        if not secret:
            self._fail(C.NOT_AUTHENTICATED, "this device has no provisioning secret")
            return
        k_enc, k_mac = crypto.derive(secret, self.prov.device_id, self.nd, self.nc)
        want = crypto.client_proof(k_mac, self.nc, self.nd)
        if got is None or not crypto.ct_equal(want, got):
            left = self.prov.lockout.fail(now)
            self._fail(C.NOT_AUTHENTICATED, "wrong secret", left if left else None)
            return
        self.prov.lockout.success()
        self.prov.sessions += 1
        self.prov.extend_window()
        self.state = AUTHED
        log.info("provision", "session authenticated")
        # The device's proof goes out in plaintext; everything after it is sealed.
        self._result(C.OK, [(C.T_PROOF, crypto.device_proof(k_mac, self.nd, self.nc))])
        self.chan = crypto.Channel(k_enc, k_mac, crypto.DIR_DEVICE, self.rand)

    def _sealed(self, plain, now):
        if not plain:
            self._fail(C.BAD_FRAME, "empty command")
            return
        if not self.prov.window_open():
            self._fail(C.WINDOW_CLOSED, "provisioning window closed")
            return
        try:
            recs = C.records(plain, 1)
        except C.ProtocolError as e:
            self._result(e.status, C.error_records(str(e)))
            return
        status, out, action = self.prov.handle(plain[0], recs, self.staged)
        self.prov.extend_window()
        self._result(status, out)
        if action is not None:
            self.action = action
            self.close()

    def close(self):
        """The link went away or the session is done: forget keys and staged fields."""
        if self.state == AUTHED:
            self.prov.sessions -= 1
        self.state = CLOSED
        self.chan = None
        self.staged.clear()
