"""Build an application bundle (what UpdateFirmware installs) from the .mpy image.

    python tools/mkbundle.py --version 1.2.0 [--src build/device] [-o build/app-1.2.0.evb]
    python tools/mkbundle.py --version 1.2.0 --compile       # run `make mpy` first
    python tools/mkbundle.py --list build/app-1.2.0.evb      # check and list a bundle

The bundle holds every file under lib/ and boards/ of the source tree (make mpy output:
build/device; boot.py and main.py are not part of it: they select and check bundles, so they
change only with `make deploy` or a full image). Format (README "Firmware updates", parser in
lib/update/bundle.py): magic b"EVFWB1\\n", a u32 big-endian length and the JSON header
{"format": 1, "version", "files": count, "bytes": sum of sizes}, then per file a u16 length, its
JSON entry [path, size, sha256 hex] and its bytes, and last the SHA-256 of everything before.
`build_bundle()` and `read_bundle()` are also used by the tests.
"""

import argparse
import hashlib
import json
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAGIC = b"EVFWB1\n"
FORMAT = 1
TOP_DIRS = ("lib", "boards")
SUFFIXES = (".mpy", ".py")
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
VERSION_CHARS = NAME_CHARS | {"+"}
MAX_FILES = 512  # the device's bounds (lib/update/bundle.py)
MAX_FILE = 262144
MAX_PATH = 96


def collect(src):
    """[(relative path, bytes)] of every .mpy/.py file under src/lib and src/boards, sorted."""
    src = Path(src)
    out = []
    for top in TOP_DIRS:
        base = src / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts:
                out.append((path.relative_to(src).as_posix(), path.read_bytes()))
    if not out:
        raise SystemExit("no .mpy or .py files under {}/lib or {}/boards".format(src, src))
    return out


def build_bundle(files, version):
    """The bundle bytes for [(path, bytes)] and a version string (ValueError if unusable)."""
    if not 1 <= len(version) <= 32 or version[0] == "." or set(version) - VERSION_CHARS:
        raise ValueError("version must be 1..32 characters of [A-Za-z0-9._+-]")
    if not 1 <= len(files) <= MAX_FILES:
        raise ValueError("a bundle holds 1..{} files".format(MAX_FILES))
    head = {"format": FORMAT, "version": version, "files": len(files),
            "bytes": sum(len(d) for _, d in files)}
    raw = json.dumps(head, separators=(",", ":")).encode()
    out = bytearray(MAGIC + struct.pack(">I", len(raw)) + raw)
    for path, data in files:
        parts = path.split("/")
        if (len(path) > MAX_PATH or parts[0] not in TOP_DIRS or len(parts) < 2
                or any(not p or p in (".", "..") or set(p) - NAME_CHARS for p in parts)):
            raise ValueError("file path {!r} cannot go into a bundle".format(path))
        if len(data) > MAX_FILE:
            raise ValueError("{} is larger than {} bytes".format(path, MAX_FILE))
        entry = json.dumps([path, len(data), hashlib.sha256(data).hexdigest()],
                           separators=(",", ":")).encode()
        out += struct.pack(">H", len(entry)) + entry + data
    return bytes(out + hashlib.sha256(out).digest())


def read_bundle(data):
    """(header, [(path, size, sha256 hex)]) of a bundle, every hash checked (ValueError)."""
    if data[:7] != MAGIC or len(data) < 11 + 32:
        raise ValueError("not a bundle")
    if hashlib.sha256(data[:-32]).digest() != data[-32:]:
        raise ValueError("trailer SHA-256 mismatch")
    (n,) = struct.unpack(">I", data[7:11])
    head = json.loads(data[11 : 11 + n])
    pos = 11 + n
    entries = []
    for _ in range(head["files"]):
        (k,) = struct.unpack(">H", data[pos : pos + 2])
        path, size, digest = json.loads(data[pos + 2 : pos + 2 + k])
        pos += 2 + k
        if hashlib.sha256(data[pos : pos + size]).hexdigest() != digest:
            raise ValueError("{}: SHA-256 mismatch".format(path))
        entries.append((path, size, digest))
        pos += size
    if pos != len(data) - 32:
        raise ValueError("length does not add up")
    return head, entries


def compile_tree(out):
    """Compile lib/ and boards/ (without the simulated board) into `out` like `make mpy`."""
    sys.path.insert(0, str(ROOT / "tools"))
    import deploy

    out = Path(out)
    sizes = {}
    deploy.compile_tree(ROOT / "lib", Path("."), out / "lib", sizes)
    deploy.compile_tree(ROOT, Path("boards"), out, sizes)
    (out / "boards" / "sim.mpy").unlink(missing_ok=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--version", help="version of the bundle (firmwareVersion)")
    ap.add_argument("--list", metavar="BUNDLE", help="check a bundle and list its files")
    ap.add_argument("--src", default=str(ROOT / "build" / "device"),
                    help="tree with lib/ and boards/ (default build/device, from make mpy)")
    ap.add_argument("--compile", action="store_true",
                    help="compile lib/ and boards/ into --src first (like make mpy)")
    ap.add_argument("-o", "--output", help="bundle file (default build/app-VERSION.evb)")
    args = ap.parse_args(argv)
    if args.list:
        try:
            head, entries = read_bundle(Path(args.list).read_bytes())
        except (OSError, ValueError, KeyError) as e:
            print("{}: {}".format(args.list, e))
            return 1
        print("version {}: {} files, {} bytes".format(head["version"], head["files"],
                                                      head["bytes"]))
        for path, size, digest in entries:
            print("{:8d}  {}  {}".format(size, digest[:16], path))
        return 0
    if not args.version:
        ap.error("--version is required to build a bundle")
    if args.compile:
        src = Path(args.src)
        if src.exists() and any(src.iterdir()) and src != ROOT / "build" / "device":
            ap.error("--compile needs an empty --src (stale files would go into the bundle)")
        if src == ROOT / "build" / "device":
            sys.path.insert(0, str(ROOT / "tools"))
            import deploy

            deploy.build(quiet=True)  # starts from an empty build/device, like make mpy
        else:
            compile_tree(src)
    files = collect(args.src)
    try:
        data = build_bundle(files, args.version)
    except ValueError as e:
        ap.error(str(e))
    out = Path(args.output or ROOT / "build" / "app-{}.evb".format(args.version))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    print("{}: {} files, {} bytes, version {}".format(out, len(files), len(data), args.version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
