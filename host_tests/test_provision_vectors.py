"""Provisioning test vectors: built here from independent code (CPython's hmac, hashlib, struct
and the `cryptography` package), published as tools/web/provision_vectors.json, and passed by
the firmware codec (host_tests/mp/test_provision_codec.py), the CLI (below) and the web page
(host_tests/test_provision_web.py). Regenerate after a deliberate format change with
`.venv/bin/python host_tests/test_provision_vectors.py > tools/web/provision_vectors.json`.
"""

import hashlib
import hmac
import json
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tools" / "web" / "provision_vectors.json"


def _h(key, *parts):
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def _seal(k_enc, k_mac, direction, ctr, iv, plaintext):
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(k_enc), modes.CBC(iv)).encryptor()
    ct = enc.update(padded) + enc.finalize()
    head = struct.pack(">I", ctr) + iv
    return head + ct + _h(k_mac, direction, head, ct)[:16]


def _frames(message, msg_id, frame_size, seq):
    out = [struct.pack(">BBBH", 1, seq, msg_id, len(message))]
    step = frame_size - 5
    for off in range(0, len(message), step):
        seq = (seq + 1) & 0xFF
        out.append(struct.pack(">BBBH", 2, seq, msg_id, off) + message[off:off + step])
    return out


def build_vectors():
    secret = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    device_id = "SIM-0E0F"
    nc = bytes(range(0x10, 0x20))
    nd = bytes(range(0x20, 0x30))
    k = _h(secret, b"evse-prov-v1", device_id.encode(), nd, nc)
    k_enc, k_mac = _h(k, b"enc")[:16], _h(k, b"mac")
    command = b"\x02" + struct.pack(">BH", 0x04, 3) + b"CP1"  # SET Charge Point ID "CP1"
    answer = b"\x80\x00"
    seal = [
        {"dir": "C", "ctr": 1, "iv": bytes(range(0x40, 0x50)).hex(), "plaintext": command.hex()},
        {"dir": "D", "ctr": 1, "iv": bytes(range(0x50, 0x60)).hex(), "plaintext": answer.hex()},
        {"dir": "C", "ctr": 2, "iv": bytes(16).hex(), "plaintext": (b"x" * 16).hex()},
    ]
    for s in seal:
        s["envelope"] = _seal(k_enc, k_mac, s["dir"].encode(), s["ctr"], bytes.fromhex(s["iv"]),
                              bytes.fromhex(s["plaintext"])).hex()
    payload = bytes(range(50))
    message = payload + hashlib.sha256(payload).digest()
    records = [[0x03, b"ws://127.0.0.1:9000/ocpp".hex()], [0x05, "02"], [0x06, ""]]
    tlv = b"".join(struct.pack(">BH", t, len(bytes.fromhex(v))) + bytes.fromhex(v)
                   for t, v in records)
    return {
        "about": "Provisioning test vectors (provisioning.md sections 3-5); hex strings.",
        "hmac_sha256": [  # RFC 4231 test cases 1 and 2, then a long key (hashed first)
            {"key": ("0b" * 20), "msg": b"Hi There".hex(),
             "mac": _h(b"\x0b" * 20, b"Hi There").hex()},
            {"key": b"Jefe".hex(), "msg": b"what do ya want for nothing?".hex(),
             "mac": _h(b"Jefe", b"what do ya want for nothing?").hex()},
            {"key": ("aa" * 131), "msg": b"long key".hex(),
             "mac": _h(b"\xaa" * 131, b"long key").hex()},
        ],
        "session": {
            "secret": secret.hex(), "device_id": device_id, "nc": nc.hex(), "nd": nd.hex(),
            "k_enc": k_enc.hex(), "k_mac": k_mac.hex(),
            "client_proof": _h(k_mac, b"client", nc, nd).hex(),
            "device_proof": _h(k_mac, b"device", nd, nc).hex(),
            "seal": seal,
        },
        "frames": {"payload": payload.hex(), "msg_id": 7, "frame_size": 20, "seq": 250,
                   "frames": [f.hex() for f in _frames(message, 7, 20, 250)]},
        "stream": {"frame": "0100070052", "tcp": "00050100070052", "serial": "a55a00050100070052"},
        "tlv": {"records": records, "bytes": tlv.hex()},
    }


def test_published_vectors_match_the_independent_build():
    assert json.loads(VECTORS.read_text()) == build_vectors()


def test_the_cli_codec_passes_the_vectors():
    sys.path.insert(0, str(ROOT / "tools"))
    from provclient import C, crypto

    v = build_vectors()
    for case in v["hmac_sha256"]:
        assert crypto.hmac_sha256(bytes.fromhex(case["key"]), bytes.fromhex(case["msg"])).hex() \
            == case["mac"]
    s = v["session"]
    k_enc, k_mac = crypto.derive(bytes.fromhex(s["secret"]), s["device_id"],
                                 bytes.fromhex(s["nd"]), bytes.fromhex(s["nc"]))
    assert (k_enc.hex(), k_mac.hex()) == (s["k_enc"], s["k_mac"])
    for case in s["seal"]:
        env = crypto.seal(k_enc, k_mac, case["dir"].encode(), case["ctr"],
                          bytes.fromhex(case["iv"]), bytes.fromhex(case["plaintext"]))
        assert env.hex() == case["envelope"]
        assert crypto.unseal(k_enc, k_mac, case["dir"].encode(), case["ctr"], env).hex() \
            == case["plaintext"]
    f = v["frames"]
    got = C.message_frames(C.with_digest(bytes.fromhex(f["payload"])), f["msg_id"],
                           f["frame_size"], f["seq"])
    assert [x.hex() for x in got] == f["frames"]


if __name__ == "__main__":
    sys.stdout.write(json.dumps(build_vectors(), indent=1) + "\n")
