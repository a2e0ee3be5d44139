"""Application bundle parser (sans-I/O): header, then each file's entry and bytes, then a trailer.

Format (README "Firmware updates"; tools/mkbundle.py writes it). The manifest is JSON, split
so the charger holds one entry at a time, whatever the number of files:

    MAGIC   b"EVFWB1\\n"                             7 bytes
    N       header length, u32 big-endian           4 bytes, 1.._HEAD_MAX
    HEAD    JSON {"format": 1, "version": "1.2.0", "files": <count>, "bytes": <sum of sizes>}
    then <count> times:
      L     entry length, u16 big-endian            2 bytes, 1.._ENTRY_MAX
      ENTRY JSON [path, size, sha256 hex]
      DATA  the file's <size> bytes
    SHA     SHA-256 of everything above             32 bytes

`BundleParser.feed(data)` takes bytes as they arrive (b"" = end of stream); `next_event()`
returns (MANIFEST, header), (FILE, path, size, entry_json), (DATA, memoryview), (FILE_END,),
(END,) or None when it needs more input. DATA is a slice of the fed buffer (no copy), valid
until the next feed(). Each file's SHA-256 is checked when it ends; the sizes against the
header's sum and the trailer when the bundle ends. Bounds: header _HEAD_MAX bytes and entries
_ENTRY_MAX bytes, both checked from their length fields before anything is buffered; at most
_FILES_MAX files of at most _FILE_MAX bytes, paths of at most _PATH_MAX characters under lib/
or boards/. RAM: one entry buffer and two SHA-256 states, independent of the file count.
Bad bytes raise CorruptError; a valid bundle this firmware cannot take (.mpy version, more than
it can hold) raises RefusedError. Paths listed twice are caught by the writer (update.install).
"""

import binascii
import hashlib
import json
from micropython import const

from update import CorruptError, RefusedError

MAGIC = b"EVFWB1\n"
FORMAT = 1
MANIFEST = const(1)
FILE = const(2)
DATA = const(3)
FILE_END = const(4)
END = const(5)

_HEAD_MAX = const(1024)
_ENTRY_MAX = const(256)
_FILES_MAX = const(512)
_FILE_MAX = const(262144)
_PATH_MAX = const(96)
_VERSION_MAX = const(32)
_DIGEST = const(32)
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
_VERSION_CHARS = _NAME_CHARS + "+"
_HEX = "0123456789abcdef"

_S_MAGIC = const(0)  # collecting magic + header length
_S_HEAD = const(1)
_S_ENTRY_LEN = const(2)
_S_ENTRY = const(3)
_S_FILE = const(4)
_S_TRAILER = const(5)
_S_DONE = const(6)


def check_version(v):
    """A version usable as a directory name and a firmwareVersion; raises CorruptError."""
    if not isinstance(v, str) or not 1 <= len(v) <= _VERSION_MAX or v[0] == ".":
        raise CorruptError("version must be 1..{} characters".format(_VERSION_MAX))
    for ch in v:
        if ch not in _VERSION_CHARS:
            raise CorruptError("version has a character outside [A-Za-z0-9._+-]")


def check_path(p):
    """A relative path under lib/ or boards/ ending in .mpy or .py; raises CorruptError."""
    if not isinstance(p, str) or not 0 < len(p) <= _PATH_MAX:
        raise CorruptError("file path must be 1..{} characters".format(_PATH_MAX))
    parts = p.split("/")
    if parts[0] not in ("lib", "boards") or len(parts) < 2:
        raise CorruptError("file {} is not under lib/ or boards/".format(p))
    for part in parts:
        if not part or part == "." or part == "..":
            raise CorruptError("file {}: empty, . or .. component".format(p))
        for ch in part:
            if ch not in _NAME_CHARS:
                raise CorruptError("file {}: character outside [A-Za-z0-9_.-]".format(p))
    if not (p.endswith(".mpy") or p.endswith(".py")):
        raise CorruptError("file {} is not .mpy or .py".format(p))


def check_header(h):
    """Validate the decoded header; raises CorruptError."""
    if type(h) is not dict or h.get("format") != FORMAT:
        raise CorruptError("manifest header is not a format {} object".format(FORMAT))
    check_version(h.get("version"))
    n = h.get("files")
    if type(n) is not int or not 1 <= n <= _FILES_MAX:
        raise CorruptError("manifest needs 1..{} files".format(_FILES_MAX))
    total = h.get("bytes")
    if type(total) is not int or not 0 <= total <= n * _FILE_MAX:
        raise CorruptError("manifest byte count out of range")


def check_entry(e):
    """Validate one decoded entry [path, size, sha256 hex]; raises CorruptError."""
    if type(e) is not list or len(e) != 3:
        raise CorruptError("manifest entry is not [path, size, sha256]")
    path, size, digest = e
    check_path(path)
    if type(size) is not int or not 0 <= size <= _FILE_MAX:
        raise CorruptError("file {}: size must be 0..{}".format(path, _FILE_MAX))
    if not isinstance(digest, str) or len(digest) != 64:
        raise CorruptError("file {}: sha256 must be 64 hex digits".format(path))
    for ch in digest:
        if ch not in _HEX:
            raise CorruptError("file {}: sha256 must be lowercase hex".format(path))


def top_name(path):
    """The top-level module name a file provides ("boards" for board modules)."""
    parts = path.split("/")
    if parts[0] != "lib":
        return "boards"
    return parts[1].rsplit(".", 1)[0] if len(parts) == 2 else parts[1]


def _json(buf, what):
    try:
        return json.loads(buf)
    except ValueError:
        raise CorruptError("{} is not JSON".format(what))


class BundleParser:
    """Streams one bundle; see the module docstring for events and errors.

    `mpy_major`: the .mpy major version this firmware loads (sys.implementation._mpy & 0xFF);
    a .mpy file of another version raises RefusedError as soon as its header arrives.
    """

    def __init__(self, mpy_major=None):
        self.mpy_major = mpy_major
        self.header = None
        self._h = hashlib.sha256()  # everything before the trailer
        self._fh = None  # the current file
        self._state = _S_MAGIC
        self._acc = bytearray(_ENTRY_MAX)  # magic + length, entries, the trailer
        self._an = 0
        self._need = len(MAGIC) + 4
        self._in = None
        self._pos = 0
        self._eof = False
        self._left_files = 0
        self._bytes = 0  # sum of the sizes seen
        self._path = None
        self._digest = None
        self._left = 0
        self._fpos = 0

    def feed(self, data):
        """Add input; b"" means the stream ended. Consume the previous input first."""
        if self._in is not None and self._pos < len(self._in):
            raise RuntimeError("feed() before the previous input was consumed")
        if not data:
            self._eof = True
            self._in = None
        else:
            self._in = memoryview(data)
            self._pos = 0

    def _avail(self):
        return len(self._in) - self._pos if self._in is not None else 0

    def _collect(self):
        # Fill self._acc up to self._need; True when complete.
        k = min(self._avail(), self._need - self._an)
        if k:
            mv = self._in[self._pos : self._pos + k]
            self._acc[self._an : self._an + k] = mv
            if self._state != _S_TRAILER:
                self._h.update(mv)
            self._an += k
            self._pos += k
        return self._an == self._need

    def _expect(self, state, n):
        self._state = state
        self._an = 0
        self._need = n

    def next_event(self):
        """The next event, or None when more input is needed. Raises CorruptError/RefusedError."""
        while True:
            st = self._state
            if st == _S_FILE:
                return self._file_data()
            if st == _S_DONE:
                if self._avail():
                    raise CorruptError("data after the bundle trailer")
                return None
            if not self._collect():
                if self._eof:
                    raise CorruptError("bundle truncated")
                return None
            acc = self._acc
            if st == _S_MAGIC:
                if bytes(acc[:7]) != MAGIC:
                    raise RefusedError("not an application bundle (bad magic)")
                n = acc[7] << 24 | acc[8] << 16 | acc[9] << 8 | acc[10]
                if not 0 < n <= _HEAD_MAX:
                    raise CorruptError("header length {} not in 1..{}".format(n, _HEAD_MAX))
                if n > len(acc):
                    self._acc = bytearray(n)
                self._expect(_S_HEAD, n)
            elif st == _S_HEAD:
                h = _json(bytes(memoryview(acc)[: self._an]), "manifest header")
                check_header(h)
                self.header = h
                self._left_files = h["files"]
                self._expect(_S_ENTRY_LEN, 2)
                return (MANIFEST, h)
            elif st == _S_ENTRY_LEN:
                n = acc[0] << 8 | acc[1]
                if not 0 < n <= _ENTRY_MAX:
                    raise CorruptError("entry length {} not in 1..{}".format(n, _ENTRY_MAX))
                self._expect(_S_ENTRY, n)
            elif st == _S_ENTRY:
                return self._on_entry(bytes(memoryview(acc)[: self._an]))
            else:
                return self._on_trailer()

    def _on_entry(self, raw):
        e = _json(raw, "manifest entry")
        check_entry(e)
        self._path, size, self._digest = e
        self._left_files -= 1
        self._bytes += size
        if self._bytes > self.header["bytes"]:
            raise CorruptError("files larger than the manifest header says")
        self._fh = hashlib.sha256()
        self._left = size
        self._fpos = 0
        self._state = _S_FILE
        return (FILE, self._path, size, raw)

    def _file_data(self):
        if self._left == 0:
            got = binascii.hexlify(self._fh.digest()).decode()
            self._fh = None
            if got != self._digest:
                raise CorruptError("file {}: SHA-256 mismatch".format(self._path))
            if self._left_files:
                self._expect(_S_ENTRY_LEN, 2)
            else:
                self._expect(_S_TRAILER, _DIGEST)
            return (FILE_END,)
        k = min(self._avail(), self._left)
        if k == 0:
            if self._eof:
                raise CorruptError("bundle truncated")
            return None
        mv = self._in[self._pos : self._pos + k]
        self._pos += k
        if self._fpos < 2 and self.mpy_major is not None and self._path.endswith(".mpy"):
            self._check_mpy(mv)
        self._fpos += k
        self._left -= k
        self._h.update(mv)
        self._fh.update(mv)
        return (DATA, mv)

    def _check_mpy(self, mv):
        for i in range(min(len(mv), 2 - self._fpos)):
            p = self._fpos + i
            b = mv[i]
            if p == 0 and b != 0x4D:
                raise CorruptError("file {} is not a .mpy file".format(self._path))
            if p == 1 and b != self.mpy_major:
                raise RefusedError(
                    "file {} is .mpy version {}, this firmware loads {}".format(
                        self._path, b, self.mpy_major
                    )
                )

    def _on_trailer(self):
        if bytes(self._acc[:_DIGEST]) != self._h.digest():
            raise CorruptError("bundle SHA-256 trailer mismatch")
        if self._bytes != self.header["bytes"]:
            raise CorruptError("files add up to {} bytes, header says {}".format(
                self._bytes, self.header["bytes"]))
        self._state = _S_DONE
        return (END,)

    @property
    def done(self):
        return self._state == _S_DONE
