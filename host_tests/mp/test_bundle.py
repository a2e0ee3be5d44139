"""Application bundles: the sans-I/O parser, staging into a temp dir, switching and rollback.

update.bundle gets every case whole, byte by byte and with trailing data; update.install stages
real files under a temp dir; update.apps switches, counts trial boots, rolls back and puts the
app dir first on sys.path (the module really imports from it). The whole flow over HTTP in the
simulator is host_tests/test_firmware_sim.py.
"""
# mp-heapsize: 256K

import sys

from store import tree
from update import CorruptError, RefusedError, apps
from update import bundle as b
from update.install import Download
from _fwkit import make_bundle, mpy, read, sha, store, tmpdir
from _check import raises


def events(data, step=None, mpy_major=6):
    """Run the parser; returns (manifest, {path: bytes}, event kinds)."""
    p = b.BundleParser(mpy_major)
    files = {}
    kinds = []
    cur = None
    step = step or max(1, len(data))
    pieces = (data[i : i + step] for i in range(0, len(data), step))
    for piece in _then_eof(pieces):
        p.feed(piece)
        while True:
            ev = p.next_event()
            if ev is None:
                break
            kinds.append(ev[0])
            if ev[0] == b.FILE:
                cur = ev[1]
                files[cur] = bytearray()
            elif ev[0] == b.DATA:
                files[cur] += ev[1]
    return p.header, files, kinds


def _then_eof(pieces):
    for piece in pieces:
        yield piece
    yield b""


# ---- parser --------------------------------------------------------------------------------
def test_parse_whole_and_byte_by_byte():
    data = make_bundle("1.2.0")
    for step in (None, 1, 13, 4096):
        m, files, kinds = events(data, step)
        assert m == {"format": 1, "version": "1.2.0", "files": 4, "bytes": 1231}, m
        assert sorted(files) == ["boards/sim.py", "lib/fwdemo/__init__.mpy",
                                 "lib/fwdemo/core.mpy", "lib/fwdemo_top.py"]
        assert bytes(files["lib/fwdemo_top.py"]) == b"VALUE = 42\n"
        assert kinds[0] == b.MANIFEST and kinds[-1] == b.END
        assert kinds.count(b.FILE) == kinds.count(b.FILE_END) == 4


def test_trailing_data_is_refused():
    raises(CorruptError, lambda: events(make_bundle() + b"x"), "after the bundle trailer")
    raises(CorruptError, lambda: events(make_bundle() + b"x", 5), "after the bundle trailer")


def test_empty_file_in_a_bundle():
    data = make_bundle(files=[("lib/empty.py", b""), ("lib/x.py", b"X = 1\n")])
    _, files, _ = events(data)
    assert bytes(files["lib/empty.py"]) == b""


def test_corrupt_file_trailer_and_truncation():
    raises(CorruptError, lambda: events(make_bundle(corrupt_file="lib/fwdemo_top.py")),
           "SHA-256 mismatch")
    raises(CorruptError, lambda: events(make_bundle(trailer=b"\0" * 32)), "trailer")
    data = make_bundle()
    for cut in (3, 11, 40, len(data) // 2, len(data) - 1):
        raises(CorruptError, lambda: events(data[:cut]), "truncated")


def test_header_checks_come_before_buffering():
    raises(RefusedError, lambda: events(b"EVFWB2\n" + b"\0" * 40), "magic")
    huge = b.MAGIC + bytes([0, 1, 0, 0]) + b"{}"  # a 65536-byte header announced
    raises(CorruptError, lambda: events(huge), "header length")
    raises(CorruptError, lambda: events(b.MAGIC + b"\0\0\0\0"), "header length")
    raises(CorruptError, lambda: events(b.MAGIC + bytes([0, 0, 0, 3]) + b"{x}"), "not JSON")
    long_entry = make_bundle(entry=lambda p, d: [p, len(d), sha(d), "x" * 300])
    raises(CorruptError, lambda: events(long_entry), "entry length")


def test_header_and_entry_validation():
    cases = [
        {"format": 2, "version": "1", "files": 1, "bytes": 1},
        {"format": 1, "version": "", "files": 1, "bytes": 1},
        {"format": 1, "version": "../x", "files": 1, "bytes": 1},
        {"format": 1, "version": ".hidden", "files": 1, "bytes": 1},
        {"format": 1, "version": "v" * 33, "files": 1, "bytes": 1},
        {"format": 1, "version": "1", "files": 0, "bytes": 0},
        {"format": 1, "version": "1", "files": 513, "bytes": 0},
        {"format": 1, "version": "1", "files": 1, "bytes": -1},
        {"format": 1, "version": "1", "files": 1},
        ["format", 1],
    ]
    for h in cases:
        raises(CorruptError, lambda: b.check_header(h))
    entries = [
        (["lib/a.mpy", 1], "entry"),
        (["lib/a.mpy", -1, "0" * 64], "size"),
        (["lib/a.mpy", 262145, "0" * 64], "size"),
        (["lib/a.mpy", 1, "0" * 63], "sha256"),
        (["lib/a.mpy", 1, "A" * 64], "hex"),
    ]
    for e, text in entries:
        raises(CorruptError, lambda: b.check_entry(e), text)
    for path in ("/lib/a.mpy", "lib/../a.mpy", "lib//a.mpy", "etc/a.mpy", "lib/a.txt", "lib",
                 "lib/./a.py", "lib/a b.py", "boards/x\\y.py", "lib/" + "a" * 100 + ".py"):
        raises(CorruptError, lambda: b.check_path(path))
    b.check_path("lib/ocpp16/core.mpy")
    b.check_path("boards/esp32_devkitc.mpy")


def test_sizes_must_add_up_to_the_header():
    files = [("lib/a.py", b"A = 1\n"), ("lib/b.py", b"B = 2\n")]
    small = {"format": 1, "version": "1", "files": 2, "bytes": 7}
    raises(CorruptError, lambda: events(make_bundle(files=files, header=small)), "larger than")
    big = {"format": 1, "version": "1", "files": 2, "bytes": 99}
    raises(CorruptError, lambda: events(make_bundle(files=files, header=big)), "add up")
    fewer = {"format": 1, "version": "1", "files": 1, "bytes": 6}
    raises(CorruptError, lambda: events(make_bundle(files=files, header=fewer)), "trailer")


def test_a_path_listed_twice_is_refused_by_the_writer():
    files = [("lib/a.py", b"A = 1\n"), ("lib/a.py", b"A = 2\n")]
    raises(CorruptError, lambda: stage(store(), make_bundle(files=files)), "twice")


def test_mpy_of_another_version_is_refused_not_corrupt():
    data = make_bundle(files=[("lib/new.mpy", mpy(b"x", major=7))])
    raises(RefusedError, lambda: events(data), ".mpy version 7")
    raises(RefusedError, lambda: events(data, 1), ".mpy version 7")
    data = make_bundle(files=[("lib/new.mpy", b"#not mpy")])
    raises(CorruptError, lambda: events(data), "not a .mpy")


def test_top_names():
    names = [b.top_name(p) for p in ("lib/charger/app.mpy", "lib/log.mpy", "boards/a.mpy")]
    assert names == ["charger", "log", "boards"]


# ---- staging (update.install) ------------------------------------------------------------------
def stage(st, data, step=512, running=None):
    d = Download(st, running)
    for i in range(0, len(data), step):
        d.feed(data[i : i + step])
    return d, d.finish()


def test_download_stages_and_commits_a_bundle():
    st = store()
    d, res = stage(st, make_bundle("2.0.0"), step=100)
    tops = ["fwdemo", "fwdemo_top", "boards"]
    assert res == {"kind": "bundle", "version": "2.0.0", "tops": tops}
    root = apps.app_dir(st.root, "2.0.0")
    assert read(root + "/lib/fwdemo_top.py") == b"VALUE = 42\n"
    assert read(root + "/lib/fwdemo/core.mpy") == mpy(b"core" * 300)
    assert b'"version": "2.0.0"' in read(root + "/manifest.json")
    assert read(root + "/boards/sim.py") == b"# board\n"
    assert not tree.exists(root + ".staging")


def test_corrupt_download_leaves_nothing_and_keeps_the_old_tree():
    st = store()
    stage(st, make_bundle("2.0.0"))
    d = Download(st, None)
    data = make_bundle("2.0.0", corrupt_file="lib/fwdemo/core.mpy")
    raises(CorruptError, lambda: d.feed(data))
    d.abort()
    assert not tree.exists(apps.app_dir(st.root, "2.0.0") + ".staging")
    assert read(apps.app_dir(st.root, "2.0.0") + "/lib/fwdemo_top.py") == b"VALUE = 42\n"
    d = Download(st, None)
    d.feed(make_bundle("3.0.0")[:-5])
    raises(CorruptError, d.finish, "truncated")
    d.abort()
    assert not tree.exists(apps.app_dir(st.root, "3.0.0"))
    assert not tree.exists(apps.app_dir(st.root, "3.0.0") + ".staging")


def test_kinds_told_apart_by_the_first_bytes():
    st = store()
    raises(RefusedError, lambda: Download(st, None).feed(b"<html>not firmware</html>"),
           "unknown image format")
    raises(RefusedError, lambda: Download(st, None).feed(b"\xe9\x03rest of an image"),
           "need an ESP32")
    raises(CorruptError, Download(st, None).finish, "empty")
    d = Download(st, None)
    d.feed(b"EVF")  # the kind is not known yet: nothing decided, nothing written
    assert d.kind is None and tree.listdir(st.root) == []


def test_running_version_and_space_are_refused():
    st = store()
    raises(RefusedError, lambda: stage(st, make_bundle("1.0.0"), running="1.0.0"), "running")
    import store.tree as t

    orig = t.free_bytes
    t.free_bytes = lambda path: 1000
    try:
        raises(RefusedError, lambda: stage(st, make_bundle("1.1.0")), "bytes of flash")
    finally:
        t.free_bytes = orig


# ---- app record: switch, trial boots, rollback -------------------------------------------------
def test_switch_confirm_and_running_version():
    st = store()
    assert apps.select(st) is None and apps.running_version(st) is None
    stage(st, make_bundle("2.0.0"))
    apps.switch(st, "2.0.0", ["fwdemo"])
    assert apps.select(st) == apps.app_dir(st.root, "2.0.0")
    assert apps.load(st)["trial"] == 1
    assert apps.confirm(st) is True and apps.confirm(st) is False
    for _ in range(5):  # confirmed: boots no longer count
        assert apps.select(st) == apps.app_dir(st.root, "2.0.0")
    assert apps.running_version(st) == "2.0.0"


def test_unconfirmed_bundle_rolls_back_to_the_previous_one():
    st = store()
    stage(st, make_bundle("2.0.0"))
    apps.switch(st, "2.0.0", ["fwdemo"])
    apps.confirm(st)
    stage(st, make_bundle("3.0.0"))
    apps.switch(st, "3.0.0", ["fwdemo", "x"])
    assert apps.select(st).endswith("app-3.0.0")  # trial boot 1
    assert apps.select(st).endswith("app-3.0.0")  # trial boot 2 (one spare for a power cut)
    assert apps.select(st).endswith("app-2.0.0")  # never confirmed: rolled back
    rec = apps.load(st)
    assert rec["active"] == "2.0.0" and rec["tops"] == ["fwdemo"] and "trial" not in rec
    assert apps.take_failed(st) == "3.0.0" and apps.take_failed(st) is None
    apps.cleanup(st)
    assert tree.listdir(st.root).count("app-3.0.0") == 0


def test_first_bundle_rolls_back_to_the_base_image_and_missing_dir_too():
    st = store()
    stage(st, make_bundle("2.0.0"))
    apps.switch(st, "2.0.0", ["fwdemo"])
    for _ in range(2):
        apps.select(st)
    assert apps.select(st) is None
    assert apps.take_failed(st) == "2.0.0" and apps.running_version(st) is None
    st2 = store()
    st2.save("app", {"active": "9.9.9"})  # its directory is gone
    assert apps.select(st2) is None


def test_bad_record_means_the_base_image():
    st = store()
    st.save("app", ["not", "a", "dict"])
    assert apps.select(st) is None


def test_cleanup_keeps_active_and_previous():
    st = store()
    for v in ("1.0.0", "2.0.0", "3.0.0"):
        stage(st, make_bundle(v))
        apps.switch(st, v, [])
        apps.confirm(st)
    tree.StagingDir(st.root, "app-4.0.0")
    apps.cleanup(st)
    names = sorted(n for n in tree.listdir(st.root) if n.startswith("app-"))
    assert names == ["app-2.0.0", "app-3.0.0"], names


def test_use_puts_the_bundle_first_and_forgets_modules_it_replaces():
    base = tmpdir()
    with open(base + "/fwdemo_top.py", "w") as f:
        f.write("VALUE = 1\n")
    sys.path.insert(0, base)
    saved = list(sys.path)
    try:
        import fwdemo_top

        assert fwdemo_top.VALUE == 1
        st = store()
        _, res = stage(st, make_bundle("5.0.0"))
        apps.switch(st, "5.0.0", res["tops"])
        assert apps.boot(st, "nosuchboard") is True
        assert sys.path[0] == apps.app_dir(st.root, "5.0.0") + "/lib"
        import fwdemo_top

        assert fwdemo_top.VALUE == 42  # the bundle's module, imported afresh
        assert apps.boot(store(), "sim") is False  # nothing installed: base image
    finally:
        sys.path[:] = saved
        sys.path.remove(base)
        for name in ("fwdemo_top", "fwdemo"):
            sys.modules.pop(name, None)


def test_use_adds_the_bundle_root_only_with_this_boards_module():
    st = store()
    _, res = stage(st, make_bundle("6.0.0"))
    path = apps.app_dir(st.root, "6.0.0")
    saved = list(sys.path)
    try:
        apps.use(path, res["tops"], "sim")  # the bundle carries boards/sim.py
        assert sys.path[:2] == [path, path + "/lib"]
    finally:
        sys.path[:] = saved
    assert sha(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_parser_ram_does_not_grow_with_the_number_of_files():
    import gc

    def peak(n):
        files = [("lib/p{}/module_{}.py".format(i % 7, i), b"X = %d\n" % i) for i in range(n)]
        data = make_bundle(files=files)
        del files
        gc.collect()
        p = b.BundleParser(6)
        p.feed(data)
        top = 0
        base = gc.mem_alloc()
        while True:
            ev = p.next_event()
            if ev is None or ev[0] == b.END:
                break
            gc.collect()
            top = max(top, gc.mem_alloc() - base)
        assert ev is not None
        return top

    small, large = peak(10), peak(200)
    assert large < small + 1024, (small, large)
