"""tools/mkbundle.py: the bundle it writes reads back, bad input is refused, --list checks one.

The device side of the same format is host_tests/mp/test_bundle.py; the two meet end to end in
host_tests/test_firmware_sim.py.
"""

import hashlib
import json
import struct

import pytest

import mkbundle

FILES = [("lib/a.mpy", b"M\x06\x00\x1fcode"), ("lib/pkg/b.py", b"B = 1\n"), ("boards/x.py", b"")]


def test_round_trip_and_layout():
    data = mkbundle.build_bundle(FILES, "1.2.3+lab")
    head, entries = mkbundle.read_bundle(data)
    assert head == {"format": 1, "version": "1.2.3+lab", "files": 3, "bytes": 14}
    assert [(p, s) for p, s, _ in entries] == [(p, len(d)) for p, d in FILES]
    assert data[:7] == b"EVFWB1\n"
    (n,) = struct.unpack(">I", data[7:11])
    assert json.loads(data[11 : 11 + n])["version"] == "1.2.3+lab"
    assert data[-32:] == hashlib.sha256(data[:-32]).digest()


def test_refusals():
    for version in ("", ".x", "a/b", "x" * 33, "sp ace"):
        with pytest.raises(ValueError):
            mkbundle.build_bundle(FILES, version)
    for path in ("etc/a.py", "lib/../a.py", "lib//a.py", "lib/" + "a" * 100 + ".py"):
        with pytest.raises(ValueError):
            mkbundle.build_bundle([(path, b"")], "1")
    bad = bytearray(mkbundle.build_bundle(FILES, "1"))
    bad[60] ^= 1
    with pytest.raises(ValueError):
        mkbundle.read_bundle(bytes(bad))


def test_cli_builds_from_a_tree_and_lists(tmp_path, capsys):
    src = tmp_path / "device"
    for path, data in FILES + [("main.py", b"not bundled"), ("lib/notes.txt", b"skipped")]:
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_bytes(data)
    out = tmp_path / "app.evb"
    assert mkbundle.main(["--version", "2.0", "--src", str(src), "-o", str(out)]) == 0
    assert mkbundle.main(["--list", str(out)]) == 0
    text = capsys.readouterr().out
    assert "version 2.0: 3 files" in text and "lib/pkg/b.py" in text and "main.py" not in text
    out.write_bytes(out.read_bytes()[:-1])
    assert mkbundle.main(["--list", str(out)]) == 1
