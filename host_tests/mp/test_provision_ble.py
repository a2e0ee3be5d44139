"""provision.ble and provision.radio inside the Unix port, over a fake `bluetooth` module.

The Unix port has no `bluetooth`; the fake records what the link asks of NimBLE (services,
buffers, advertising, notifications) and lets the test raise the IRQs a central would cause.
Covers: GATT layout and advertising payload, a whole authenticated session through IRQ ->
queue -> task -> ProvService, INFO refresh, re-advertising after a disconnect, the bounded IRQ
queue, radio off; and the ESP32 boot-mode policy (never BLE and TLS together).
"""
# mp-heapsize: 1M

import asyncio

import _provkit as K
from provision import codec as C
from provision import ble as B
from provision.radio import BOOT_MARK, RadioMode
from provision.service import ProvService


def uuid_bytes(text):
    raw = bytes.fromhex(text.replace("-", ""))
    return bytes(reversed(raw))  # little-endian, as bluetooth.UUID's buffer is


class FakeBLE:
    def __init__(self):
        self.on = None
        self.handler = None
        self.services = None
        self.buffers = {}
        self.adv = []
        self.notified = []
        self.values = {}
        self.disconnects = []

    def active(self, on=None):
        if on is not None:
            self.on = on
        return self.on

    def config(self, **kw):
        self.cfg = kw

    def irq(self, handler):
        self.handler = handler

    def gatts_register_services(self, services):
        self.services = services
        return ((10, 11, 12),)

    def gatts_set_buffer(self, handle, size, append=False):
        self.buffers[handle] = size

    def gap_advertise(self, interval, adv_data=None, resp_data=None, connectable=True):
        self.adv.append((interval, adv_data, resp_data))

    def gatts_read(self, handle):
        return self.values[handle]

    def gatts_write(self, handle, value):
        self.values[handle] = bytes(value)

    def gatts_notify(self, conn, handle, data):
        self.notified.append((conn, handle, bytes(data)))

    def gap_disconnect(self, conn):
        self.disconnects.append(conn)


class FakeBluetooth:
    def __init__(self):
        self.ble = FakeBLE()

    def BLE(self):
        return self.ble

    def UUID(self, text):
        return uuid_bytes(text)


def make():
    kit = K.Kit()
    bt = FakeBluetooth()
    link = B.BLELink("EVSE-TEST", bluetooth=bt)
    svc = ProvService(kit.store, kit.board, kit.charger, link, stream=False, frame_size=20)
    link.allowed = svc.prov.window_open
    return kit, bt.ble, link, svc


async def send(ble, link, client, payload, conn=1):
    """Write the message's frames to RX the way a central does; returns the decoded answer."""
    frames = client.frames_for(payload)
    for f in frames:
        ble.values[11] = f
        ble.handler(3, (conn, 11))  # _IRQ_GATTS_WRITE
        await asyncio.sleep_ms(0)
    await asyncio.sleep_ms(0)
    out = [n[2] for n in ble.notified if n[0] == conn]
    ble.notified.clear()
    return client.decode(client._collect(out))


async def test_gatt_layout_advertising_and_a_whole_session():
    kit, ble, link, svc = make()
    link.start(svc)
    (svc_uuid, chars), = ble.services
    assert svc_uuid == uuid_bytes(B.SERVICE_UUID)
    assert [c[1] for c in chars] == [0x02, 0x08, 0x12]  # INFO read, RX write, TX read+notify
    assert ble.buffers[11] == 512  # RX holds a whole frame (default 20 bytes cuts silently)
    _, adv, resp = ble.adv[-1]
    assert adv == b"\x02\x01\x06\x11\x07" + uuid_bytes(B.SERVICE_UUID) and len(adv) == 21
    assert resp == b"\x0a\x09EVSE-TEST"  # complete local name
    ble.handler(1, (1, 0, b"\x00" * 6))  # a central connects
    await asyncio.sleep_ms(0)
    c = K.Client(kit)
    c.nc = b"n" * 16
    st, recs = await send(ble, link, c, C.command(C.OP_HELLO, [(C.T_VERSION, b"\x01"),
                                                              (C.T_NONCE_C, c.nc)]))
    assert st == C.OK
    from provision import crypto

    nd = recs[C.T_NONCE_D]
    k_enc, k_mac = crypto.derive(K.SECRET, recs[C.T_DEVICE_ID], nd, c.nc)
    st, _ = await send(ble, link, c, C.command(C.OP_PROOF, [
        (C.T_PROOF, crypto.client_proof(k_mac, c.nc, nd))]))
    assert st == C.OK
    import os

    c.chan = crypto.Channel(k_enc, k_mac, crypto.DIR_CLIENT, os.urandom)
    st, recs = await send(ble, link, c, c.chan.seal(C.command(C.OP_GET_STATUS)))
    assert st == C.OK and recs[C.T_DEVICE_ID] == b"SIM-TEST"
    svc.tick()  # the INFO characteristic follows the state
    info = dict((t, bytes(v)) for t, v in C.records(ble.values[10]))
    assert info[C.T_STATE] == bytes((4,))  # a session is active
    ble.adv.clear()
    ble.handler(2, (1, 0, b"\x00" * 6))  # the central leaves
    await asyncio.sleep_ms(10)
    assert not svc.sessions and ble.adv  # advertising again (unprovisioned)
    link.stop()
    assert ble.on is False and ble.adv[-1][1] is None


async def test_frames_beyond_the_irq_queue_are_dropped_and_counted():
    kit, ble, link, svc = make()
    link.start(svc)
    ble.values[11] = C.frame(C.GET_INFO, 0)
    for _ in range(15):  # the task never ran in between
        ble.handler(3, (1, 11))
    assert link.dropped == 3
    link.stop()


async def test_no_advertising_when_the_window_is_closed():
    kit, ble, link, svc = make()
    kit.provision()
    svc.prov.rec = kit.prov.rec
    link.start(svc)
    assert ble.adv == []
    kit.board.open_window(60000)
    link.advertise()
    assert len(ble.adv) == 1
    link.stop()


class FakeLink:
    def __init__(self):
        self.started = self.stopped = False
        self.allowed = None

    def start(self, service):
        self.started = True

    def stop(self):
        self.stopped = True

    def send(self, conn, data):
        pass

    def close(self, conn):
        pass


async def test_boot_mode_keeps_ble_and_tls_apart():
    kit = K.Kit()
    mode = RadioMode(kit.store, kit.board, kit.charger, FakeLink)
    assert mode.boot() and mode.link.started  # unprovisioned: BLE on, CSMS held
    assert kit.charger.hold_csms
    assert not mode.step()  # unprovisioned: the window never closes
    mode.service.close()
    kit.provision()
    kit = kit.reboot()
    mode = RadioMode(kit.store, kit.board, kit.charger, FakeLink)
    assert not mode.boot() and mode.link is None  # provisioned: radio off, TLS may run
    assert not mode.step()
    kit.board.open_window(60000)  # the service button while the CSMS link runs
    assert mode.step() and kit.charger.restarts == ["service button: provisioning mode"]
    kit = kit.reboot()
    mode = RadioMode(kit.store, kit.board, kit.charger, FakeLink)
    assert mode.boot() and kit.board.provisioning_window()  # the mark opened the window
    assert kit.store.load(BOOT_MARK) is None  # one-shot
    kit.clock.advance(59000)
    assert not mode.step()
    kit.clock.advance(1000)
    assert mode.step() and mode.link.stopped  # unused window: radio off, then restart
    assert kit.charger.restarts == ["provisioning window closed"]
    mode.service.close()


def test_charger_holds_the_csms_link_in_provisioning_mode():
    from charger.app import Charger

    class Fake:
        prov = {"url": "wss://h/o", "cp_id": "C1"}
        hold_csms = "provisioning over BLE"

    assert Charger.settings(Fake()) == {"refuse": ("Offline", "provisioning over BLE")}
