"""net.ws under CPython, checked against an independent codec (websockets.frames).

Property tests: server frames serialised by `websockets` decode to the same messages through
our Connection, for any split of the byte stream; our masked client frames parse back with
`websockets`' parser. The MicroPython-side table tests are in host_tests/mp/test_ws_frames.py.
"""

import os

from hypothesis import given, settings, strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from net import ws

MAX = 4096

text_st = st.text(max_size=300)
bin_st = st.binary(max_size=300)
message_st = st.one_of(
    st.tuples(st.just("text"), text_st, st.integers(1, 4)),
    st.tuples(st.just("binary"), bin_st, st.integers(1, 4)),
    st.tuples(st.just("ping"), st.binary(max_size=125), st.just(1)),
)


def server_bytes(messages):
    """Serialise messages as server frames (unmasked), fragmenting data messages."""
    out = bytearray()
    expected = []
    for kind, payload, parts in messages:
        if kind == "ping":
            out += Frame(Opcode.PING, payload).serialize(mask=False)
            expected.append((ws.PING, payload))
            continue
        data = payload.encode() if kind == "text" else payload
        first = Opcode.TEXT if kind == "text" else Opcode.BINARY
        step = max(1, len(data) // parts)
        chunks = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
        for i, chunk in enumerate(chunks):
            op = first if i == 0 else Opcode.CONT
            out += Frame(op, chunk, fin=i == len(chunks) - 1).serialize(mask=False)
        expected.append((ws.TEXT, payload) if kind == "text" else (ws.BINARY, payload))
    return bytes(out), expected


def decode_all(conn, data, cuts):
    events = []
    bounds = sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]
    start = 0
    for end in bounds:
        conn.feed(data[start:end])
        start = end
        while (ev := conn.next_event()) is not None:
            events.append(ev)
    return events


@settings(max_examples=150, deadline=None)
@given(st.lists(message_st, max_size=6), st.lists(st.integers(0, 10**6), max_size=12))
def test_server_frames_from_websockets_decode_for_any_split(messages, cuts):
    data, expected = server_bytes(messages)
    assert decode_all(ws.Connection(os.urandom, MAX), data, cuts) == expected


def parse_client_frame(data):
    reader = StreamReader()
    reader.feed_data(bytes(data))
    gen = Frame.parse(reader.read_exact, mask=True)
    try:
        next(gen)
    except StopIteration as stop:
        assert not reader.buffer  # exactly one frame, nothing left over
        return stop.value
    raise AssertionError("incomplete frame")


@settings(max_examples=150, deadline=None)
@given(text_st, bin_st, st.binary(max_size=125))
def test_client_frames_parse_with_websockets(text, blob, ctl):
    conn = ws.Connection(os.urandom)
    f = parse_client_frame(conn.send_text(text))
    assert (f.opcode, f.fin, bytes(f.data).decode()) == (Opcode.TEXT, True, text)
    f = parse_client_frame(conn.send_binary(blob))
    assert (f.opcode, bytes(f.data)) == (Opcode.BINARY, blob)
    assert bytes(parse_client_frame(conn.send_ping(ctl)).data) == ctl
    assert bytes(parse_client_frame(conn.send_pong(ctl)).data) == ctl
    f = parse_client_frame(conn.send_close(1001, "going"))
    assert (f.opcode, bytes(f.data)) == (Opcode.CLOSE, b"\x03\xe9going")


def test_large_client_frame_lengths_parse_with_websockets():
    conn = ws.Connection(os.urandom)
    for n in (125, 126, 65535, 65536, 70000):
        f = parse_client_frame(conn.send_text("a" * n))
        assert len(f.data) == n


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash_the_decoder(data):
    conn = ws.Connection(os.urandom, 256)
    try:
        decode_all(conn, data, [3, 7, 20])
    except ws.ProtocolError as e:
        assert e.code in (1002, 1007, 1009)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=12))
def test_utf8_check_matches_cpython(data):
    try:
        want = data.decode("utf-8")
    except UnicodeDecodeError:
        want = None
    assert ws.decode_utf8(memoryview(data)) == want
