"""Which application bundle runs: the `app` record, trial boots, confirmation and rollback.

Installed bundles live in `<store root>/app-<version>/` (lib/..., boards/..., manifest.json);
the base image (what `make deploy` copied to /lib, or the repository in the simulator) runs when
no bundle is active. The `app` record (lib/store, atomic) holds:
  active    version of the bundle to run, absent = the base image
  previous  version to fall back to, absent = the base image
  tops      top-level module names the active bundle provides
  trial     boots since the switch, while the new bundle has not confirmed itself
  failed    a version rolled back from, until the charger has reported it
main.py calls `boot()` before importing the application: a bundle still on trial after
_TRIAL_BOOTS boots (it crashed or restarted before BootNotification was Accepted) is abandoned
for the previous one. `switch()` makes a staged bundle active (on trial), `confirm()` ends the
trial. Imported at every boot: keep it small and free of other update modules.
"""

import sys
from micropython import const

import log
from store import tree

RECORD = "app"
_TRIAL_BOOTS = const(2)  # boots a new bundle gets to confirm itself (one spare for a power cut)


def app_dir(root, version):
    return "{}/app-{}".format(root, version)


def load(store):
    rec = store.load(RECORD)
    return rec if type(rec) is dict else {}


def running_version(store):
    """Version of the active bundle, or None when the base image runs."""
    return load(store).get("active")


def select(store):
    """Boot step: count a trial boot or roll back; returns the app dir to run or None (base).

    Never raises for bad data: an unreadable record or a missing directory means the base image.
    """
    rec = load(store)
    active = rec.get("active")
    if not active:
        return None
    path = app_dir(store.root, active)
    trial = rec.get("trial")
    missing = not tree.is_dir(path)
    if missing or (trial is not None and trial >= _TRIAL_BOOTS):
        why = "its directory is missing" if missing else "it never confirmed itself"
        log.error("update", "bundle %s abandoned: %s", active, why)
        prev = rec.get("previous")
        new = {"failed": active}
        if prev and tree.is_dir(app_dir(store.root, prev)):
            new["active"] = prev
            new["tops"] = rec.get("prev_tops") or []
        store.save(RECORD, new)
        return app_dir(store.root, prev) if "active" in new else None
    if trial is not None:
        rec["trial"] = trial + 1
        store.save(RECORD, rec)
    return path


def use(path, names, board_name):
    """Put the app dir first on sys.path and forget already imported modules it provides.

    `path/lib` always; `path` itself (for boards/) only if the bundle has this board's module,
    else the base image's boards stay. Returns True.
    """
    names = list(names)
    first = [path + "/lib"]
    if tree.exists("{}/boards/{}.mpy".format(path, board_name)) or tree.exists(
        "{}/boards/{}.py".format(path, board_name)
    ):
        first.insert(0, path)
    elif "boards" in names:
        names.remove("boards")
    for p in reversed(first):
        sys.path.insert(0, p)
    for name in list(sys.modules):
        if name.split(".")[0] in names:
            del sys.modules[name]
    return True


def boot(store, board_name):
    """main.py: select the app dir and use it; True if a bundle now comes first on sys.path."""
    path = select(store)
    if path is None:
        return False
    log.info("update", "running bundle %s", path)
    return use(path, load(store).get("tops") or [], board_name)


def switch(store, version, names):
    """Make the staged bundle `version` active on trial; the current one becomes previous."""
    rec = load(store)
    cur = rec.get("active")
    new = {"active": version, "tops": list(names), "trial": 0}
    if cur and cur != version:
        new["previous"] = cur
        new["prev_tops"] = rec.get("tops") or []
    store.save(RECORD, new)


def confirm(store):
    """The running bundle works: end its trial. Returns False if it was not on trial."""
    rec = load(store)
    if rec.get("trial") is None:
        return False
    del rec["trial"]
    store.save(RECORD, rec)
    return True


def take_failed(store):
    """The version rolled back from at boot (once), or None."""
    rec = load(store)
    failed = rec.pop("failed", None)
    if failed is not None:
        store.save(RECORD, rec)
    return failed


def cleanup(store, keep=()):
    """Remove app dirs other than active, previous and `keep`, and any staging leftovers.

    Call only while no download is staging (it would remove that staging tree too).
    """
    rec = load(store)
    wanted = ["app-{}".format(v) for v in (rec.get("active"), rec.get("previous")) if v]
    wanted += ["app-{}".format(v) for v in keep]
    for name in tree.listdir(store.root):
        if name.startswith("app-") and name not in wanted:
            try:
                tree.rmtree("{}/{}".format(store.root, name))
            except OSError as e:
                log.warn("update", "could not remove %s: %s", name, e)
