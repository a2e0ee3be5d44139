"""store.queue.TxQueue: a head that reached the end of its segment before the tail moved on.

Found by the long chaos run (host_tests/test_chaos.py, seed 759152836, 201 sessions): the head
read the last record of the segment the tail was still writing, the next message opened a new
segment, and peek() then took the clean end of the old segment for an unreadable record -
logged "segment 1 unreadable", and counted one message too few, so the last StopTransaction
stayed on flash unsent (queued_messages 0) until the next reboot recounted.
"""
# mp-heapsize: 1M

import os
import random

from store import Store
from store.queue import TxQueue, SEGMENT_BYTES
from store.tree import rmtree

_n = [0]


def fresh_root():
    _n[0] += 1
    root = "/tmp/txq-segend-%d-%d" % (random.getrandbits(24), _n[0])
    rmtree(root)
    return root


def msg(i, action="MeterValues"):
    return {"action": action, "tx": 1, "ts": i, "boot": 1,
            "payload": {"connectorId": 1, "meterValue": [{"timestamp": "2026-11-24T20:45:00Z",
                        "sampledValue": [{"value": "%08d" % i}]}]}}


def fill_one_segment(q):
    """Push equal-sized messages until one more would open the next segment; returns how many."""
    n = 0
    while True:
        q.push(msg(n))
        n += 1
        rec = q.tail_off // n
        if q.tail_off + rec > SEGMENT_BYTES:
            return n


def test_the_next_segment_is_read_after_the_head_drained_the_tail_segment():
    root = fresh_root()
    q = TxQueue(root, store=Store(root))
    n = fill_one_segment(q)
    for i in range(n):  # the CSMS answers everything: the head sits at the segment's end
        pos, item = q.peek()
        assert item["ts"] == i
        q.remove(pos)
    assert len(q) == 0 and q.peek() is None
    q.push(msg(10**6, "StopTransaction"))  # does not fit: a new segment
    assert len(q) == 1
    head = q.peek()
    assert head is not None and head[1]["action"] == "StopTransaction"
    q.remove(head[0])
    assert len(q) == 0 and q.peek() is None
    q2 = TxQueue(root, store=Store(root))  # a reboot agrees: nothing left
    assert len(q2) == 0
    rmtree(root)


def test_a_real_unreadable_record_is_still_skipped_and_counted():
    root = fresh_root()
    q = TxQueue(root, store=Store(root))
    n = fill_one_segment(q)
    q.push(msg(n))  # opens segment 2
    path = "{}/{:08d}.seg".format(q.dir, q.seg)
    with open(path, "r+b") as f:  # garble the second record of segment 1
        data = bytearray(f.read())
        first = 6 + (data[0] << 8 | data[1])
        data[first + 8] ^= 0xFF
        f.seek(0)
        f.write(data)
    pos, item = q.peek()
    assert item["ts"] == 0
    q.remove(pos)
    head = q.peek()  # the rest of segment 1 is lost (logged), segment 2 is read
    assert head is not None and head[1]["ts"] == n
    rmtree(root)
