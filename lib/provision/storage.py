"""Provisioning storage: atomic commit of a record plus certificate blobs, recovery, factory reset.

A commit touches several files (the `provisioning` record, the `ca`, `client_cert`,
`client_key` blobs), each written atomically by lib/store. To make the set atomic too, the new
blobs go to `<name>_new` first, then one `prov_pending` record naming them is written (the
commit point), then they are copied into place, the record saved and `prov_pending` deleted.
`recover()` runs at boot and finishes (or discards) whatever a power cut interrupted.
Factory reset: a `.factory_reset` mark is written, and at the next boot every file of the store
is removed except names starting with "." (the device secret, the lockout counter, the
simulator's world files) and the installed firmware bundles, so a power cut cannot leave half a
reset and a reset never downgrades the firmware.
"""

from micropython import const

import log

RECORD = "provisioning"
PENDING = "prov_pending"
FACTORY_MARK = ".factory_reset"
LOCKOUT = ".prov_lockout"  # survives a factory reset: it guards the device secret
LAST_STATUS = "prov_status"  # last CSMS connection outcome, for INFO after a restart
BLOBS = ("ca", "client_cert", "client_key")
_WIPE_DEPTH = const(4)  # bound on directory nesting under the store root


def load(store):
    return dict(store.load(RECORD, {}) or {})


def present(store):
    """The set of blob names stored now."""
    return set(n for n in BLOBS if store.load_blob(n) is not None)


def commit(store, rec, blobs):
    """Store `rec` and `blobs` ({name: DER bytes}) atomically. Raises OSError."""
    for name, der in blobs.items():
        store.save_blob(name + "_new", der)
    store.save(PENDING, {"rec": rec, "blobs": sorted(blobs)})
    _apply(store)


def _apply(store):
    p = store.load(PENDING)
    if not isinstance(p, dict) or not isinstance(p.get("rec"), dict):
        for name in BLOBS:  # staged blobs without their commit point: never committed
            store.delete(name + "_new")
        store.delete(PENDING)
        return False
    for name in p.get("blobs") or ():
        if name not in BLOBS:
            continue
        der = store.load_blob(name + "_new")
        if der is not None:  # None: already copied before a power cut
            store.save_blob(name, der)
            store.delete(name + "_new")
    store.save(RECORD, p["rec"])
    store.delete(PENDING)
    return True


def recover(store):
    """At boot: finish a factory reset or a commit that a power cut interrupted."""
    if store.load(FACTORY_MARK) is not None:
        wipe(store.root)
        store.delete(FACTORY_MARK)
        log.warn("provision", "factory reset done")
    elif _apply(store):
        log.warn("provision", "finished an interrupted commit")


def request_factory_reset(store):
    """Mark the store for wiping at the next boot (the caller then restarts)."""
    store.save(FACTORY_MARK, {"v": 1})


def _rm(path, depth):
    import os

    try:
        mode = os.stat(path)[0]
    except OSError:
        return
    if mode & 0x4000:  # directory
        if depth >= _WIPE_DEPTH:
            log.error("provision", "factory reset: %s nested too deep, kept", path)
            return
        for entry in list(os.ilistdir(path)):
            _rm("{}/{}".format(path, entry[0]), depth + 1)
        try:
            os.rmdir(path)
        except OSError as e:
            log.error("provision", "factory reset: cannot remove %s: %s", path, e)
    else:
        try:
            os.remove(path)
        except OSError as e:
            log.error("provision", "factory reset: cannot remove %s: %s", path, e)


# A factory reset restores settings, not an older firmware: the installed application bundles
# (`app-<version>` folders) and the record naming the running one (lib/update/apps.py) stay.
_KEEP = (".", "app-", "app.json")


def wipe(root):
    """Remove every file and folder under `root` except dot-names and the installed firmware."""
    import os

    for entry in list(os.ilistdir(root)):
        name = entry[0]
        if not any(name.startswith(k) for k in _KEEP):
            _rm("{}/{}".format(root, name), 1)
