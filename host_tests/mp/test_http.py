"""net.httpresp (sans-I/O response parser) and net.http (the streaming client) without sockets.

The parser gets every case whole, byte by byte and with trailing data; the client runs over a
fake link whose streams replay scripted responses and record the request bytes. Real sockets,
TLS and the simulator's gateway are exercised by host_tests/test_firmware_sim.py.
"""
# mp-heapsize: 128K

from net import http
from net.httpresp import ResponseParser, HTTPError, HEAD, DATA, END
from net.link import ConnectError
from _fwkit import FakeLink, FakeStream, response


def parse(data, step=None, no_body=False):
    """Feed `data` (whole or in `step`-byte pieces) then EOF; returns (status, body, events)."""
    p = ResponseParser()
    p.reset(no_body=no_body)
    body = bytearray()
    kinds = []
    step = step or max(1, len(data))
    pieces = (data[i : i + step] for i in range(0, len(data), step))
    ended = False
    for piece in _then_eof(pieces):
        p.feed(piece)
        while True:
            ev = p.next_event()
            if ev is None:
                break
            kinds.append(ev[0])
            if ev[0] == DATA:
                body += ev[1]
            if ev[0] == END:
                ended = True
        if ended:
            break
    return p.status, bytes(body), kinds


def tr(data, expect_status, expect_body, trailing=True):
    # whole, byte by byte, and with trailing data after the response (ignored: Connection: close)
    for step in (None, 1, 7):
        status, body, kinds = parse(data, step)
        assert status == expect_status, (step, status)
        assert body == expect_body, (step, body)
        assert kinds[0] == HEAD and kinds[-1] == END, kinds
    if trailing:
        status, body, _ = parse(data + b"GARBAGE AFTER THE RESPONSE")
        assert body == expect_body


def _then_eof(pieces):
    for piece in pieces:
        yield piece
    yield b""


def raises(fn, stage="http", text=None):
    try:
        fn()
    except HTTPError as e:
        assert e.stage == stage, e
        if text is not None:
            assert text in e.detail, e.detail
        return e
    raise AssertionError("no HTTPError")


# ---- parser ------------------------------------------------------------------------------
def test_content_length_body():
    tr(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Other: y\r\n\r\nhello", 200, b"hello")


def test_chunked_body_with_extensions_and_trailers():
    data = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        b"5;name=x\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    # gzip before chunked would need decoding; our server never sends it, but the framing holds
    tr(data.replace(b"gzip, ", b""), 200, b"hello0123456789")


def test_body_until_eof_without_length():
    # the body is everything until the server closes, so there is no "trailing data" case
    tr(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nstream until close", 200, b"stream until close",
       trailing=False)


def test_no_body_for_204_304_and_head():
    tr(b"HTTP/1.1 204 No Content\r\n\r\n", 204, b"")
    tr(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 304, b"")
    status, body, _ = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", no_body=True)
    assert (status, body) == (200, b"")


def test_interim_100_continue_is_skipped():
    tr(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", 201,
       b"ok")


def test_bare_lf_lines_and_status_without_reason():
    tr(b"HTTP/1.1 200\nContent-Length: 2\n\nok", 200, b"ok")


def test_chunked_wins_over_content_length():
    tr(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n"
       b"2\r\nok\r\n0\r\n\r\n", 200, b"ok")


def test_location_is_kept():
    p = ResponseParser()
    p.feed(b"HTTP/1.1 302 Found\r\nLocation: /next?a=1\r\nContent-Length: 0\r\n\r\n")
    assert p.next_event() == (HEAD, 302)
    assert p.location == "/next?a=1"
    assert p.next_event() == (END,)


def test_bad_responses_raise_http_errors():
    cases = [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "conflicting"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\n folded\r\n\r\n", "folding"),
        (b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n", "without a name"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n", "CRLF"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "truncated"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "truncated"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "closed before"),
        (b"", "closed before"),
    ]
    for data, text in cases:
        raises(lambda: parse(data), "http", text)
        raises(lambda: parse(data, 1), "http", text)


def test_line_and_header_count_bounds():
    raises(lambda: parse(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 600 + b"\r\n\r\n"), "http", "line over")
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(60))
    head = b"HTTP/1.1 200 OK\r\n" + many + b"\r\n"
    raises(lambda: parse(head), "http", "header lines")


def test_body_data_is_a_slice_of_the_input_not_a_copy():
    p = ResponseParser()
    buf = bytearray(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd")
    p.feed(buf)
    assert p.next_event()[0] == HEAD
    ev = p.next_event()
    buf[-4:] = b"WXYZ"
    assert bytes(ev[1]) == b"WXYZ"


# ---- URLs ----------------------------------------------------------------------------------
def test_split_url():
    cases = [
        ("http://h/x", ("http", "h", 80, "/x", None)),
        ("https://h.example:8443", ("https", "h.example", 8443, "/", None)),
        ("HTTP://h?q=1#frag", ("http", "h", 80, "/?q=1", None)),
        ("http://u%40x:p%3Aw@10.0.0.1:81/a/b", ("http", "10.0.0.1", 81, "/a/b", "u@x:p:w")),
        ("http://[::1]:8080/f", ("http", "::1", 8080, "/f", None)),
    ]
    for url, want in cases:
        assert http.split_url(url) == want, (url, http.split_url(url))
    for bad in ("ftp://h/x", "http://", "http://h:0/", "http://h:99999/", "http://a b/",
                "http://h/\x01", "h/x", "http://[::1/", "http://h_$/"):
        try:
            http.split_url(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_redact_hides_credentials_only():
    assert http.redact("http://u:p@h/x") == "http://***@h/x"
    assert http.redact("http://h/x@y") == "http://h/x@y"


# ---- client over a fake link ---------------------------------------------------------------
async def test_get_streams_the_body_to_on_data_in_bounded_chunks():
    body = bytes(range(256)) * 6
    s = FakeStream(response(body, pieces=3))
    link = FakeLink(s)
    got = []
    status = await http.request(link, "GET", "http://files.example:8000/fw.bin",
                                on_data=lambda mv: got.append(bytes(mv)), buf=bytearray(100))
    assert status == 200
    assert b"".join(got) == body
    assert max(len(c) for c in got) <= 100
    assert link.calls == [("files.example", 8000, False)]
    head = bytes(s.sent)
    assert head.startswith(b"GET /fw.bin HTTP/1.1\r\nHost: files.example:8000\r\n"), head
    assert b"Connection: close\r\n" in head and head.endswith(b"\r\n\r\n")
    assert b"Content-Length" not in head
    assert s.closed


async def test_chunked_download():
    body = b"0123456789" * 50
    link = FakeLink(FakeStream(response(body, chunked=True, pieces=7)))
    got = bytearray()
    await http.request(link, "GET", "http://h/f", on_data=lambda mv: got.extend(mv))
    assert bytes(got) == body


async def test_redirects_are_followed_relative_and_absolute():
    r1 = FakeStream(response(status="302 Found", headers=("Location: /v2/fw.bin",)))
    r2 = FakeStream(response(status="301 Moved", headers=("Location: http://cdn:81/x",)))
    r3 = FakeStream(response(b"payload"))
    link = FakeLink(r1, r2, r3)
    got = bytearray()
    await http.request(link, "GET", "http://h/fw", on_data=lambda mv: got.extend(mv))
    assert bytes(got) == b"payload"
    assert link.calls == [("h", 80, False), ("h", 80, False), ("cdn", 81, False)]
    assert bytes(r2.sent).startswith(b"GET /v2/fw.bin ")


async def test_too_many_redirects():
    loops = [FakeStream(response(status="302 Found", headers=("Location: /again",)))
             for _ in range(4)]
    e = await _fails(http.request(FakeLink(*loops), "GET", "http://h/"))
    assert e.stage == "redirect"


async def test_redirect_from_https_to_http_is_refused():
    # The TLS context never gets built in this test: a fake CA object is enough for the check.
    link = FakeLink(FakeStream(response(status="302 Found",
                                        headers=("Location: http://h/plain",))))
    import net.tls

    orig = net.tls.client_context
    net.tls.client_context = lambda ca: object()
    try:
        e = await _fails(http.request(link, "GET", "https://h/fw", ca=b"ca"))
    finally:
        net.tls.client_context = orig
    assert e.stage == "redirect" and "https to http" in e.detail
    assert link.calls == [("h", 443, True)]


async def test_https_without_a_ca_fails_clearly_before_connecting():
    link = FakeLink()
    e = await _fails(http.request(link, "GET", "https://h/fw"))
    assert e.stage == "config" and "CA" in e.detail
    assert link.calls == []


async def test_error_status_is_reported_with_its_code():
    link = FakeLink(FakeStream(response(b"nope", status="404 Not Found")))
    e = await _fails(http.request(link, "GET", "http://h/missing"))
    assert e.stage == "status" and e.status == 404 and "404" in e.detail


async def test_connect_errors_keep_their_stage():
    link = FakeLink(ConnectError("dns", "no such host"))
    e = await _fails(http.request(link, "GET", "http://nowhere/"))
    assert e.stage == "dns"
    e = await _fails(http.request(FakeLink(), "GET", "gopher://h/"))
    assert e.stage == "url"


async def test_a_silent_server_times_out():
    link = FakeLink(FakeStream(stall=True))
    e = await _fails(http.request(link, "GET", "http://h/", timeout_ms=50))
    assert e.stage == "timeout"


async def test_on_data_exceptions_pass_through_unchanged():
    class Stop(Exception):
        pass

    def refuse(mv):
        raise Stop()

    link = FakeLink(FakeStream(response(b"xyz")))
    try:
        await http.request(link, "GET", "http://h/", on_data=refuse)
    except Stop:
        return
    raise AssertionError("not raised")


async def test_put_sends_a_generated_body_with_its_length_and_basic_auth():
    s = FakeStream(response(status="201 Created"))
    calls = [0]

    def body():
        calls[0] += 1
        yield b"line one\n"
        yield b"line two\n"

    status = await http.request(FakeLink(s), "PUT", "http://user:pw@h/up/f.txt", body=body,
                                headers=(("Content-Type", "text/plain"),))
    assert status == 201
    sent = bytes(s.sent)
    head, _, rest = sent.partition(b"\r\n\r\n")
    assert head.startswith(b"PUT /up/f.txt HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 18" in head
    assert b"\r\nAuthorization: Basic dXNlcjpwdw==" in head
    assert b"\r\nContent-Type: text/plain" in head
    assert rest == b"line one\nline two\n"
    assert calls[0] == 2  # once to count, once to send


async def test_post_follows_307_with_the_body_but_not_302():
    r1 = FakeStream(response(status="307 Temporary Redirect", headers=("Location: /b",)))
    r2 = FakeStream(response(status="200 OK"))
    await http.request(FakeLink(r1, r2), "POST", "http://h/a", body=b"data")
    assert bytes(r2.sent).startswith(b"POST /b ") and bytes(r2.sent).endswith(b"\r\n\r\ndata")
    r3 = FakeStream(response(status="302 Found", headers=("Location: /b",)))
    e = await _fails(http.request(FakeLink(r3), "POST", "http://h/a", body=b"data"))
    assert e.stage == "status" and e.status == 302


async def _fails(aw):
    try:
        await aw
    except HTTPError as e:
        return e
    raise AssertionError("no HTTPError")
