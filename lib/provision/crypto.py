"""Provisioning crypto: HMAC-SHA256 on hashlib, key derivation, proofs, sealed messages.

provisioning.md section 4. The Unix port has no `hmac` module, so HMAC is RFC 2104 over
`hashlib.sha256` (64-byte block) with a constant-time compare. Keys come from the per-device
secret and two 16-byte nonces; every message after the handshake is sealed encrypt-then-MAC:
`ctr u32 || IV 16 || AES-128-CBC(PKCS#7) || tag 16`, tag = HMAC(K_mac, dir||ctr||IV||ct)[:16],
checked before decrypting; `ctr` must be exactly the previous value + 1 (replay, reorder).
AES comes from `cryptolib` on MicroPython (mode 2 = CBC) and from `cryptography` on CPython
(the host CLI); the browser uses Web Crypto. Pure: no I/O, randomness is passed in.
"""

import hashlib
import struct

try:
    from micropython import const
except ImportError:  # CPython: the host CLI shares this module

    def const(x):
        return x


try:
    from cryptolib import aes as _aes  # MicroPython
except ImportError:  # CPython: `cryptography` below
    _aes = None

LABEL = b"evse-prov-v1"
NONCE = const(16)
_BLOCK = const(64)  # SHA-256 block size (RFC 2104 B)
_IV = const(16)
_TAG = const(16)
_HEAD = const(4 + 16)  # ctr + IV
MIN_SEALED = const(4 + 16 + 16 + 16)
MAX_CTR = const(0xFFFFFF)  # a sealed envelope's first byte stays 0: plaintext ops never are
DIR_CLIENT = b"C"
DIR_DEVICE = b"D"


class SealError(ValueError):
    """A sealed message failed: bad length, tag, counter or padding."""


def sha256(data):
    return hashlib.sha256(data).digest()


def hmac_sha256(key, *parts):
    """RFC 2104 HMAC-SHA256 of the concatenated `parts`."""
    if len(key) > _BLOCK:
        key = sha256(key)
    ipad = bytearray(_BLOCK)
    opad = bytearray(_BLOCK)
    for i in range(_BLOCK):
        k = key[i] if i < len(key) else 0
        ipad[i] = k ^ 0x36
        opad[i] = k ^ 0x5C
    inner = hashlib.sha256(ipad)
    for p in parts:
        inner.update(p)
    outer = hashlib.sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


def ct_equal(a, b):
    """Constant-time comparison (for equal lengths; a length mismatch is not secret)."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def derive(secret, device_id, nd, nc):
    """Return (K_enc 16 bytes, K_mac 32 bytes) for one session."""
    if isinstance(device_id, str):
        device_id = device_id.encode()
    k = hmac_sha256(secret, LABEL, device_id, nd, nc)
    return hmac_sha256(k, b"enc")[:16], hmac_sha256(k, b"mac")


def client_proof(k_mac, nc, nd):
    return hmac_sha256(k_mac, b"client", nc, nd)


def device_proof(k_mac, nd, nc):
    return hmac_sha256(k_mac, b"device", nd, nc)


def _pad(data):
    n = 16 - len(data) % 16
    return bytes(data) + bytes((n,)) * n


def _unpad(data):
    n = data[-1] if data else 0
    if not 1 <= n <= 16 or n > len(data):
        raise SealError("bad padding")
    for i in range(len(data) - n, len(data)):
        if data[i] != n:
            raise SealError("bad padding")
    return data[: len(data) - n]


def _cbc(key, iv, data, encrypt):
    if _aes is not None:
        c = _aes(key, 2, iv)
        return c.encrypt(data) if encrypt else c.decrypt(data)
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    c = Cipher(algorithms.AES(bytes(key)), modes.CBC(bytes(iv)))
    op = c.encryptor() if encrypt else c.decryptor()
    return op.update(bytes(data)) + op.finalize()


def seal(k_enc, k_mac, direction, ctr, iv, plaintext):
    """Envelope for `plaintext` with counter `ctr` and a 16-byte `iv`."""
    head = struct.pack(">I", ctr) + bytes(iv)
    ct = _cbc(k_enc, iv, _pad(plaintext), True)
    return head + ct + hmac_sha256(k_mac, direction, head, ct)[:_TAG]


def unseal(k_enc, k_mac, direction, ctr, envelope):
    """Plaintext of `envelope` if its tag is right and its counter is `ctr`; else SealError."""
    n = len(envelope)
    if n < MIN_SEALED or (n - _HEAD - _TAG) % 16:
        raise SealError("sealed message has a bad length")
    mv = memoryview(envelope)
    head = mv[:_HEAD]
    ct = mv[_HEAD : n - _TAG]
    if not ct_equal(hmac_sha256(k_mac, direction, head, ct)[:_TAG], mv[n - _TAG :]):
        raise SealError("bad tag")
    got = struct.unpack(">I", bytes(head[:4]))[0]
    if got != ctr:
        raise SealError("counter {} where {} was due (replayed or reordered)".format(got, ctr))
    return _unpad(_cbc(k_enc, bytes(head[4:]), bytes(ct), False))


class Channel:
    """Both directions of one authenticated session: counters start at 1 and go up by one."""

    def __init__(self, k_enc, k_mac, send_dir, rand):
        self.k_enc = k_enc
        self.k_mac = k_mac
        self.send_dir = send_dir
        self.recv_dir = DIR_DEVICE if send_dir == DIR_CLIENT else DIR_CLIENT
        self.rand = rand
        self.ctr_out = 0
        self.ctr_in = 0

    def seal(self, plaintext):
        if self.ctr_out >= MAX_CTR:
            raise SealError("session counter exhausted")
        self.ctr_out += 1
        return seal(self.k_enc, self.k_mac, self.send_dir, self.ctr_out, self.rand(_IV),
                    plaintext)

    def open(self, envelope):
        """Plaintext of the next message; SealError (the session must end) otherwise."""
        pt = unseal(self.k_enc, self.k_mac, self.recv_dir, self.ctr_in + 1, envelope)
        self.ctr_in += 1
        return pt
