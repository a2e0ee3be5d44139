"""Directory trees on flash: staging a file tree, renaming it into place, removing old ones.

Used by firmware updates (lib/update): an application bundle is written file by file into
`<root>/<name>.staging/`, then the whole directory is renamed to `<root>/<name>` (rename is
atomic on littlefs and POSIX), so a half-written tree never carries the final name. This module
and store.files are the only code that writes files (architecture.md). Paths use "/" on every
port. Bound: rmtree() recursion follows the tree's depth, which the bundle manifest limits.
"""

import os

from store.files import makedirs, exists  # noqa: F401 (re-exported)

_DIR = 0x4000  # S_IFDIR, the type bit os.stat() reports for a directory


def is_dir(path):
    try:
        return os.stat(path)[0] & _DIR != 0
    except OSError:
        return False


def listdir(path):
    """Names in `path` (empty if it does not exist)."""
    try:
        return os.listdir(path)
    except OSError:
        return []


def rmtree(path):
    """Remove a file or a directory tree; a missing path is fine. Raises OSError if it stays."""
    if not exists(path):
        return
    if not is_dir(path):
        os.remove(path)
        return
    for name in listdir(path):
        rmtree(path + "/" + name)
    os.rmdir(path)


def free_bytes(path):
    """Free space of the filesystem holding `path`, or None where the port cannot tell."""
    statvfs = getattr(os, "statvfs", None)
    if statvfs is None:
        return None
    try:
        st = statvfs(path)
    except OSError:
        return None
    return st[0] * st[4]  # f_bsize * f_bavail


def _sync():
    sync = getattr(os, "sync", None)
    if sync is not None:
        sync()


class StagingDir:
    """A tree written under `<root>/<name>.staging`, then renamed to `<root>/<name>`.

    One file is open at a time: open_file(), write() any number of times, close_file().
    Whatever was left by an earlier attempt under the staging name is removed first.
    """

    def __init__(self, root, name):
        self.final = "{}/{}".format(root, name)
        self.path = self.final + ".staging"
        self._f = None
        rmtree(self.path)
        makedirs(self.path)

    def exists(self, rel):
        return exists(self.path + "/" + rel)

    def open_file(self, rel):
        """Start the file `rel` (a checked relative path with "/" separators)."""
        self.close_file()
        full = self.path + "/" + rel
        parent = full.rsplit("/", 1)[0]
        makedirs(parent)
        self._f = open(full, "wb")

    def write(self, data):
        f = self._f
        if f is None:
            raise OSError("no staging file open")
        mv = memoryview(data)
        off = 0
        while off < len(mv):  # a short write on a nearly full flash must not lose bytes
            n = f.write(mv[off:])
            if not n:
                raise OSError("flash write failed")
            off += n

    def close_file(self):
        f = self._f
        self._f = None
        if f is not None:
            f.flush()
            fsync = getattr(os, "fsync", None)
            if fsync is not None:
                fsync(f.fileno())
            f.close()

    def commit(self):
        """Rename the staging tree to its final name (an old tree of that name is removed)."""
        self.close_file()
        rmtree(self.final)
        os.rename(self.path, self.final)
        _sync()
        return self.final

    def abort(self):
        """Drop the staging tree; never raises (the next attempt removes leftovers anyway)."""
        try:
            self.close_file()
        except OSError:
            pass
        try:
            rmtree(self.path)
        except OSError:
            pass
