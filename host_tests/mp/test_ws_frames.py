"""net.ws and net.handshake, the sans-I/O WebSocket core: frames (RFC 6455 section 5) and the
opening handshake (section 4).

Every parser case runs through tr(): fed whole, byte by byte, and with trailing data.
The heap is large only for the 64-bit-length cases (65536-byte frames, several copies).
"""
# mp-heapsize: 768K

import gc

from net import handshake, ws
from net.handshake import Handshake, HandshakeError
from net.ws import BINARY, CLOSE, PING, PONG, TEXT, Connection, ProtocolError

MASK = b"\x11\x22\x33\x44"


def rand(n):
    return (MASK * (n // 4 + 1))[:n]


def sframe(op, payload=b"", fin=True, rsv=0, mask=None, form=None):
    """A server frame (unmasked unless `mask`); form forces the length encoding (7/16/64)."""
    n = len(payload)
    if form is None:
        form = 7 if n < 126 else (16 if n < 0x10000 else 64)
    out = bytearray([(0x80 if fin else 0) | rsv | op])
    mbit = 0x80 if mask else 0
    if form == 7:
        out.append(mbit | n)
    elif form == 16:
        out.append(mbit | 126)
        out += n.to_bytes(2, "big")
    else:
        out.append(mbit | 127)
        out += n.to_bytes(8, "big")
    if mask:
        out += mask
        payload = bytes(payload[i] ^ mask[i & 3] for i in range(n))
    return bytes(out) + bytes(payload)


def unmask(frame):
    """Turn a client frame into the same frame unmasked (what a server would decode)."""
    b1 = frame[1]
    assert b1 & 0x80, "client frames must be masked"
    n = b1 & 0x7F
    h = 2
    if n == 126:
        n = int.from_bytes(frame[2:4], "big")
        h = 4
    elif n == 127:
        n = int.from_bytes(frame[2:10], "big")
        h = 10
    m = frame[h : h + 4]
    payload = bytes(frame[h + 4 + i] ^ m[i & 3] for i in range(n))
    assert len(frame) == h + 4 + n
    return frame[0], payload


def bytewise(data):
    for i in range(len(data)):
        yield data[i : i + 1]


def run(conn, chunks):
    out = []
    for c in chunks:
        conn.feed(c)
        while True:
            ev = conn.next_event()
            if ev is None:
                break
            out.append(ev)
    return out


def tr(data, expected, max_message=1024):
    """Feed `data` whole, byte by byte, and followed by the start of another frame."""
    got = run(Connection(rand, max_message), [data])
    assert got == expected, ("whole", got, expected)
    got = run(Connection(rand, max_message), bytewise(data))
    assert got == expected, ("byte by byte", got, expected)
    c = Connection(rand, max_message)
    got = run(c, [data + b"\x81\x05he"])
    assert got == expected, ("trailing", got, expected)
    after = run(c, [b"llo"])
    if expected and expected[-1][0] == CLOSE:
        assert after == [], "input after a Close frame must be ignored"
    else:
        assert after == [(TEXT, "hello")], after


def tr_error(data, code, max_message=1024):
    """The same three feeds must all fail with close code `code`."""
    for chunks in ([data], bytewise(data), [data + b"\x81\x00"]):
        c = Connection(rand, max_message)
        try:
            run(c, chunks)
        except ProtocolError as e:
            assert e.code == code, (e.code, code, e.reason)
            try:  # sticky: the decoder stays failed
                c.next_event()
            except ProtocolError as e2:
                assert e2.code == code
            else:
                raise AssertionError("error not sticky")
            continue
        raise AssertionError("no ProtocolError for {}".format(data))


GOOD = (
    ("empty text", sframe(TEXT, b""), [(TEXT, "")]),
    ("text", sframe(TEXT, b'[2,"1","Heartbeat",{}]'), [(TEXT, '[2,"1","Heartbeat",{}]')]),
    ("utf-8 text", sframe(TEXT, "Zürich €𝄞".encode()), [(TEXT, "Zürich €𝄞")]),
    ("binary", sframe(BINARY, b"\x00\xff"), [(BINARY, b"\x00\xff")]),
    ("16-bit length", sframe(TEXT, b"a" * 300), [(TEXT, "a" * 300)]),
    ("ping", sframe(PING, b"hb"), [(PING, b"hb")]),
    ("ping 125", sframe(PING, b"p" * 125), [(PING, b"p" * 125)]),
    ("pong", sframe(PONG, b""), [(PONG, b"")]),
    ("close no code", sframe(CLOSE), [(CLOSE, 1005, "")]),
    ("close code", sframe(CLOSE, b"\x03\xe8bye"), [(CLOSE, 1000, "bye")]),
    ("close 4000", sframe(CLOSE, b"\x0f\xa0"), [(CLOSE, 4000, "")]),
    (
        "fragments",
        sframe(TEXT, b"ab", fin=False) + sframe(0, b"", fin=False) + sframe(0, b"cd"),
        [(TEXT, "abcd")],
    ),
    (
        "control between fragments",
        sframe(TEXT, b"ab", fin=False) + sframe(PING, b"x") + sframe(0, b"cd"),
        [(PING, b"x"), (TEXT, "abcd")],
    ),
    (
        "utf-8 split across fragments",
        sframe(TEXT, b"\xe2\x82", fin=False) + sframe(0, b"\xac"),
        [(TEXT, "€")],
    ),
    ("two messages", sframe(TEXT, b"1") + sframe(BINARY, b"2"), [(TEXT, "1"), (BINARY, b"2")]),
)

BAD = (
    ("masked from server", sframe(TEXT, b"hi", mask=b"abcd"), 1002),
    ("rsv1", sframe(TEXT, b"hi", rsv=0x40), 1002),
    ("rsv3", sframe(TEXT, b"hi", rsv=0x10), 1002),
    ("opcode 3", sframe(3, b"hi"), 1002),
    ("opcode 11", sframe(11, b""), 1002),
    ("ping 126", sframe(PING, b"p" * 126), 1002),
    ("fragmented ping", sframe(PING, b"p", fin=False), 1002),
    ("continuation first", sframe(0, b"x"), 1002),
    ("text inside fragments", sframe(TEXT, b"a", fin=False) + sframe(TEXT, b"b"), 1002),
    ("non-minimal 16", sframe(TEXT, b"a", form=16), 1002),
    ("non-minimal 64", sframe(TEXT, b"a" * 200, form=64), 1002),
    ("63-bit length", b"\x81\x7f\x80" + bytes(7), 1002),
    ("close 1 byte", sframe(CLOSE, b"\x03"), 1002),
    ("close code 1005", sframe(CLOSE, b"\x03\xed"), 1002),
    ("close code 999", sframe(CLOSE, b"\x03\xe7"), 1002),
    ("close code 2000", sframe(CLOSE, b"\x07\xd0"), 1002),
    ("bad utf-8 0xff", sframe(TEXT, b"a\xffb"), 1007),
    ("bad utf-8 truncated", sframe(TEXT, b"\xe2\x82"), 1007),
    ("bad utf-8 overlong", sframe(TEXT, b"\xc0\x80"), 1007),
    ("bad utf-8 overlong 3", sframe(TEXT, b"\xe0\x80\xaf"), 1007),
    ("bad utf-8 surrogate", sframe(TEXT, b"\xed\xa0\x80"), 1007),
    ("bad utf-8 over U+10FFFF", sframe(TEXT, b"\xf4\x90\x80\x80"), 1007),
    ("bad utf-8 close reason", sframe(CLOSE, b"\x03\xe8\xff"), 1007),
    ("oversized", sframe(TEXT, b"x" * 1025), 1009),
    ("oversized by fragments", sframe(TEXT, b"x" * 600, fin=False) + sframe(0, b"y" * 500), 1009),
)


def test_good_frames_whole_bytewise_and_with_trailing_data():
    for name, data, expected in GOOD:
        try:
            tr(data, expected)
        except AssertionError as e:
            raise AssertionError("{}: {}".format(name, e))


def test_bad_frames_fail_with_their_close_code():
    for name, data, code in BAD:
        try:
            tr_error(data, code)
        except AssertionError as e:
            raise AssertionError("{}: {}".format(name, e))


def test_64_bit_length_frame():
    tr(sframe(TEXT, b"b" * 65536), [(TEXT, "b" * 65536)], max_message=65536)


def test_oversized_header_is_refused_before_buffering_and_heap_does_not_grow():
    c = Connection(rand, 1024)
    header = b"\x81\x7f" + (50 * 1000 * 1000).to_bytes(8, "big")  # claims a 50 MB message
    chunk = b"z" * 512
    gc.collect()
    before = gc.mem_alloc()
    c.feed(header)
    try:
        c.next_event()
    except ProtocolError as e:
        assert e.code == 1009
    else:
        raise AssertionError("no 1009")
    for _ in range(50):  # the payload keeps coming: nothing of it is stored
        c.feed(chunk)
        try:
            c.next_event()
        except ProtocolError:
            pass
    gc.collect()
    grown = gc.mem_alloc() - before
    assert grown < 1024, grown  # the error object only; the 25 KB payload was never stored


def test_message_exactly_max_message_is_accepted():
    tr(sframe(TEXT, b"m" * 1024), [(TEXT, "m" * 1024)], max_message=1024)
    two = sframe(TEXT, b"m" * 512, fin=False) + sframe(0, b"n" * 512)
    tr(two, [(TEXT, "m" * 512 + "n" * 512)])


def test_round_trip_client_encoder_to_decoder():
    enc = Connection(rand)
    for text in ("", "x", "ä" * 70, "y" * 126, "z" * 65535, "w" * 65536):
        op, payload = unmask(enc.send_text(text))
        assert op == 0x80 | TEXT
        got = run(Connection(rand, 70000), [sframe(TEXT, payload)])
        assert got == [(TEXT, text)], len(text)
    for op_want, frame in (
        (BINARY, enc.send_binary(b"\x00\x01")),
        (PING, enc.send_ping(b"p")),
        (PONG, enc.send_pong(b"q")),
    ):
        op, payload = unmask(frame)
        assert op == 0x80 | op_want
        assert run(Connection(rand), [sframe(op_want, payload)])[0][1] == payload


def test_encoder_lengths_and_mask_come_from_rand():
    enc = Connection(rand)
    for n, head in ((0, b"\x81\x80"), (125, b"\x81\xfd"), (126, b"\x81\xfe\x00\x7e")):
        f = enc.send_text("a" * n)
        assert f[: len(head)] == head, (n, f[:4])
        assert f[len(head) : len(head) + 4] == MASK
    f = enc.send_text("a" * 65536)
    assert f[:10] == b"\x81\xff\x00\x00\x00\x00\x00\x01\x00\x00"
    assert f[14] == ord("a") ^ MASK[0] and f[15] == ord("a") ^ MASK[1]
    try:
        Connection(lambda n: b"abc").send_text("x")
    except ValueError:
        pass
    else:
        raise AssertionError("short mask accepted")


def test_send_close_code_reason_and_state():
    enc = Connection(rand)
    op, payload = unmask(enc.send_close(1000, "bye"))
    assert op == 0x88 and payload == b"\x03\xe8bye"
    try:
        enc.send_text("late")
    except RuntimeError:
        pass
    else:
        raise AssertionError("text after close")
    for no_code in (None, 1005):  # 1005 = "no status": echoed as an empty close
        op, payload = unmask(Connection(rand).send_close(no_code))
        assert payload == b""
    op, payload = unmask(Connection(rand).send_close(1001, "é" * 100))
    assert len(payload) <= 125 and payload[2:].decode() == "é" * 61
    for bad in (1004, 1006, 1015, 999, 2000, 5000):
        try:
            Connection(rand).send_close(bad)
        except ValueError:
            continue
        raise AssertionError("sent close code {}".format(bad))
    try:
        enc.send_ping(b"p" * 126)
    except ValueError:
        pass
    else:
        raise AssertionError("ping over 125 bytes")


def test_feed_before_consumed_is_refused():
    c = Connection(rand)
    c.feed(sframe(TEXT, b"a") + sframe(TEXT, b"b"))
    assert c.next_event() == (TEXT, "a")
    try:
        c.feed(b"more")
    except RuntimeError:
        pass
    else:
        raise AssertionError("second feed accepted")
    assert c.next_event() == (TEXT, "b")
    assert c.next_event() is None
    c.feed(b"")
    assert c.next_event() is None


def test_reset_reuses_buffers():
    c = Connection(rand, 1024)
    buf = c._msg
    c.feed(sframe(TEXT, b"ab", fin=False))
    assert c.next_event() is None
    c.reset()
    assert c._msg is buf
    assert run(c, [sframe(TEXT, b"cd")]) == [(TEXT, "cd")]


def test_default_max_message_is_8k():
    assert ws.DEFAULT_MAX_MESSAGE == 8192
    assert Connection(rand).max_message == 8192


# -- opening handshake ---------------------------------------------------------------------


def response(key, proto="ocpp1.6", status="101 Switching Protocols", extra=""):
    lines = [
        "HTTP/1.1 " + status,
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Accept: " + handshake.accept_value(key).decode(),
    ]
    if proto:
        lines.append("Sec-WebSocket-Protocol: " + proto)
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


bytewise_ = bytewise


def hs_feed(hs, data, bytewise=False):
    for c in bytewise_(data) if bytewise else [data]:
        rest = hs.feed(c)
        if rest is not None:
            return rest
    return None


def test_accept_value_matches_rfc_example():
    assert handshake.accept_value(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_request_has_the_required_headers():
    hs = Handshake(
        "csms.example", "/ocpp/CP1", rand, port=443, secure=True, authorization="Basic QQ=="
    )
    req = hs.request()
    assert hs.key == b"ESIzRBEiM0QRIjNEESIzRA=="  # base64 of rand(16)
    want = (
        b"GET /ocpp/CP1 HTTP/1.1\r\nHost: csms.example\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: ESIzRBEiM0QRIjNEESIzRA==\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n"
        b"Authorization: Basic QQ==\r\n\r\n"
    )
    assert req == want, req
    req = Handshake("::1", "/", rand, port=9000).request()
    assert b"\r\nHost: [::1]:9000\r\n" in req
    assert b"Authorization" not in req
    try:
        Handshake("h", "/x\r\nEvil: 1", rand)
    except ValueError:
        pass
    else:
        raise AssertionError("header injection")


def test_response_accepted_whole_bytewise_and_leftover_frames_returned():
    for bytewise in (False, True):
        for trailing in (b"", sframe(PING, b"early")):
            hs = Handshake("h", "/", rand)
            data = response(hs.key) + trailing
            if bytewise:
                # leftover arrives in later feeds: feed only the head byte by byte
                assert hs_feed(hs, response(hs.key), True) == b""
            else:
                assert hs_feed(hs, data) == trailing


def expect_hs_error(data_fn, stage, status=None):
    for bytewise in (False, True):
        hs = Handshake("h", "/", rand)
        try:
            hs_feed(hs, data_fn(hs.key), bytewise)
        except HandshakeError as e:
            assert e.stage == stage, (e.stage, stage, e.detail)
            if status is not None:
                assert e.status == status and e.detail == "HTTP {}".format(status)
            continue
        raise AssertionError("accepted: {}".format(data_fn(hs.key)))


def test_response_refusals_map_to_stages():
    expect_hs_error(lambda k: response(k, proto=None), "subprotocol")
    expect_hs_error(lambda k: response(k, proto="ocpp2.0.1"), "subprotocol")
    for code in (401, 403, 404):
        expect_hs_error(lambda k: response(k, status="{} No".format(code)), "auth", code)
    expect_hs_error(lambda k: response(k, status="400 Bad Request"), "http", 400)
    expect_hs_error(lambda k: response(k, status="500 Oops"), "http", 500)
    expect_hs_error(lambda k: response(b"wrongkey"), "ws")
    expect_hs_error(lambda k: response(k).replace(b"Upgrade: websocket", b"Upgrade: h2c"), "ws")
    no_conn = b"Connection: close"
    expect_hs_error(lambda k: response(k).replace(b"Connection: Upgrade", no_conn), "ws")
    deflate = "Sec-WebSocket-Extensions: permessage-deflate"
    expect_hs_error(lambda k: response(k, extra=deflate), "ws")
    expect_hs_error(lambda k: b"SSH-2.0-OpenSSH\r\n\r\n", "http")
    expect_hs_error(lambda k: response(k).replace(b"Upgrade: websocket", b" folded"), "http")


def test_handshake_borrows_a_buffer_and_keeps_the_2k_bound():
    big = bytearray(8192)
    hs = Handshake("h", "/", rand, buf=big)
    assert hs._head is big
    assert hs_feed(hs, response(hs.key) + b"\x81\x00") == b"\x81\x00"
    hs = Handshake("h", "/", rand, buf=big)
    try:
        hs_feed(hs, b"HTTP/1.1 101 OK\r\n" + b"X: " + b"y" * 3000 + b"\r\n\r\n")
    except HandshakeError as e:
        assert "2048" in e.detail
    else:
        raise AssertionError("bound not kept with a bigger buffer")
    assert Handshake("h", "/", rand, buf=bytearray(100))._head is not None  # too small: own one


def test_response_head_is_bounded():
    hs = Handshake("h", "/", rand)
    try:
        for _ in range(100):
            assert hs.feed(b"X-Filler: " + b"a" * 40 + b"\r\n") is None
    except HandshakeError as e:
        assert e.stage == "http" and "2048" in e.detail
    else:
        raise AssertionError("unbounded head")
    # a long but legal head passes
    hs = Handshake("h", "/", rand)
    assert hs_feed(hs, response(hs.key, extra="X-Pad: " + "p" * 1500)) == b""
