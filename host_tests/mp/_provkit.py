"""Shared fakes for the provisioning tests in the Unix port: board, charger, store, a client.

`Kit()` builds a Provisioner over a real Store in a fresh temporary directory, a fake board
(window, secret, LED) and a ManualClock; `kit.session()` opens a Session and `Client` speaks
the protocol to it in-process (no transport), so each test drives frames and time by hand.
The certificate and key are a throwaway P-256 test CA (valid 2025-2124) made for these tests.
"""

import os

from clock import ManualClock
from store import Store
from store.tree import rmtree as _rmtree
from provision import codec as C
from provision import crypto
from provision.device import Provisioner
from provision.session import Session

SECRET = bytes(range(16))
CA_PEM = b"""-----BEGIN CERTIFICATE-----
MIIBPDCB4qADAgECAgECMAoGCCqGSM49BAMCMBwxGjAYBgNVBAMMEXByb3Zpc2lv
biB0ZXN0IENBMCAXDTI1MDEwMTAwMDAwMFoYDzIxMjQxMjA4MDAwMDAwWjAcMRow
GAYDVQQDDBFwcm92aXNpb24gdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABNdL7fHhpJBA2UAhna8LAQR8dsoojpDdfs50KnVmduelJAfcdSz1ouqpNHOo
VNJ6oNKBNdTXmY8H14GLgDt8jUWjEzARMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZI
zj0EAwIDSQAwRgIhAOL65NYE1uTbfXHTf5Dt64IofMMRRbHsG/TgCIYtf0uHAiEA
/lHcvewb+xnQO2z8BjVRUTEgnKYoN6mRIVJlg8Amnn0=
-----END CERTIFICATE-----
"""
KEY_PEM = b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgJIIDeAdOZhiK7cpF
9anFu7uzmGrbStDiQCMauGLWhx2hRANCAATXS+3x4aSQQNlAIZ2vCwEEfHbKKI6Q
3X7OdCp1ZnbnpSQH3HUs9aLqqTRzqFTSeqDSgTXU15mPB9eBi4A7fI1F
-----END PRIVATE KEY-----
"""
_n = [0]
_ROOT = "/tmp/provtest-" + "".join("{:02x}".format(b) for b in os.urandom(4))  # this process


def tmpdir():
    """A fresh directory under this process's own root, removed when the process exits."""
    if _n[0] == 0:
        os.mkdir(_ROOT)
        import sys

        sys.atexit(lambda: _rmtree(_ROOT))
    _n[0] += 1
    return "{}/{}".format(_ROOT, _n[0])


class FakeBoard:
    serial = "SIM-TEST"

    def __init__(self, clock, secret=SECRET):
        self.clock = clock
        self.secret = secret
        self.window_until = -1
        self.flashes = []

    def device_secret(self):
        return self.secret

    def provisioning_window(self):
        return self.clock.now_ms() < self.window_until

    def open_window(self, ms):
        self.window_until = max(self.window_until, self.clock.now_ms() + ms)

    def led_flash(self, kind):
        self.flashes.append(kind)


class FakeClient:
    last_error = None


class FakeCharger:
    def __init__(self, clock):
        self.clock = clock
        self.conn_status = "Connecting"
        self.client = FakeClient()
        self.restarts = []

    def request_restart(self, why):
        self.restarts.append(why)


class Kit:
    def __init__(self, root=None, secret=SECRET, start_ms=1000):
        self.root = root or tmpdir()
        self.clock = ManualClock(start_ms)
        self.store = Store(self.root)
        self.board = FakeBoard(self.clock, secret)
        self.charger = FakeCharger(self.clock)
        self.prov = Provisioner(self.store, self.board, self.charger, self.clock.now_ms(), "9.9")

    def reboot(self):
        """A power cycle: same flash, new RAM state, the clock starts again."""
        return Kit(self.root, self.board.secret, 1000)

    def session(self, frame_size=C.MIN_FRAME):
        return Session(self.prov, frame_size, os.urandom)

    def provision(self, url="ws://csms.example:9000/ocpp", cp_id="CP1"):
        """Store a provisioned record directly (the window then needs the button)."""
        from provision import storage

        storage.commit(self.store, {"url": url, "cp_id": cp_id, "profile": 0}, {})
        self.prov.rec = storage.load(self.store)


class Client:
    """The host side of the protocol, in-process against a Session."""

    def __init__(self, kit, sess=None, secret=SECRET, frame_size=C.MIN_FRAME):
        self.kit = kit
        self.sess = sess or kit.session(frame_size)
        self.secret = secret
        self.frame_size = frame_size
        self.seq = 0
        self.msg_id = 0
        self.asm = C.Assembler()
        self.chan = None
        self.acks = []  # (type, msg_id, value, reason) of ACK/NACK frames received
        self.sent = []  # the last message's frames, for replay tests

    def feed(self, frm):
        """Give one raw frame to the device; returns the decoded device messages."""
        return self._collect(self.sess.feed(frm, self.kit.clock.now_ms()))

    def _collect(self, frames):
        msgs = []
        for f in frames:
            ftype, _seq, fields = C.parse(f)
            if ftype in (C.ACK, C.NACK):
                self.acks.append((ftype,) + tuple(fields))
            elif ftype == C.INFO:
                msgs.append(("info", dict((t, bytes(v)) for t, v in C.records(fields[0]))))
            else:
                ev, _m, _v, _r = self.asm.feed(ftype, fields)
                if ev == C.EV_MSG:
                    msgs.append(("msg", bytes(self.asm.payload())))
        return msgs

    def frames_for(self, payload):
        self.msg_id = (self.msg_id + 1) & 0xFF
        frames = list(C.message_frames(C.with_digest(payload), self.msg_id, self.frame_size,
                                       self.seq))
        self.seq = (self.seq + len(frames)) & 0xFF
        return frames

    def send_raw(self, payload):
        """Send `payload` as one message; returns the device's decoded answer or None."""
        self.sent = self.frames_for(payload)
        out = []
        for f in self.sent:
            out += self.feed(f)
        return self.decode(out)

    def decode(self, msgs):
        for kind, payload in msgs:
            if kind != "msg":
                continue
            if payload[0] != C.OP_RESULT and self.chan is not None:
                payload = self.chan.open(payload)
            status = payload[1]
            return status, dict((t, bytes(v)) for t, v in C.records(payload, 2))
        return None

    def request(self, op, recs=()):
        plain = C.command(op, recs)
        return self.send_raw(self.chan.seal(plain) if self.chan else plain)

    def info(self):
        frm = C.frame(C.GET_INFO, self.seq)
        self.seq = (self.seq + 1) & 0xFF
        msgs = self.feed(frm)
        return msgs[0][1]

    def hello(self):
        self.nc = os.urandom(16)
        return self.request(C.OP_HELLO, [(C.T_VERSION, C.u8(1)), (C.T_NONCE_C, self.nc)])

    def login(self, secret=None):
        """HELLO + PROOF; returns the status of the last step (OK when authenticated)."""
        st, recs = self.hello()
        if st != C.OK:
            return st, recs
        nd = recs[C.T_NONCE_D]
        k_enc, k_mac = crypto.derive(secret or self.secret, recs[C.T_DEVICE_ID], nd, self.nc)
        st, recs = self.request(C.OP_PROOF, [(C.T_PROOF, crypto.client_proof(k_mac, self.nc, nd))])
        if st == C.OK:
            assert crypto.ct_equal(recs[C.T_PROOF], crypto.device_proof(k_mac, nd, self.nc))
            self.chan = crypto.Channel(k_enc, k_mac, crypto.DIR_CLIENT, os.urandom)
        return st, recs

    def set(self, *recs):
        return self.request(C.OP_SET, recs)
