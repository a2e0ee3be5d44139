"""provision.codec and provision.crypto inside the Unix port: the published vectors, frames,
reassembly (duplicates, gaps, tampering, sizes), TLV, the stream decoder (whole, byte by byte,
with trailing data, with console noise) and sealed messages (tag, counter, padding).
"""
# mp-heapsize: 128K

import json
import os

from provision import codec as C
from provision import crypto
import _check

VECTORS = "tools/web/provision_vectors.json"


def h(text):
    return bytes.fromhex(text)


def load_vectors():
    with open(VECTORS) as f:
        return json.load(f)


def raises(fn, exc):
    return _check.raises(exc, fn)


# ---- published vectors ------------------------------------------------------------------------


def test_hmac_matches_rfc4231_and_the_vectors():
    for case in load_vectors()["hmac_sha256"]:
        assert crypto.hmac_sha256(h(case["key"]), h(case["msg"])) == h(case["mac"])
    # RFC 4231 test case 2, written out: the vectors file itself is checked by CPython's hmac
    mac = crypto.hmac_sha256(b"Jefe", b"what do ya ", b"want for nothing?")
    assert mac == h("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_key_derivation_proofs_and_sealing_match_the_vectors():
    s = load_vectors()["session"]
    k_enc, k_mac = crypto.derive(h(s["secret"]), s["device_id"], h(s["nd"]), h(s["nc"]))
    assert k_enc == h(s["k_enc"]) and k_mac == h(s["k_mac"])
    assert crypto.client_proof(k_mac, h(s["nc"]), h(s["nd"])) == h(s["client_proof"])
    assert crypto.device_proof(k_mac, h(s["nd"]), h(s["nc"])) == h(s["device_proof"])
    for case in s["seal"]:
        d = case["dir"].encode()
        env = crypto.seal(k_enc, k_mac, d, case["ctr"], h(case["iv"]), h(case["plaintext"]))
        assert env == h(case["envelope"])
        assert crypto.unseal(k_enc, k_mac, d, case["ctr"], env) == h(case["plaintext"])


def test_frames_tlv_and_stream_match_the_vectors():
    v = load_vectors()
    f = v["frames"]
    got = list(C.message_frames(C.with_digest(h(f["payload"])), f["msg_id"], f["frame_size"],
                                f["seq"]))
    assert got == [h(x) for x in f["frames"]]
    t = v["tlv"]
    assert C.tlv([(tag, h(val)) for tag, val in t["records"]]) == h(t["bytes"])
    assert [(tag, bytes(val).hex()) for tag, val in C.records(h(t["bytes"]))] == \
        [(tag, val) for tag, val in t["records"]]
    s = v["stream"]
    assert C.stream_frame(h(s["frame"])) == h(s["tcp"])
    assert C.stream_frame(h(s["frame"]), sync=True) == h(s["serial"])


# ---- frames and reassembly ------------------------------------------------------------------


def test_parse_rejects_short_unknown_and_oversized_frames():
    for bad in (b"", b"\x01", b"\x09\x00", b"\x01\x00\x01", b"\x03\x00\x01\x00\x00\x00"):
        raises(lambda: C.parse(bad), C.ProtocolError)
    e = raises(lambda: C.parse(b"\x02\x00\x01\x00\x00" + bytes(C.MAX_FRAME)), C.ProtocolError)
    assert e.status == C.TOO_BIG


def feed_all(asm, frames):
    out = []
    for f in frames:
        ftype, _seq, fields = C.parse(f)
        out.append(asm.feed(ftype, fields))
    return out


def test_message_reassembles_with_acks_every_four_frames():
    payload = bytes(range(200))
    frames = list(C.message_frames(C.with_digest(payload), 3, 20, 0))
    asm = C.Assembler()
    evs = feed_all(asm, frames)
    acks = [e for e in evs if e[0] == C.EV_ACK]
    assert [a[2] for a in acks] == [60, 120, 180]
    assert evs[-1][0] == C.EV_MSG and evs[-1][2] == 200
    assert bytes(asm.payload()) == payload


def test_duplicates_are_reacked_and_gaps_nacked_with_the_expected_offset():
    frames = list(C.message_frames(C.with_digest(b"a" * 100), 1, 20, 0))
    asm = C.Assembler()
    feed_all(asm, frames[:3])  # BEGIN + 2 DATA: next offset 30
    assert feed_all(asm, [frames[1]])[0] == (C.EV_ACK, 1, 30, 0)  # duplicate
    assert feed_all(asm, [frames[4]])[0] == (C.EV_NACK, 1, 30, C.R_GAP)  # gap
    assert feed_all(asm, [frames[0]])[0] == (C.EV_ACK, 1, 30, 0)  # repeated BEGIN: resume
    evs = feed_all(asm, frames[3:])
    assert evs[-1][0] == C.EV_MSG
    # the whole last message again (a client that missed the final ACK): ACKed, not redelivered
    again = feed_all(asm, frames)
    assert all(e[0] in (C.EV_ACK, C.EV_NONE) for e in again) and again[-1][2] == 132


def test_a_tampered_chunk_fails_the_digest_and_nothing_is_delivered():
    frames = list(C.message_frames(C.with_digest(b"secret-field" * 5), 2, 20, 0))
    bad = bytearray(frames[2])
    bad[-1] ^= 1
    frames[2] = bytes(bad)
    asm = C.Assembler()
    evs = feed_all(asm, frames)
    assert evs[-1] == (C.EV_NACK, 2, 0, C.R_DIGEST)
    assert not any(e[0] == C.EV_MSG for e in evs) and not asm.partial


def test_oversized_and_malformed_messages_are_refused_before_buffering():
    asm = C.Assembler()
    assert asm.feed(C.BEGIN, (1, C.MAX_MESSAGE + 1)) == (C.EV_NACK, 1, 0, C.R_TOO_BIG)
    assert asm.feed(C.BEGIN, (2, 10)) == (C.EV_NACK, 2, 0, C.R_MALFORMED)
    assert asm.feed(C.DATA, (9, 0, memoryview(b"x"))) == (C.EV_NACK, 9, 0, C.R_GAP)
    asm.feed(C.BEGIN, (3, 40))
    assert asm.feed(C.DATA, (3, 0, memoryview(bytes(41))))[3] == C.R_MALFORMED  # past the end


def test_tlv_rejects_truncation_and_too_many_records():
    raises(lambda: C.records(b"\x01\x00"), C.ProtocolError)
    raises(lambda: C.records(b"\x01\x00\x05abc"), C.ProtocolError)
    e = raises(lambda: C.records(b"\x01\x00\x00" * 25), C.ProtocolError)
    assert e.status == C.TOO_BIG
    assert C.records(b"") == []


# ---- stream decoder: the tr() triple ----------------------------------------------------------

FRAMES = [C.begin(0, 1, 40), C.data(1, 1, 0, b"hello"), C.frame(C.GET_INFO, 2)]


def decode(chunks, sync=False):
    dec = C.StreamDecoder(sync)
    out = []
    for ch in chunks:
        dec.feed(ch)
        while True:
            f = dec.next_frame()
            if f is None:
                break
            out.append(f)
    return out


def test_stream_decoder_whole_bytewise_and_with_trailing_data():
    for sync in (False, True):
        wire = b"".join(C.stream_frame(f, sync) for f in FRAMES)
        assert decode([wire], sync) == FRAMES
        assert decode([wire[i : i + 1] for i in range(len(wire))], sync) == FRAMES
        tail = C.stream_frame(FRAMES[0], sync)[:3]
        assert decode([wire + tail], sync) == FRAMES


def test_serial_decoder_skips_console_output_and_false_markers():
    noise = b"I ocpp: connection Offline\r\n\xa5\x5a\xff\xff>>> "
    wire = noise + b"".join(C.stream_frame(f, True) + b"\r\n" for f in FRAMES)
    assert decode([wire], True) == FRAMES


def test_tcp_decoder_refuses_bad_lengths_and_a_backlog():
    raises(lambda: decode([b"\x00\x00"]), C.ProtocolError)
    raises(lambda: decode([b"\x7f\xff"]), C.ProtocolError)
    dec = C.StreamDecoder()
    dec.feed(b"\x01\x00")  # a frame of 256 bytes, never completed
    for _ in range(20):
        try:
            dec.feed(bytes(512))
        except C.ProtocolError:
            return
    raise AssertionError("backlog never refused")


# ---- sealed messages ------------------------------------------------------------------------


def pair():
    k_enc, k_mac = crypto.derive(b"k" * 16, "DEV", b"d" * 16, b"c" * 16)
    return (crypto.Channel(k_enc, k_mac, crypto.DIR_CLIENT, os.urandom),
            crypto.Channel(k_enc, k_mac, crypto.DIR_DEVICE, os.urandom))


def test_sealed_messages_round_trip_in_order_with_fresh_ivs():
    client, device = pair()
    a = client.seal(b"first")
    b = client.seal(b"first")
    assert a != b and a[0] == 0  # random IV; the first byte is the counter's (never an op)
    assert device.open(a) == b"first" and device.open(b) == b"first"
    assert client.open(device.seal(b"")) == b""


def test_replay_reorder_and_tampering_are_refused():
    client, device = pair()
    m1, m2 = client.seal(b"one"), client.seal(b"two")
    raises(lambda: device.open(m2), crypto.SealError)  # reordered
    assert device.open(m1) == b"one"
    raises(lambda: device.open(m1), crypto.SealError)  # replayed
    t = bytearray(m2)
    t[25] ^= 0x80
    raises(lambda: device.open(bytes(t)), crypto.SealError)  # tampered ciphertext
    raises(lambda: device.open(m2[:-1]), crypto.SealError)  # truncated
    raises(lambda: client.open(m2), crypto.SealError)  # reflected back to its sender
    assert device.open(m2) == b"two"


def test_constant_time_compare():
    assert crypto.ct_equal(b"abc", b"abc")
    assert not crypto.ct_equal(b"abc", b"abd")
    assert not crypto.ct_equal(b"abc", b"ab")
