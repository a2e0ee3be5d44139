"""store.idtable.IdTable: the Local Authorization List on flash (OCPP 1.6 3.5.2, 5.17).

Full and Differential updates, 1,000 entries in list-sized chunks, capacity, bad entries, a
staged update visible before it is materialised, reopening, a power cut injected before every
file operation of an update (the list is then the old one or the whole new one), a damaged
journal, and lookup RAM that does not grow with the list.
"""
# mp-heapsize: 192K

import builtins
import gc
import os
import random

from store import idtable
from store.idtable import IdTable, IdTableFull
from store.tree import rmtree as _rmtree

CHUNK = 47  # SendLocalListMaxLength: entries per SendLocalList message


def fresh_root():
    root = "/tmp/idt-test-%d" % random.getrandbits(24)
    _rmtree(root)
    return root


def tag(i):
    return "TAG%05d" % i


def entry(i, status="Accepted"):
    expiry = 1900000000 + i if i % 3 == 0 else None
    parent = "P%d" % (i % 7) if i % 2 else None
    return (tag(i), status, expiry, parent)


def fill(t, n, version=1, chunk=CHUNK):
    """n entries: one Full message, then Differential messages of `chunk` entries."""
    t.stage(version, True, [entry(i) for i in range(min(n, chunk))])
    t.apply_all()
    i = chunk
    while i < n:
        version += 1
        t.stage(version, False, [entry(k) for k in range(i, min(n, i + chunk))])
        t.apply_all()
        i += chunk
    return version


def content(t):
    return sorted(t.items())


def test_empty_table_has_version_zero_and_no_entries():
    root = fresh_root()
    t = IdTable(root)
    assert len(t) == 0 and t.version == 0
    assert t.get("04A1B2C3") is None
    assert t.get("") is None and t.get("X" * 21) is None and t.get(None) is None
    _rmtree(root)


def test_full_update_then_case_insensitive_lookups():
    root = fresh_root()
    t = IdTable(root)
    t.stage(7, True, [entry(i) for i in range(30)])
    t.apply_all()
    assert len(t) == 30 and t.version == 7
    for i in range(30):
        _, status, expiry, parent = entry(i)
        assert t.get(tag(i)) == (status, expiry, parent), i
        assert t.get(tag(i).lower()) == (status, expiry, parent)
    assert t.get("TAG99999") is None
    _rmtree(root)


def test_thousand_entries_in_differential_chunks_then_capacity():
    root = fresh_root()
    t = IdTable(root, capacity=1000)
    version = fill(t, 1000)
    assert len(t) == 1000 and t.version == version == 22
    for i in range(1000):
        assert t.get(tag(i)) == entry(i)[1:], i
    # One more is over capacity: refused whole, nothing changed.
    try:
        t.stage(version + 1, False, [entry(1000), entry(1)])
        raise AssertionError("over capacity accepted")
    except IdTableFull:
        pass
    assert len(t) == 1000 and t.version == version and t.get(tag(1000)) is None
    # Updating and removing existing entries fits: count follows.
    t.stage(version + 1, False, [(tag(5), "Blocked", None, None), (tag(6), None, None, None)])
    t.apply_all()
    assert len(t) == 999 and t.get(tag(5)) == ("Blocked", None, None) and t.get(tag(6)) is None
    # Reopened (reboot): same list.
    t2 = IdTable(root, capacity=1000)
    assert len(t2) == 999 and t2.version == version + 1
    assert t2.get(tag(999)) == entry(999)[1:]
    _rmtree(root)


def test_full_replaces_the_whole_list():
    root = fresh_root()
    t = IdTable(root)
    fill(t, 60)
    t.stage(9, True, [entry(500), entry(501)])
    t.apply_all()
    assert len(t) == 2 and t.version == 9
    assert t.get(tag(0)) is None and t.get(tag(500)) == entry(500)[1:]
    assert sorted(e[0] for e in os.ilistdir(root + "/auth")) == ["g2", "head.json",
                                                                  "head.json.bak"]
    _rmtree(root)


def test_differential_later_entry_wins_and_removing_all_gives_version_zero():
    root = fresh_root()
    t = IdTable(root)
    t.stage(1, True, [entry(1), entry(2)])
    t.apply_all()
    t.stage(2, False, [(tag(3), "Invalid", None, None), (tag(3), "Accepted", None, "PP")])
    t.apply_all()
    assert t.get(tag(3)) == ("Accepted", None, "PP") and len(t) == 3
    t.stage(3, False, [(tag(k), None, None, None) for k in (1, 2, 3, 4)])  # 4: not listed
    t.apply_all()
    assert len(t) == 0 and t.version == 0
    assert IdTable(root).version == 0
    _rmtree(root)


def test_bad_entries_are_refused_and_change_nothing():
    root = fresh_root()
    t = IdTable(root)
    t.stage(1, True, [entry(1)])
    t.apply_all()
    bad = (
        (True, [(tag(2), None, None, None)]),  # Full entry without idTagInfo
        (False, [("X" * 21, "Accepted", None, None)]),
        (False, [("", "Accepted", None, None)]),
        (False, [(tag(2), "Unknown", None, None)]),
        (False, [(tag(2), "Accepted", None, "P" * 21)]),
    )
    for full, entries in bad:
        try:
            t.stage(2, full, entries)
            raise AssertionError("accepted %r" % (entries,))
        except ValueError:
            pass
        assert t.version == 1 and len(t) == 1 and not t.busy
    assert content(IdTable(root)) == [(tag(1).lower(),) + entry(1)[1:]]
    _rmtree(root)


def test_expiry_before_1970_is_kept_as_expired_not_as_none():
    root = fresh_root()
    t = IdTable(root)
    t.stage(1, True, [("OLD", "Accepted", -5, None), ("FAR", "Accepted", 2**40, None)])
    t.apply_all()
    assert t.get("OLD") == ("Accepted", 1, None)
    assert t.get("FAR") == ("Accepted", 0xFFFFFFFF, None)
    _rmtree(root)


def test_staged_update_is_seen_before_it_is_materialised():
    root = fresh_root()
    t = IdTable(root)
    fill(t, 40)
    t.stage(5, False, [(tag(1), None, None, None), (tag(2), "Blocked", None, None), entry(77)])
    assert t.busy and t.version == 5 and len(t) == 40
    steps = 0
    while True:
        assert t.get(tag(1)) is None and t.get(tag(2)) == ("Blocked", None, None)
        assert t.get(tag(77)) == entry(77)[1:] and t.get(tag(3)) == entry(3)[1:]
        if not t.apply_step():
            break
        steps += 1
    assert 1 <= steps <= 3 and not t.busy
    # A staged Full update hides everything it does not list at once.
    t.stage(6, True, [entry(900)])
    assert t.get(tag(3)) is None and t.get(tag(900)) == entry(900)[1:] and len(t) == 1
    _rmtree(root)


class Crash(Exception):
    pass


class CrashingOS:
    """The os module, but the `at`-th file-changing call raises Crash (a power cut)."""

    def __init__(self, at):
        self.at = at
        self.n = 0

    def tick(self):
        self.n += 1
        if self.n == self.at:
            raise Crash()

    def rename(self, a, b):
        self.tick()
        os.rename(a, b)

    def remove(self, p):
        self.tick()
        os.remove(p)

    def rmdir(self, p):
        self.tick()
        os.rmdir(p)

    def stat(self, p):
        return os.stat(p)

    def ilistdir(self, p):
        return os.ilistdir(p)


class CrashingFile:
    def __init__(self, f, cos):
        self.f = f
        self.cos = cos

    def write(self, data):
        self.cos.tick()
        if self.cos.n + 1 == self.cos.at and len(data) > 1:
            self.f.write(bytes(data)[: len(data) // 2])  # torn: half of it reaches flash
            self.cos.tick()
        return self.f.write(data)

    def flush(self):
        self.f.flush()

    def fileno(self):
        return self.f.fileno()

    def close(self):
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def _crashing(at):
    cos = CrashingOS(at)

    def crashing_open(path, mode="r"):
        f = builtins.open(path, mode)
        return CrashingFile(f, cos) if "w" in mode else f

    idtable.os = cos
    idtable.open = crashing_open
    return cos


def _restore():
    idtable.os = os
    idtable.open = builtins.open


def _base(root):
    t = IdTable(root)
    t.stage(1, True, [entry(i) for i in range(20)])
    t.apply_all()
    return t


def _power_cut_everywhere(update):
    """Cut the power before each file operation of `update` in turn: after the reboot the list
    is the old one or the whole new one, with its version, and no stray file is left."""
    root = fresh_root()
    t = _base(root)
    old = (t.version, content(t))
    update(t)
    t.apply_all()
    new = (t.version, content(t))
    _rmtree(root)
    outcomes = set()
    at = 1
    while True:
        root = fresh_root()
        t = _base(root)
        cos = _crashing(at)
        try:
            update(t)
            t.apply_all()
            crashed = False
        except Crash:
            crashed = True
        finally:
            _restore()
        t2 = IdTable(root)
        got = (t2.version, content(t2))
        assert got == old or got == new, (at, got[0])
        outcomes.add(got == new)
        for e in os.ilistdir(root + "/auth"):
            assert not e[0].endswith(".tmp") and e[0] != "journal.bin", (at, e[0])
        _rmtree(root)
        if not crashed:
            break
        at += 1
    assert outcomes == {True, False}  # cuts on both sides of the commit point
    return at


def test_power_cut_during_a_differential_update_leaves_old_or_new_list():
    def update(t):
        changes = [entry(i) for i in range(20, 30)]
        changes += [(tag(i), None, None, None) for i in range(0, 5)]
        changes += [(tag(i), "Blocked", None, None) for i in range(5, 10)]
        t.stage(2, False, changes)

    assert _power_cut_everywhere(update) > 5


def test_power_cut_during_a_full_update_leaves_old_or_new_list():
    def update(t):
        t.stage(8, True, [entry(i) for i in range(15, 40)])

    assert _power_cut_everywhere(update) > 5


def test_damaged_journal_is_dropped_and_the_old_list_kept():
    root = fresh_root()
    t = IdTable(root)
    t.stage(1, True, [entry(1)])
    t.apply_all()
    t.stage(2, False, [entry(2)])  # staged, never materialised: then the journal is damaged
    path = root + "/auth/journal.bin"
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    raw[-3] ^= 0xFF
    with open(path, "wb") as f:
        f.write(raw)
    t2 = IdTable(root)
    assert t2.version == 1 and len(t2) == 1 and t2.get(tag(2)) is None
    assert "journal.bin" not in [e[0] for e in os.ilistdir(root + "/auth")]
    _rmtree(root)


def test_interrupted_update_is_finished_on_reopen():
    root = fresh_root()
    t = IdTable(root)
    fill(t, 50)
    t.stage(3, False, [(tag(0), None, None, None), entry(300)])
    t.apply_step()  # power cut after one bucket
    t2 = IdTable(root)
    assert not t2.busy and t2.version == 3 and len(t2) == 50
    assert t2.get(tag(0)) is None and t2.get(tag(300)) == entry(300)[1:]
    _rmtree(root)


def _lookup_cost(t, tags):
    """Bytes allocated by lookups (GC off, so garbage counts too): the worst of `tags`."""
    worst = 0
    for name in tags:
        gc.collect()
        gc.disable()
        try:
            before = gc.mem_alloc()
            t.get(name)
            cost = gc.mem_alloc() - before
        finally:
            gc.enable()
        worst = max(worst, cost)
    return worst


def test_lookup_ram_does_not_grow_with_the_list():
    small_root, big_root = fresh_root(), fresh_root()
    small = IdTable(small_root)
    fill(small, 10)
    big = IdTable(big_root)
    fill(big, 1000)
    probe = [tag(i) for i in range(0, 10)] + ["NOTLISTED%d" % i for i in range(16)]
    cost_small = _lookup_cost(small, probe)
    cost_big = _lookup_cost(big, probe)
    print("lookup allocates at most", cost_small, "B (10 entries),", cost_big, "B (1000)")
    assert cost_big == cost_small, (cost_small, cost_big)
    assert cost_big < 1024
    _rmtree(small_root)
    _rmtree(big_root)
