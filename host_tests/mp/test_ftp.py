"""net.ftp over a fake link: URL parsing, the PASV reply, RETR and STOR conversations, errors.

The control stream replays a scripted server (one reply per read, in order) and records the
commands; the data stream carries the file. The real server case is in
host_tests/test_firmware_sim.py.
"""
# mp-heapsize: 128K

from net import ftp
from net.ftp import FTPError
from net.link import ConnectError
from _fwkit import FakeLink, FakeStream


def script(*codes_texts):
    return [(t + "\r\n").encode() for t in codes_texts]


LOGIN = ("220 welcome", "331 password please", "230 logged in", "200 binary",
         "227 Entering Passive Mode (10,0,0,9,19,137)")


def commands(stream):
    return bytes(stream.sent).decode().split("\r\n")[:-1]


def test_split_url():
    assert ftp.split_url("ftp://h/fw.evb") == ("h", 21, "/fw.evb", "anonymous", "evse@")
    assert ftp.split_url("FTP://u%40x:p%3Aw@10.0.0.2:2121/a%20b/c;type=i") == (
        "10.0.0.2", 2121, "/a b/c", "u@x", "p:w")
    assert ftp.split_url("ftp://u@h/x")[3:] == ("u", "")
    for bad in ("http://h/x", "ftp://h", "ftp://h/", "ftp://:21/x", "ftp://h/x%0d%0aDELE y",
                "ftp://h:0/x", "ftp://h h/x"):
        try:
            ftp.split_url(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_pasv_port():
    assert ftp.pasv_port("227 Entering Passive Mode (127,0,0,1,19,137)") == 19 * 256 + 137
    for bad in ("227 no parens", "227 (1,2,3)", "227 (1,2,3,4,x,1)", "227 (1,2,3,4,300,1)",
                "227 (1,2,3,4,0,0)"):
        try:
            ftp.pasv_port(bad)
        except FTPError:
            continue
        raise AssertionError(bad)


async def test_retr_streams_the_file_over_the_control_hosts_data_port():
    ctrl = FakeStream(script(*LOGIN) + script("150 sending", "226 done", "221 bye"))
    data = FakeStream([b"0123456789" * 50, b"tail"])
    link = FakeLink(ctrl, data)
    got = bytearray()
    await ftp.transfer(link, "ftp://user:pw@files.example/fw/app.evb",
                       on_data=lambda mv: got.extend(mv), buf=bytearray(64))
    assert bytes(got) == b"0123456789" * 50 + b"tail"
    assert commands(ctrl) == ["USER user", "PASS pw", "TYPE I", "PASV", "RETR /fw/app.evb",
                              "QUIT"]
    # the address in the 227 reply is ignored: the data goes to the control host
    assert link.calls == [("files.example", 21, False), ("files.example", 19 * 256 + 137, False)]
    assert ctrl.closed and data.closed


async def test_stor_uploads_generated_chunks_anonymously_with_a_multiline_greeting():
    ctrl = FakeStream(script("220-first line", "220-second", "220 ready", "230 no password",
                             "200 ok", "227 Entering Passive Mode (1,2,3,4,0,21)",
                             "125 go ahead", "226 stored", "221 bye"))
    data = FakeStream()

    def body():
        yield b"part one\n"
        yield b"part two\n"

    await ftp.transfer(FakeLink(ctrl, data), "ftp://h/diag/x.txt", body=body)
    assert bytes(data.sent) == b"part one\npart two\n"
    assert commands(ctrl)[:2] == ["USER anonymous", "TYPE I"]
    assert "STOR /diag/x.txt" in commands(ctrl)


async def test_refusals_carry_the_reply_code():
    cases = [
        (script("421 too many users"), "greeting", 421),
        (script("220 hi", "530 not logged in"), "USER", 530),
        (script("220 hi", "331 pw", "530 wrong password"), "PASS", 530),
        (script(*LOGIN) + script("550 no such file"), "RETR", 550),
        (script(*LOGIN) + script("150 sending", "426 aborted"), "transfer", 426),
    ]
    for replies, where, code in cases:
        link = FakeLink(FakeStream(replies), FakeStream([b"partial"]))
        try:
            await ftp.transfer(link, "ftp://u:p@h/f")
        except FTPError as e:
            assert e.stage == "ftp" and e.status == code and where in e.detail, (where, e)
            continue
        raise AssertionError(where)


async def test_network_failures_keep_their_stage():
    try:
        await ftp.transfer(FakeLink(ConnectError("dns", "nope")), "ftp://nowhere/f")
    except FTPError as e:
        assert e.stage == "dns"
    else:
        raise AssertionError("no error")
    try:
        await ftp.transfer(FakeLink(FakeStream(script("220 hi"))), "ftp://h/f")
    except FTPError as e:
        assert e.stage == "tcp" and "closed" in e.detail
    else:
        raise AssertionError("no error")
    try:
        await ftp.transfer(FakeLink(FakeStream(stall=True)), "ftp://h/f", timeout_ms=30)
    except FTPError as e:
        assert e.stage == "timeout"
    else:
        raise AssertionError("no error")


async def test_reply_lines_are_bounded():
    link = FakeLink(FakeStream([b"220 " + b"x" * 2000]))
    try:
        await ftp.transfer(link, "ftp://h/f")
    except FTPError as e:
        assert "over" in e.detail
        return
    raise AssertionError("no error")
