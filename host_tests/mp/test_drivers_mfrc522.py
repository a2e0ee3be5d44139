"""drivers.mfrc522 against a register-level fake chip and card: SPI protocol, cascade levels 1-3
(4, 7, 10-byte UIDs without CT/BCC), BCC/CRC checks, collision, no card, halt, dead chip."""

import fakes_hw
from fakes_hw import HW, FakePin, FakeSPI
from fakes_devices import FakeMFRC522, FakeCard, crc_a
from drivers.mfrc522 import MFRC522, RFIDError

_CS = 5


def _reader(card=None, version=0x92):
    HW.reset()
    chip = FakeMFRC522(_CS, card, version)
    HW.spi[2] = chip
    r = MFRC522(FakeSPI(2), FakePin(_CS, FakePin.OUT), FakePin(13, FakePin.OUT))
    return r, chip


def _raises(fn, reason):
    try:
        fn()
    except RFIDError as e:
        assert e.reason == reason, e.reason
        return
    raise AssertionError("no RFIDError({})".format(reason))


def test_spi_address_bytes_read_and_write():
    r, chip = _reader()
    chip.regs[0x24] = 0x26
    assert r.read_reg(0x24) == 0x26
    assert chip.raw[-1] == bytes([(0x24 << 1) | 0x80, 0x00])
    r.write_reg(0x2A, 0x8D)
    assert chip.raw[-1] == bytes([0x2A << 1, 0x8D])
    assert chip.regs[0x2A] == 0x8D
    assert HW.level(_CS) == 1  # chip select released after every access


def test_init_resets_checks_version_and_turns_the_antenna_on():
    r, chip = _reader()
    assert r.init() == 0x92
    assert chip.soft_resets == 1
    assert chip.antenna_on()
    assert chip.regs[0x11] == 0x3D  # CRC preset 0x6363
    assert r.alive()


def test_init_without_a_chip_raises_oserror():
    for version in (0x00, 0xFF):
        r, _ = _reader(version=version)
        try:
            r.init()
        except OSError:
            continue
        raise AssertionError("version 0x{:02x} accepted".format(version))


def test_crc_coprocessor_matches_iso14443_vector():
    r, _ = _reader()
    r.init()
    assert r.crc_a(b"\x50\x00", 2) == (0x57, 0xCD)  # HLTA's CRC_A
    assert crc_a(b"\x50\x00") == (0x57, 0xCD)


def test_no_card_returns_none():
    r, chip = _reader(card=None)
    r.init()
    assert r.read_uid() is None
    assert chip.frames[-1] == (b"\x26", 7)  # REQA, 7 bits


def test_uid_4_bytes():
    uid = bytes([0xDD, 0x17, 0x38, 0x0A])
    card = FakeCard(uid)
    r, chip = _reader(card)
    r.init()
    assert r.read_uid() == uid  # 4 bytes: no BCC appended (the "DD17380AF8" mistake)
    assert card.selects == 1


def test_uid_7_bytes_drops_cascade_tag_and_bcc():
    uid = bytes([0x04, 0x51, 0xAA, 0xC3, 0x79, 0x00, 0x00])
    card = FakeCard(uid)
    r, chip = _reader(card)
    r.init()
    got = r.read_uid()
    assert got == uid, got  # not 88 04 51 AA ...
    assert card.selects == 2
    sels = [f[0][0] for f in chip.frames if len(f[0]) == 9]
    assert sels == [0x93, 0x95]


def test_uid_10_bytes_three_cascade_levels():
    uid = bytes(range(0x10, 0x1A))
    card = FakeCard(uid)
    r, chip = _reader(card)
    r.init()
    assert r.read_uid() == uid
    sels = [f[0][0] for f in chip.frames if len(f[0]) == 9]
    assert sels == [0x93, 0x95, 0x97]


def test_0x88_in_the_last_level_is_uid_data():
    uid = bytes([0x04, 0x11, 0x22, 0x88, 0x33, 0x44, 0x55])
    r, _ = _reader(FakeCard(uid))
    r.init()
    assert r.read_uid() == uid


def test_card_is_halted_and_reported_once():
    card = FakeCard(b"\x01\x02\x03\x04")
    r, chip = _reader(card)
    r.init()
    assert r.read_uid() == b"\x01\x02\x03\x04"
    assert card.state == "halt"
    assert r.read_uid() is None  # REQA does not wake a halted card
    card.state = "idle"  # taken away and presented again
    assert r.read_uid() == b"\x01\x02\x03\x04"


def test_collision_raises():
    r, _ = _reader(FakeCard(b"\x01\x02\x03\x04", collision_level=0))
    r.init()
    _raises(r.read_uid, "collision")


def test_collision_at_level_two_raises():
    r, _ = _reader(FakeCard(bytes(range(1, 8)), collision_level=1))
    r.init()
    _raises(r.read_uid, "collision")


def test_bad_bcc_raises():
    cases = ((0, b"\x01\x02\x03\x04"), (1, bytes(range(1, 8))), (2, bytes(range(1, 11))))
    for level, uid in cases:
        r, _ = _reader(FakeCard(uid, bad_bcc_level=level))
        r.init()
        _raises(r.read_uid, "bcc")


def test_bad_sak_crc_raises():
    r, _ = _reader(FakeCard(bytes(range(1, 8)), bad_sak_crc=True))
    r.init()
    _raises(r.read_uid, "crc")


def test_missing_cascade_tag_is_a_protocol_error():
    r, _ = _reader(FakeCard(bytes(range(1, 8)), bad_ct=True))
    r.init()
    _raises(r.read_uid, "protocol")


def test_dead_chip_is_seen_by_the_health_check():
    r, chip = _reader(FakeCard(b"\x01\x02\x03\x04"))
    r.init()
    chip.version = 0x00
    assert not r.alive()


def test_unanswered_transceive_times_out():
    r, _ = _reader(None)
    r.init()
    _raises(lambda: r.transceive(bytearray(b"\x93\x20"), 2), "timeout")


def test_import_creates_no_hardware():
    import drivers.mfrc522 as m

    assert not hasattr(m, "spi") and not hasattr(m, "reader")
    assert fakes_hw.HW is HW
