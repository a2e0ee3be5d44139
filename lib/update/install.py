"""Download sinks: tell the image kind from its first bytes and stage it while it streams in.

`Download(store, running)` receives the body chunk by chunk (`feed`, the on_data callback of
net.http) and never holds more than the current chunk: an application bundle (magic
b"EVFWB1\\n") is parsed by update.bundle and written into `<root>/app-<version>.staging/`, then
renamed to `app-<version>` by `finish()` once every hash matched; a full ESP32 image (first byte
0xE9) goes to update.ota.ImageWriter, in the simulator refused at once. `finish()` returns what
the job persists, e.g. {"kind": "bundle", "version": "1.2.0", "tops": [...]} or {"kind":
"image", "partition": "ota_1", "size": n, "sha256": hex, "version": v}. `abort()` drops the
staging tree. Errors: update.CorruptError (retry) and update.RefusedError (InstallationFailed).
"""

import json
import sys
from micropython import const

import log
from store import tree
from update import CorruptError, RefusedError
from update import bundle as bmod

_SNIFF = const(7)  # bytes needed to tell the kinds apart (len(bundle.MAGIC))
_SPACE_MARGIN = const(16384)  # flash left free after staging: records and the tx queue need room


def mpy_major():
    """The .mpy major version this firmware loads, or None if the port does not say."""
    v = getattr(sys.implementation, "_mpy", None)
    return v & 0xFF if v is not None else None


class Download:
    """One download attempt; feed() the body, then finish() or abort()."""

    def __init__(self, store, running, esp32=None):
        """`running`: version of the running bundle (refused as a target); `esp32`: the module
        for full images (tests pass a fake), looked up lazily when None."""
        self.store = store
        self.running = running
        self._esp32 = esp32
        self._head = bytearray(_SNIFF)
        self._hn = 0
        self._parser = None
        self._image = None
        self._stage = None
        self._tops = []
        self.kind = None

    # ---- streaming ----------------------------------------------------------------------
    def feed(self, data):
        mv = memoryview(data)
        if self.kind is None:
            mv = self._sniff(mv)
            if mv is None or not len(mv):
                return
        if self._image is not None:
            self._image.feed(mv)
        else:
            self._parser.feed(mv)
            self._drain()

    def _sniff(self, mv):
        # Collect the first bytes until the kind is known; returns the rest to pass on.
        if self._hn == 0 and len(mv) and mv[0] == 0xE9:
            self._start_image()
            return mv
        k = min(len(mv), _SNIFF - self._hn)
        self._head[self._hn : self._hn + k] = mv[:k]
        self._hn += k
        if self._hn < _SNIFF:
            return None
        if bytes(self._head) != bmod.MAGIC:
            raise RefusedError("unknown image format (neither a bundle nor an ESP32 image)")
        self.kind = "bundle"
        self._parser = bmod.BundleParser(mpy_major())
        self._parser.feed(self._head)
        self._drain()
        return mv[k:]

    def _start_image(self):
        from update import ota

        esp32 = self._esp32 or ota.load_esp32()
        self.kind = "image"
        self._image = ota.ImageWriter(esp32)

    def _drain(self):
        p = self._parser
        while True:
            ev = p.next_event()
            if ev is None:
                return
            kind = ev[0]
            if kind == bmod.DATA:
                self._stage.write(ev[1])
            elif kind == bmod.FILE:
                self._begin_file(ev[1])
            elif kind == bmod.FILE_END:
                self._stage.close_file()
            elif kind == bmod.MANIFEST:
                self._begin_bundle(ev[1])

    def _begin_bundle(self, h):
        version = h["version"]
        if version == self.running:
            raise RefusedError("version {} is already running".format(version))
        root = self.store.root
        free = tree.free_bytes(root)
        need = h["bytes"] + _SPACE_MARGIN
        if free is not None and free < need:
            raise RefusedError("bundle needs {} bytes of flash, {} free".format(need, free))
        log.info("update", "bundle %s: %d files, %d bytes", version, h["files"], h["bytes"])
        self._stage = tree.StagingDir(root, "app-" + version)
        self._stage.open_file("manifest.json")  # the header: what main.py and people look at
        self._stage.write(json.dumps(h).encode())
        self._stage.close_file()

    def _begin_file(self, path):
        if self._stage.exists(path):
            raise CorruptError("file {} listed twice".format(path))
        self._stage.open_file(path)
        name = bmod.top_name(path)
        if name not in self._tops:  # bounded by the bundle's top-level packages
            self._tops.append(name)

    # ---- end ----------------------------------------------------------------------------
    def finish(self):
        """End of the body: verify, commit, and return the staged result (see module doc)."""
        if self.kind is None:
            raise CorruptError("empty or too short download ({} bytes)".format(self._hn))
        if self._image is not None:
            label, size, digest, version = self._image.finish()
            return {"kind": "image", "partition": label, "size": size, "sha256": digest,
                    "version": version}
        self._parser.feed(b"")
        self._drain()
        if not self._parser.done:
            raise CorruptError("bundle truncated")
        self._stage.commit()
        self._stage = None
        return {"kind": "bundle", "version": self._parser.header["version"], "tops": self._tops}

    def abort(self):
        if self._stage is not None:
            self._stage.abort()
            self._stage = None
