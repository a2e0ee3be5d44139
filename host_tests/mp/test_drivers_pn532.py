"""drivers.pn532: frame encode/decode with checksums (whole, truncated, trailing data), ACK,
init sequence, InListPassiveTarget UIDs of 4/7/10 bytes, busy chip, ReaderFailure."""

import fakes_hw
from fakes_hw import HW, FakeI2C
from fakes_devices import FakePN532, pn532_frame
from drivers.pn532 import PN532, ReaderFailure, FrameError, encode, decode, ACK


def _reader(uid=None):
    HW.reset()
    fake = FakePN532(uid)
    HW.i2c[0x24] = fake
    t = HW.time
    r = PN532(FakeI2C(0), ticks_ms=t.ticks_ms, ticks_diff=t.ticks_diff, sleep_ms=t.sleep_ms)
    return r, fake


def test_encode_sam_configuration_known_bytes():
    f = encode(0x14, b"\x01\x14\x01")
    assert bytes(f) == bytes([0, 0, 0xFF, 5, 0xFB, 0xD4, 0x14, 0x01, 0x14, 0x01, 0x02, 0x00])
    assert bytes(encode(0x02)) == bytes([0, 0, 0xFF, 2, 0xFE, 0xD4, 0x02, 0x2A, 0x00])


def test_encode_into_buffer_and_bound():
    buf = bytearray(64)
    n = encode(0x4A, b"\x01\x00", buf)
    assert bytes(buf[:n]) == bytes(encode(0x4A, b"\x01\x00"))
    try:
        encode(0x40, bytes(60))
    except ValueError:
        return
    raise AssertionError("oversized frame accepted")


def test_decode_whole_truncated_and_trailing():
    frame = pn532_frame(0xD5, b"\x4B\x01\x01\x00\x04\x08\x04\xDE\xAD\xBE\xEF")
    assert decode(frame) == b"\x4B\x01\x01\x00\x04\x08\x04\xDE\xAD\xBE\xEF"
    assert decode(frame + b"\x00\x00\x12\x34") == decode(frame)  # trailing bytes ignored
    assert decode(b"\x00\x00" + frame) == decode(frame)  # extra leading zeros
    for k in range(len(frame) - 1):  # every truncation fails cleanly
        try:
            decode(frame[:k])
        except FrameError:
            continue
        raise AssertionError("truncated frame of {} bytes decoded".format(k))


def test_decode_round_trip_of_host_frames():
    for cmd, params in ((0x02, b""), (0x14, b"\x01\x14\x01"), (0x4A, b"\x01\x00")):
        assert decode(encode(cmd, params), tfi=0xD4) == bytes([cmd]) + params


def test_decode_rejects_bad_checksums_tfi_and_ack():
    good = bytearray(pn532_frame(0xD5, b"\x03\x32\x01\x06\x07"))
    for i, why in ((4, "LCS"), (len(good) - 2, "DCS"), (5, "TFI")):
        bad = bytearray(good)
        bad[i] ^= 0x01
        try:
            decode(bad)
        except FrameError:
            continue
        raise AssertionError("bad " + why + " accepted")
    for f in (ACK, b"\x12\x34\x56"):
        try:
            decode(f)
        except FrameError:
            continue
        raise AssertionError("not a frame: {}".format(f))


def test_init_checks_firmware_and_configures():
    r, fake = _reader()
    assert r.init() == (0x32, 0x01, 0x06)
    assert fake.commands == [0x02, 0x14, 0x32]


def test_read_uid_of_4_7_and_10_bytes():
    for uid in (b"\x04\xA1\xB2\xC3", bytes(range(1, 8)), bytes(range(0x20, 0x2A))):
        r, fake = _reader(uid)
        r.init()
        assert r.read_uid() == uid
        assert fake.released == 1


def test_no_card_returns_none():
    r, fake = _reader(None)
    r.init()
    assert r.read_uid() is None
    assert fake.commands[-1] == 0x4A


def test_busy_chip_is_polled_until_ready():
    r, fake = _reader(b"\x01\x02\x03\x04")
    fake.not_ready_polls = 5
    r.init()
    t0 = HW.time.ticks_ms()
    assert r.read_uid() == b"\x01\x02\x03\x04"
    assert HW.time.ticks_ms() > t0  # it slept between status polls


def test_missing_ack_then_reader_failure_after_repeated_errors():
    r, fake = _reader(b"\x01\x02\x03\x04")
    r.init()
    fake.mute = True
    for _ in range(2):
        try:
            r.read_uid()
        except OSError:
            continue
        raise AssertionError("no error without an ACK")
    try:
        r.read_uid()
    except ReaderFailure:
        pass
    else:
        raise AssertionError("no ReaderFailure after 3 errors")
    try:
        r.read_uid()  # stays failed until init()
    except ReaderFailure:
        pass
    else:
        raise AssertionError("failure cleared by itself")
    fake.mute = False
    r.init()
    assert r.read_uid() == b"\x01\x02\x03\x04"


def test_bad_answer_checksum_counts_as_an_error():
    r, fake = _reader(b"\x01\x02\x03\x04")
    r.init()
    fake.corrupt_answers = True
    try:
        r.read_uid()
    except FrameError:
        pass
    else:
        raise AssertionError("bad checksum accepted")
    assert r.failures == 1
    fake.corrupt_answers = False
    assert r.read_uid() == b"\x01\x02\x03\x04"
    assert r.failures == 0


def test_absent_chip_raises_oserror():
    HW.reset()
    r = PN532(FakeI2C(0), ticks_ms=HW.time.ticks_ms, ticks_diff=HW.time.ticks_diff,
              sleep_ms=HW.time.sleep_ms)
    try:
        r.init()
    except OSError:
        return
    raise AssertionError("init without a chip succeeded")


def test_fakes_are_shared():
    assert fakes_hw.HW is HW
