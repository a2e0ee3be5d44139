"""store.queue.TxQueue: order, persistence, torn tails, corruption, capacity, flat RAM."""
# mp-heapsize: 3M

import gc
import os
import random

from store import Store
from store.queue import TxQueue, SEGMENT_BYTES
from store.tree import rmtree as _rmtree

_n = [0]


def fresh_root():
    _n[0] += 1
    root = "/tmp/txq-test-%d-%d" % (random.getrandbits(24), _n[0])
    _rmtree(root)
    return root


def start_msg(ref, stamp="2026-11-24T20:30:46Z"):
    return {"action": "StartTransaction", "tx": ref, "ts": ref, "boot": 1,
            "payload": {"connectorId": 1, "idTag": "C3B2A104", "meterStart": 1000 * ref,
                        "timestamp": stamp}}


def stop_msg(ref, stamp="2026-11-24T21:30:46Z"):
    sv = [{"value": str(1000 * ref + 7400), "context": "Transaction.End",
           "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
    return {"action": "StopTransaction", "tx": ref, "ts": ref, "boot": 1,
            "payload": {"meterStop": 1000 * ref + 7400, "timestamp": stamp, "reason": "Local",
                        "transactionData": [
                            {"timestamp": stamp, "sampledValue": [dict(sv[0],
                                                                       context="Transaction.Begin")]},
                            {"timestamp": stamp, "sampledValue": sv}]}}


def meter_msg(ref, i):
    return {"action": "MeterValues", "tx": ref, "ts": i, "boot": 1,
            "payload": {"connectorId": 1, "meterValue": [{"timestamp": "2026-11-24T20:45:00Z",
                        "sampledValue": [{"value": str(i), "context": "Sample.Periodic",
                                          "measurand": "Energy.Active.Import.Register",
                                          "unit": "Wh"}]}]}}


def drain(q):
    out = []
    while True:
        head = q.peek()
        if head is None:
            return out
        out.append(head[1])
        q.remove(head[0])


def test_fifo_order_across_segments_and_reboots():
    root = fresh_root()
    st = Store(root)
    q = TxQueue(root, store=st)
    for i in range(200):  # > one segment
        q.push(start_msg(i))
    assert len(q) == 200
    for _ in range(50):
        pos, item = q.peek()
        q.remove(pos)
    q2 = TxQueue(root, store=Store(root))  # reboot
    assert len(q2) == 150
    refs = [m["tx"] for m in drain(q2)]
    assert refs == list(range(50, 200)), refs[:5]
    assert len(TxQueue(root, store=Store(root))) == 0


def test_tries_of_the_head_survive_a_reboot():
    root = fresh_root()
    q = TxQueue(root, store=Store(root))
    q.push(start_msg(1))
    pos, item = q.peek()
    item["tries"] = 2
    q.update(pos, item)
    q2 = TxQueue(root, store=Store(root))
    assert q2.peek()[1]["tries"] == 2


def test_torn_tail_is_cut_and_the_rest_kept():
    root = fresh_root()
    q = TxQueue(root, store=Store(root))
    for i in range(5):
        q.push(start_msg(i))
    seg = q._path(q.tail_seg)
    with open(seg, "ab") as f:
        f.write(b"\x01\x00\xde\xad")  # a record header cut by the power loss
    q2 = TxQueue(root, store=Store(root))
    assert len(q2) == 5
    q2.push(start_msg(5))
    assert [m["tx"] for m in drain(q2)] == [0, 1, 2, 3, 4, 5]


def test_corrupt_record_in_an_old_segment_loses_only_that_segment_tail():
    root = fresh_root()
    q = TxQueue(root, store=Store(root))
    i = 0
    while q.tail_seg == q.seg:
        q.push(start_msg(i))
        i += 1
    first_seg_records = i - 1
    for j in range(10):
        q.push(start_msg(1000 + j))
    path = q._path(q.seg)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[200] ^= 0xFF  # garble a byte of the third record or so
    with open(path, "wb") as f:
        f.write(data)
    q2 = TxQueue(root, store=Store(root))
    refs = [m["tx"] for m in drain(q2)]
    assert refs[-10:] == [1000 + j for j in range(10)]
    assert len(refs) < first_seg_records + 10


def test_thinning_drops_periodic_meter_values_first_never_start_or_stop():
    root = fresh_root()
    q = TxQueue(root, store=Store(root), budget=8000)
    kept_mv = 0
    for i in range(200):
        if q.push(meter_msg(1, i)):
            kept_mv += 1
    assert q.dropped > 0 and kept_mv < 200
    for i in range(20):
        assert q.push(start_msg(i)) is True
        assert q.push(stop_msg(i)) is True
    actions = [m["action"] for m in drain(q)]
    assert actions.count("StartTransaction") == 20 and actions.count("StopTransaction") == 20


def test_capacity_1000_sessions_and_7_days_of_15_minute_meter_values():
    root = fresh_root()
    q = TxQueue(root, store=Store(root))
    for i in range(1000):
        assert q.push(start_msg(i))
        assert q.push(stop_msg(i))
    per_session = q.bytes / 1000
    for i in range(7 * 96):
        assert q.push(meter_msg(999, i)), "MeterValues %d thinned" % i
    assert len(q) == 2000 + 7 * 96 and q.dropped == 0
    assert q.bytes <= q.budget
    print("txq bytes: %d total, %.0f per session (start+stop with transactionData), budget %d"
          % (q.bytes, per_session, q.budget))


def test_ram_does_not_grow_with_queue_length():
    root = fresh_root()
    q = TxQueue(root, store=Store(root))
    for i in range(10):
        q.push(start_msg(i))
    gc.collect()
    small = gc.mem_alloc()
    for i in range(10, 2000):
        q.push(start_msg(i))
    del q
    gc.collect()
    q = TxQueue(root, store=Store(root))  # boot scan of 2000 messages
    q.peek()
    gc.collect()
    big = gc.mem_alloc()
    assert big - small < 2048, (small, big)


class _RAMBlockDev:
    """A flash chip in RAM, so the queue runs on real littlefs (os.VfsLfs2)."""

    def __init__(self, block_size, blocks):
        self.block_size = block_size
        self.data = bytearray(block_size * blocks)

    def readblocks(self, n, buf, off=0):
        a = n * self.block_size + off
        buf[:] = self.data[a:a + len(buf)]

    def writeblocks(self, n, buf, off=None):
        a = n * self.block_size + (off or 0)
        self.data[a:a + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // self.block_size
        if op == 5:
            return self.block_size
        if op == 6:
            return 0


def test_flash_blocks_used_on_littlefs():
    bd = _RAMBlockDev(4096, 512)  # 2 MB, the ESP32's usual filesystem size
    os.VfsLfs2.mkfs(bd)
    os.mount(os.VfsLfs2(bd), "/lfs")
    try:
        free0 = os.statvfs("/lfs")[3]
        q = TxQueue("/lfs", store=Store("/lfs"))
        for i in range(1000):
            q.push(start_msg(i))
            q.push(stop_msg(i))
        for i in range(7 * 96):
            q.push(meter_msg(999, i))
        used = (free0 - os.statvfs("/lfs")[3]) * 4096
        print("littlefs: %d bytes of flash for 1000 sessions + 672 MeterValues (%.0f B/session)"
              % (used, used / 1000))
        assert used <= q.budget + 64 * 1024
        q2 = TxQueue("/lfs", store=Store("/lfs"))
        assert len(q2) == 2672
    finally:
        os.umount("/lfs")
