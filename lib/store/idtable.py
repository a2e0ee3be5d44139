"""The Local Authorization List on flash: idTag -> (status, expiry, parent) in hashed buckets.

OCPP 1.6 sections 3.5.2 and 5.17 (`ocpp16.md` section 3): up to `capacity` entries (the
LocalAuthListMaxLength key), kept so a lookup reads one small bucket file through a fixed
384-byte buffer: lookup RAM does not depend on the list size. Layout under `<root>/auth/`:

- `head.json`: store record `{"gen": g, "version": v}` (CRC, `.bak` copy, written atomically);
- `g<g>/<b>.bin`: bucket `b` (16 of them) of generation `g`, a run of 48-byte records
  (store.idrecord); an empty bucket has no file;
- `journal.bin`: a staged update (redo log), see "Updates".

Records: 48 bytes each, format and bucket hash in store.idrecord.

Updates (`stage`): the whole change (a Full list or a Differential change set, at most one
SendLocalList message, bounded by the caller) is first written as `journal.bin` (header with
CRC, then the records) by write-tmp-then-rename: from then on the update is durable and
lookups see it at once (they check the journal records in RAM before the buckets). It is then
materialised in steps (`apply_step`, one bucket file per step, so the caller can yield to the
event loop between steps): a Full update writes a new generation `g+1` and switches `head.json`
to it; a Differential update rewrites each touched bucket of the current generation by
write-tmp-then-rename. Committing writes the new version to `head.json` and deletes the
journal. After a power cut at any point, opening the table removes stray `.tmp` files and other
generations and redoes a journal that was not committed (replaying is idempotent), so the list
is always either the old one or the whole new one, never a half list.
"""

import os
import binascii
from micropython import const

import log
from store import idrecord
from store.files import makedirs, encode_record, decode_record
from store.files import exists as _exists, remove_quiet as _remove, file_size as _size

STATUSES = idrecord.STATUSES
REMOVE = idrecord.REMOVE

_REC = const(48)  # idrecord.REC
_TAG_MAX = const(20)
_STATUS_AT = const(21)  # idrecord.STATUS_AT
_BUCKETS = const(16)  # idrecord.BUCKETS
_CHUNK = const(8)  # records read per readinto() in a lookup: the lookup buffer is 384 bytes
_JMAGIC = "EVJ1"
_JHEAD_MAX = const(96)

_key = idrecord.key
_bucket_of = idrecord.bucket_of
_mask = idrecord.mask
_same = idrecord.same
_pack = idrecord.pack
_unpack = idrecord.unpack


class IdTableFull(ValueError):
    """The update would leave more entries than the table's capacity (nothing was changed)."""


def _rmtree(path):
    try:
        names = [e[0] for e in os.ilistdir(path)]
    except OSError:
        return
    for name in names:
        _remove(path + "/" + name)
    try:
        os.rmdir(path)
    except OSError as e:
        log.warn("idtable", "cannot remove %s: %s", path, e)


def _durable(f):
    f.flush()
    fsync = getattr(os, "fsync", None)
    if fsync is not None:
        fsync(f.fileno())


def _replace(tmp, path):
    os.rename(tmp, path)  # atomic on littlefs and POSIX (replaces an existing file)
    sync = getattr(os, "sync", None)
    if sync is not None:
        sync()


class IdTable:
    """The list under `<root>/auth`; opening it finishes an update a power cut interrupted.

    Raises OSError when the directory cannot be created or an interrupted update cannot be
    finished (flash failing); unreadable parts are logged and treated as absent (the CSMS then
    sees a version that asks for a Full update).
    """

    def __init__(self, root, capacity=1000):
        self.dir = "{}/auth".format(root.rstrip("/"))
        self.capacity = capacity
        makedirs(self.dir)
        self._buf = bytearray(_REC * _CHUNK)  # lookup buffer, the only one a lookup reads into
        self.gen = 0
        self._version = 0
        self._load_head()
        self._journal = None  # staged update: bytearray of records, or None
        self._jbuckets = None  # bucket of each journal record
        self._jmask = 0  # bit b set: the staged update touches bucket b
        self._jfull = False
        self._jversion = 0
        self._jgen = 0
        self._step = 0
        self._clean()
        self.count = self._count_files(self.gen)
        self._load_journal()
        self.apply_all()

    # ---- reading ------------------------------------------------------------------------------
    @property
    def version(self):
        """The list version the CSMS sees: 0 while the list is empty (OCPP 1.6 5.10)."""
        v = self._jversion if self._journal is not None else self._version
        return v if self.count else 0

    def __len__(self):
        return self.count

    @property
    def busy(self):
        """True while a staged update is not yet materialised (lookups already see it)."""
        return self._journal is not None

    def get(self, tag):
        """(status, expiry unix s or None, parentIdTag or None) for `tag`, or None.

        Reads the staged journal (RAM), then one bucket file through the fixed buffer; RAM use
        does not depend on the list size. Raises nothing: a read error is logged, None returned.
        """
        key = _key(tag)
        if key is None:
            return None
        n = len(key)
        j = self._journal
        if j is not None:
            off = 0
            while off < len(j):
                if _same(j, off, key, n):
                    return None if j[off + _STATUS_AT] == REMOVE else _unpack(j, off)
                off += _REC
            if self._jfull:
                return None  # a Full update replaces everything not in it
        return self._find(self._bucket_path(self.gen, _bucket_of(key, 0, n)), key, n)

    def _find(self, path, key, n):
        buf = self._buf
        try:
            f = open(path, "rb")
        except OSError:
            return None  # no file: an empty bucket
        try:
            while True:
                got = f.readinto(buf)
                if not got:
                    return None
                off = 0
                while off + _REC <= got:
                    if _same(buf, off, key, n):
                        res = _unpack(buf, off)
                        if res is None:
                            log.warn("idtable", "corrupt record in %s ignored", path)
                        return res
                    off += _REC
        except OSError as e:
            log.warn("idtable", "reading %s: %s", path, e)
            return None
        finally:
            f.close()

    def items(self):
        """Generator of (tag, status, expiry, parent) of the materialised list, bucket by bucket.

        For diagnostics and tests: call apply_all() first to include a staged update.
        """
        rec = bytearray(_REC)
        for b in range(_BUCKETS):
            try:
                f = open(self._bucket_path(self.gen, b), "rb")
            except OSError:
                continue
            with f:
                while f.readinto(rec) == _REC:
                    res = _unpack(rec, 0)
                    if res is not None:
                        yield (bytes(rec[1 : 1 + rec[0]]).decode(),) + res

    # ---- updates ------------------------------------------------------------------------------
    def stage(self, version, full, entries):
        """Make an update durable: `entries` is a list of (idTag, status, expiry, parent).

        status is one of STATUSES, or None to remove the idTag (Differential only); expiry is
        unix seconds or None. A later entry for the same idTag wins. Lookups see the update
        on return; call apply_step()/apply_all() to materialise it. A staged update that is
        still pending is finished first. Raises ValueError (a bad entry), IdTableFull (a
        ValueError), OSError (flash); on any of them nothing changed.
        """
        self.apply_all()
        n = len(entries)
        recs = bytearray(_REC * n)
        used = 0
        for tag, status, expiry, parent in entries:
            key = _key(tag)
            if key is None:
                raise ValueError("idTag {!r} is not 1..20 ASCII characters".format(tag))
            if status is None:
                if full:
                    raise ValueError("a Full list entry needs idTagInfo")
                code = REMOVE
            elif status in STATUSES:
                code = STATUSES.index(status)
            else:
                raise ValueError("unknown status {!r}".format(status))
            off = 0
            while off < used and not _same(recs, off, key, len(key)):
                off += _REC
            _pack(recs, off, key, code, expiry, parent)
            if off == used:
                used += _REC
        recs = recs[:used] if used < len(recs) else recs
        buckets = bytearray(used // _REC)
        for i in range(len(buckets)):
            buckets[i] = _bucket_of(recs, i * _REC + 1, recs[i * _REC])
        if full:
            new_count = len(buckets)
        else:
            new_count = self.count + self._delta(recs, buckets)
        if new_count > self.capacity:
            raise IdTableFull("{} entries, at most {}".format(new_count, self.capacity))
        gen = self.gen + 1 if full else self.gen
        if full:
            self._fresh_gen(gen)
        self._write_journal(recs, full, version, gen)  # the commit point of the update
        self._set_journal(recs, buckets, full, version, gen)
        self.count = new_count

    def _delta(self, recs, buckets):
        """Entries a Differential change set adds minus those it removes (reads its buckets)."""
        found = bytearray(len(buckets))
        rec = self._buf
        mask = _mask(buckets)
        for b in range(_BUCKETS):
            if not mask & (1 << b):
                continue
            try:
                f = open(self._bucket_path(self.gen, b), "rb")
            except OSError:
                continue
            with f:
                while True:
                    got = f.readinto(rec)
                    if not got:
                        break
                    off = 0
                    while off + _REC <= got:
                        n = rec[off]
                        key = rec[off + 1 : off + 1 + n]
                        for i in range(len(buckets)):
                            if buckets[i] == b and _same(recs, i * _REC, key, n):
                                found[i] = 1
                        off += _REC
        delta = 0
        for i in range(len(buckets)):
            removing = recs[i * _REC + _STATUS_AT] == REMOVE
            if found[i] and removing:
                delta -= 1
            elif not found[i] and not removing:
                delta += 1
        return delta

    def apply_step(self):
        """Materialise one bucket of the staged update; True while more steps remain."""
        if self._journal is None:
            return False
        while self._step < _BUCKETS:
            b = self._step
            if self._jmask & (1 << b):
                self._write_bucket(b)  # on OSError the step is retried by the next call
                self._step = b + 1
                return True
            self._step = b + 1
        self._commit()
        return False

    def apply_all(self):
        while self.apply_step():
            pass

    # ---- files --------------------------------------------------------------------------------
    def _gen_dir(self, gen):
        return "{}/g{}".format(self.dir, gen)

    def _bucket_path(self, gen, b):
        return "{}/g{}/{}.bin".format(self.dir, gen, b)

    def _load_head(self):
        for p in (self.dir + "/head.json", self.dir + "/head.json.bak"):
            try:
                with open(p, "rb") as f:
                    head = decode_record(f.read(256))
                gen, version = head["gen"], head["version"]
                if type(gen) is int and type(version) is int and gen >= 0:
                    self.gen, self._version = gen, version
                    return
                log.warn("idtable", "%s: bad fields", p)
            except OSError:
                continue
            except (ValueError, KeyError, TypeError, UnicodeError) as e:
                log.warn("idtable", "%s unreadable (%s)", p, e)

    def _write_head(self, gen, version):
        path = self.dir + "/head.json"
        with open(path + ".tmp", "wb") as f:
            f.write(encode_record({"gen": gen, "version": version}).encode())
            _durable(f)
        if _exists(path):
            _remove(path + ".bak")
            os.rename(path, path + ".bak")
        _replace(path + ".tmp", path)

    def _clean(self):
        """Remove what a power cut left: tmp files, generations other than the current one."""
        keep = "g{}".format(self.gen)
        for entry in list(os.ilistdir(self.dir)):
            name = entry[0]
            if name.endswith(".tmp"):
                _remove(self.dir + "/" + name)
            elif name.startswith("g") and name != keep:
                _rmtree(self.dir + "/" + name)
        d = self._gen_dir(self.gen)
        try:
            names = [e[0] for e in os.ilistdir(d)]
        except OSError:
            return
        for name in names:
            if name.endswith(".tmp"):
                _remove(d + "/" + name)

    def _count_files(self, gen):
        total = 0
        for b in range(_BUCKETS):
            total += _size(self._bucket_path(gen, b)) // _REC
        return total

    def _write_journal(self, recs, full, version, gen):
        path = self.dir + "/journal.bin"
        crc = binascii.crc32(recs) & 0xFFFFFFFF
        head = "{} {:08x} {} {} {} {}\n".format(
            _JMAGIC, crc, len(recs), version, "F" if full else "D", gen
        )
        with open(path + ".tmp", "wb") as f:
            f.write(head.encode())
            f.write(recs)
            _durable(f)
        _replace(path + ".tmp", path)

    def _load_journal(self):
        path = self.dir + "/journal.bin"
        try:
            f = open(path, "rb")
        except OSError:
            return
        try:
            with f:
                head = f.readline(_JHEAD_MAX).decode().split()
                if len(head) != 6 or head[0] != _JMAGIC or head[4] not in ("F", "D"):
                    raise ValueError("bad header")
                n = int(head[2])
                if n % _REC or n > _REC * self.capacity:
                    raise ValueError("bad length")
                recs = bytearray(n)
                if f.readinto(recs) != n or binascii.crc32(recs) & 0xFFFFFFFF != int(head[1], 16):
                    raise ValueError("torn or corrupt")
                version, full, gen = int(head[3]), head[4] == "F", int(head[5])
        except (OSError, ValueError, UnicodeError) as e:
            # Never renamed into place unless complete: this is damage, not a torn write.
            log.error("idtable", "journal unreadable (%s): dropped", e)
            _remove(path)
            return
        # A Full update moves to a new generation, a Differential one to a newer version (the
        # handler refuses any other): either shows whether head.json already has it.
        if gen == self.gen and (full or version == self._version):
            _remove(path)  # committed before the cut: only the delete was missing
            return
        if gen != self.gen + (1 if full else 0):
            log.error("idtable", "journal for generation %d, list at %d: dropped", gen, self.gen)
            _remove(path)
            return
        buckets = bytearray(n // _REC)
        for i in range(len(buckets)):
            buckets[i] = _bucket_of(recs, i * _REC + 1, recs[i * _REC])
        log.warn("idtable", "finishing an interrupted update to version %d", version)
        if full:
            self._fresh_gen(gen)
        self._set_journal(recs, buckets, full, version, gen)

    def _set_journal(self, recs, buckets, full, version, gen):
        self._journal = recs
        self._jbuckets = buckets
        self._jmask = _mask(buckets)
        self._jfull = full
        self._jversion = version
        self._jgen = gen
        self._step = 0

    def _fresh_gen(self, gen):
        _rmtree(self._gen_dir(gen))  # a partial generation from an interrupted attempt
        makedirs(self._gen_dir(gen))

    def _write_bucket(self, b):
        """Write bucket b of the target generation: old records (Differential) + journal's."""
        recs = self._journal
        path = self._bucket_path(self._jgen, b)
        tmp = path + ".tmp"
        written = 0
        with open(tmp, "wb") as out:
            if not self._jfull:
                written += self._copy_unchanged(b, out)
            mv = memoryview(recs)
            for i in range(len(self._jbuckets)):
                off = i * _REC
                if self._jbuckets[i] == b and recs[off + _STATUS_AT] != REMOVE:
                    out.write(mv[off : off + _REC])
                    written += 1
            _durable(out)
        if written:
            _replace(tmp, path)
        else:
            _remove(path)
            _remove(tmp)

    def _copy_unchanged(self, b, out):
        """Copy bucket b's records that the journal does not touch; returns how many."""
        recs = self._journal
        buckets = self._jbuckets
        buf = self._buf
        mv = memoryview(buf)
        kept = 0
        try:
            f = open(self._bucket_path(self.gen, b), "rb")
        except OSError:
            return 0
        with f:
            while True:
                got = f.readinto(buf)
                if not got:
                    return kept
                off = 0
                while off + _REC <= got:
                    n = buf[off]
                    changed = False
                    key = buf[off + 1 : off + 1 + n]
                    for i in range(len(buckets)):
                        if buckets[i] == b and _same(recs, i * _REC, key, n):
                            changed = True
                            break
                    if not changed and 1 <= n <= _TAG_MAX:
                        out.write(mv[off : off + _REC])
                        kept += 1
                    off += _REC

    def _commit(self):
        old = self.gen
        count = self._count_files(self._jgen)
        # An empty list is stored as version 0 (OCPP 1.6 5.10), so the next Differential
        # update always carries a version above the stored one (the replay check relies on it).
        version = self._jversion if count else 0
        self._write_head(self._jgen, version)
        self.gen, self._version, self.count = self._jgen, version, count
        _remove(self.dir + "/journal.bin")
        self._journal = None
        self._jbuckets = None
        if self.gen != old:
            _rmtree(self._gen_dir(old))
