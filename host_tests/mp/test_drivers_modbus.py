"""drivers.modbus_meter: CRC16, request frames, answer checks (whole, truncated, trailing), SDM120
and SDM630 readings over a fake UART slave, bad CRC / silence / exception -> meter lost, DE pin."""

import asyncio

from fakes_hw import HW, FakeUART, FakePin
from fakes_devices import FakeModbusSlave, modbus_crc
from drivers.modbus_meter import (
    ModbusRTU, ModbusMeter, ModbusError, crc16, read_input_request, check_answer,
)

SDM120_VALUES = {0x0000: 231.5, 0x0006: 15.75, 0x000C: 3640.0, 0x0048: 1234.5}
SDM630_VALUES = {
    0x0000: 230.0, 0x0002: 231.0, 0x0004: 229.0, 0x0006: 16.0, 0x0008: 15.5, 0x000A: 15.25,
    0x0034: 10800.0, 0x0048: 42.25,
}


async def _no_wait(ms):
    HW.time.advance(ms)
    await asyncio.sleep_ms(0)


def _meter(model="sdm120", values=SDM120_VALUES, de=None):
    HW.reset()
    uart = FakeUART(2)
    slave = FakeModbusSlave(1, values)
    slave.de_pin = de
    uart.device = slave
    de_pin = FakePin(de, FakePin.OUT) if de is not None else None
    bus = ModbusRTU(uart, de_pin, sleep_ms=_no_wait)
    return ModbusMeter(bus, 1, model), slave, uart


def test_crc16_known_vector_and_second_implementation():
    req = bytes([0x01, 0x04, 0x00, 0x00, 0x00, 0x02])
    assert crc16(req) == 0xCB71  # on the wire: 71 CB
    for data in (b"", b"\x00", b"\xff" * 7, bytes(range(40))):
        assert crc16(data) == modbus_crc(data)


def test_read_input_request_frame():
    assert bytes(read_input_request(1, 0, 2)) == bytes([1, 4, 0, 0, 0, 2, 0x71, 0xCB])


def test_request_bounds():
    for args in ((0, 0, 2), (248, 0, 2), (1, 0, 0), (1, 0, 17), (1, 0x10000, 2)):
        try:
            read_input_request(*args)
        except ValueError:
            continue
        raise AssertionError("accepted {}".format(args))


def _answer(addr, payload):
    body = bytes([addr, 4, len(payload)]) + payload
    c = modbus_crc(body)
    return body + bytes([c & 0xFF, c >> 8])


def test_check_answer_whole_truncated_and_trailing():
    a = _answer(1, b"\x43\x67\x80\x00")
    assert check_answer(a, len(a), 1, 2) == 4
    assert check_answer(a + b"\x99\x98", len(a) + 2, 1, 2) == 4  # trailing data: only `want` read
    for k in range(len(a)):
        try:
            check_answer(a, k, 1, 2)
        except ModbusError as e:
            assert e.kind == ("timeout" if k == 0 else "frame")
            continue
        raise AssertionError("truncated answer accepted")


def test_check_answer_rejects_wrong_address_count_and_crc():
    a = bytearray(_answer(1, b"\x43\x67\x80\x00"))
    for check in ((a, 2, 2, "frame"), (a, 1, 1, "frame")):
        try:
            check_answer(check[0], len(check[0]), check[1], check[2])
        except ModbusError as e:
            assert e.kind == check[3], e.kind
            continue
        raise AssertionError("accepted")
    a[-1] ^= 0xFF
    try:
        check_answer(a, len(a), 1, 2)
    except ModbusError as e:
        assert e.kind == "crc"
    else:
        raise AssertionError("bad CRC accepted")


async def test_sdm120_reading():
    m, slave, _ = _meter()
    assert m.read() is None  # nothing read yet
    assert await m.poll()
    r = m.read()
    assert r["voltage_v"] == [231.5]
    assert r["current_a"] == [15.75]
    assert r["power_w"] == 3640.0
    assert r["energy_wh"] == 1234500.0
    assert slave.requests == [(0x0000, 2), (0x0006, 2), (0x000C, 2), (0x0048, 2)]


async def test_sdm630_three_phases():
    m, slave, _ = _meter("sdm630", SDM630_VALUES)
    assert await m.poll()
    r = m.read()
    assert r["voltage_v"] == [230.0, 231.0, 229.0]
    assert r["current_a"] == [16.0, 15.5, 15.25]
    assert r["power_w"] == 10800.0
    assert r["energy_wh"] == 42250.0
    assert slave.requests[0] == (0x0000, 6)


async def test_bad_crc_three_times_is_meter_lost_then_recovers():
    m, slave, _ = _meter()
    assert await m.poll()
    slave.mode = "bad_crc"
    for i in range(3):
        assert not await m.poll()
        assert m.last_error == "crc"
        assert m.lost == (i == 2)
    assert m.read() is None
    slave.mode = "ok"
    assert await m.poll()
    assert not m.lost and m.read() is not None


async def test_silent_meter_times_out_and_is_lost():
    m, slave, _ = _meter()
    slave.mode = "silent"
    t0 = HW.time.ticks_ms()
    for _ in range(3):
        assert not await m.poll()
    assert m.last_error == "timeout"
    assert m.lost
    assert HW.time.ticks_ms() - t0 >= 3 * 200  # each request waited its timeout


async def test_exception_answer():
    m, slave, _ = _meter()
    slave.mode = "exception"
    slave.exception_code = 2
    try:
        await m.bus.read_input_registers(1, 0, 2)
    except ModbusError as e:
        assert e.kind == "exception" and e.code == 2
    else:
        raise AssertionError("no exception")


async def test_answer_arriving_late_and_in_chunks():
    m, slave, _ = _meter()
    slave.late_polls = 5
    slave.chunk = 3
    assert await m.poll()
    assert m.read()["voltage_v"] == [231.5]


async def test_stale_bytes_are_dropped_before_a_request():
    m, slave, uart = _meter()
    uart.rx.extend(b"\x01\x04\x04garbage")
    assert await m.poll()
    assert m.read()["power_w"] == 3640.0


async def test_driver_enable_high_only_while_sending():
    m, slave, _ = _meter(de=32)
    assert HW.level(32) == 0
    assert await m.poll()
    assert slave.de_levels == [1, 1, 1, 1]
    assert HW.level(32) == 0


async def test_nan_value_is_an_error():
    m, slave, _ = _meter()
    slave.set_float(0x000C, float("nan"))
    assert not await m.poll()
    assert m.last_error == "frame"


def test_unknown_model_refused():
    try:
        ModbusMeter(None, 1, "sdm72")
    except ValueError:
        return
    raise AssertionError("unknown model accepted")
