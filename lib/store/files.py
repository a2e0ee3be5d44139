"""Atomic, checksummed JSON records on flash with recovery of torn or corrupt files.

Format of `<name>.json`: a first line `EVS1 <crc32 hex> <length>` then the JSON text. `save()`
writes `<name>.tmp`, flushes (and fsyncs where the port has it), moves the current file to
`<name>.bak`, then renames the new file into place; rename is atomic on littlefs and POSIX, FAT
is not power-fail safe (micropython docs/reference/filesystem.rst). `load()` checks the CRC and
length; a torn or corrupt file is logged and the previous good copy (`.bak`) is used, else the
default. Nothing here raises on bad data: the charger must always boot.
Bound: records are small (configuration, provisioning); `MAX_RECORD` caps what is read.
"""

import os
import json
import binascii
from micropython import const

import log

MAX_RECORD = const(16384)
_MAGIC = "EVS1"


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def remove_quiet(path):
    """Remove a file; a missing one is fine."""
    try:
        os.remove(path)
    except OSError:
        pass


def file_size(path):
    """Size in bytes, 0 for a missing file."""
    try:
        return os.stat(path)[6]
    except OSError:
        return 0


_exists = exists
_remove = remove_quiet


def makedirs(path):
    """Create `path` and its parents (MicroPython has no os.makedirs)."""
    if not path or _exists(path):
        return
    parent = path.rsplit("/", 1)[0] if "/" in path.rstrip("/") else ""
    if parent and parent != path:
        makedirs(parent)
    try:
        os.mkdir(path)
    except OSError:
        if not _exists(path):
            raise


def write_atomic(path, data, keep_backup=True):
    """Write bytes or str to `path` atomically; the old content stays in `path.bak` if asked."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        fsync = getattr(os, "fsync", None)
        if fsync is not None:
            fsync(f.fileno())
    if keep_backup and _exists(path):
        _remove(path + ".bak")
        os.rename(path, path + ".bak")
    os.rename(tmp, path)
    sync = getattr(os, "sync", None)
    if sync is not None:
        sync()


def encode_record(obj):
    body = json.dumps(obj)
    crc = binascii.crc32(body.encode()) & 0xFFFFFFFF
    return "{} {:08x} {}\n{}".format(_MAGIC, crc, len(body), body)


def decode_record(raw):
    """Parse a record file's content; returns the object or raises ValueError."""
    nl = raw.find(b"\n")
    if nl < 0:
        raise ValueError("no header")
    head = raw[:nl].decode().split(" ")
    if len(head) != 3 or head[0] != _MAGIC:
        raise ValueError("bad header")
    body = raw[nl + 1 :]
    if len(body) != int(head[2]):
        raise ValueError("length {} != {}".format(len(body), head[2]))
    if binascii.crc32(body) & 0xFFFFFFFF != int(head[1], 16):
        raise ValueError("crc mismatch")
    return json.loads(body)


def read_record(path):
    """The record at `path`, or raise OSError (missing) / ValueError (torn, corrupt)."""
    size = os.stat(path)[6]
    if size > MAX_RECORD + 32:
        raise ValueError("record too large")
    with open(path, "rb") as f:
        raw = f.read(size)  # exactly the file: f.read(n) reserves n bytes of heap up front
    return decode_record(raw)


class Store:
    """Named records under one directory (the simulator's --state-dir, `/data` on the ESP32)."""

    def __init__(self, root):
        self.root = root.rstrip("/")
        makedirs(self.root)
        self.recovered = []  # names recovered from a backup or reset to defaults at load

    def path(self, name):
        return "{}/{}".format(self.root, name)

    def load(self, name, default=None):
        """The stored object, the previous good copy if the current one is torn, else `default`."""
        p = self.path(name + ".json")
        for candidate in (p, p + ".bak"):
            try:
                obj = read_record(candidate)
            except OSError:
                continue
            except (ValueError, UnicodeError) as e:
                log.warn("store", "%s unreadable (%s)", candidate, e)
                self.recovered.append(name)
                continue
            if candidate != p:
                log.warn("store", "%s: using the previous good copy", name)
                if name not in self.recovered:
                    self.recovered.append(name)
            return obj
        return default

    def save(self, name, obj):
        write_atomic(self.path(name + ".json"), encode_record(obj))

    def save_blob(self, name, data):
        """Bytes (certificates) with the same header, CRC and backup as JSON records."""
        crc = binascii.crc32(data) & 0xFFFFFFFF
        head = "{} {:08x} {}\n".format(_MAGIC, crc, len(data)).encode()
        write_atomic(self.path(name + ".bin"), head + data)

    def load_blob(self, name):
        p = self.path(name + ".bin")
        for candidate in (p, p + ".bak"):
            try:
                size = os.stat(candidate)[6]
                if size > MAX_RECORD + 32:
                    raise ValueError("blob too large")
                with open(candidate, "rb") as f:
                    raw = f.read(size)
                nl = raw.find(b"\n")
                head = raw[:nl].decode().split(" ") if nl > 0 else ()
                body = raw[nl + 1 :]
                if (
                    len(head) == 3
                    and head[0] == _MAGIC
                    and len(body) == int(head[2])
                    and binascii.crc32(body) & 0xFFFFFFFF == int(head[1], 16)
                ):
                    return body
                log.warn("store", "%s corrupt", candidate)
            except OSError:
                continue
            except (ValueError, UnicodeError) as e:
                log.warn("store", "%s unreadable (%s)", candidate, e)
        return None

    def delete(self, name):
        for ext in (".json", ".bin"):
            p = self.path(name + ext)
            for suffix in ("", ".bak", ".tmp"):
                _remove(p + suffix)
