"""OCPP 1.6 Local Auth List Management profile: SendLocalList, GetLocalListVersion, lookups.

The list itself lives on flash in store.idtable (opened on first use, `ctx.idtable`), so a
lookup costs one small bucket read whatever the list size. SendLocalList (OCPP 1.6 5.17): a Full
update replaces the list, a Differential one adds or updates entries with idTagInfo and removes
those without; the answer is VersionMismatch for a Differential update whose listVersion is not
above the current one, Failed for more entries than SendLocalListMaxLength, a Full entry without
idTagInfo, a non-empty list with a version below 1 (0 and -1 mean "empty" and "unsupported",
5.10), an update that would exceed LocalAuthListMaxLength, or a flash error; nothing changes
then. Accepted means the update is on flash (the idtable journal); it is materialised bucket by
bucket in a task after the answer, yielding to the event loop between files. The list is kept
up to date while LocalAuthListEnabled is false, it is only not consulted.

`LocalAuth` is the charger's `local_auth` hook (charger.session.authorize: LocalPreAuthorize
and LocalAuthorizeOffline): the list first, then the authorization cache it wraps (OCPP 1.6
3.5.3: the list takes precedence; an idTag on the list is not cached and the list changes only
through SendLocalList, never from an Authorize answer). `authorize_local()` gives a listed
entry's status, an Accepted entry past its expiryDate (charger clock) reported as Expired.
"""

from micropython import const

import log
from ocpp16 import config as cfg
from ocpp16 import specs

PROFILE = "LocalAuthListManagement"
LOCAL_LIST_MAX = const(1000)  # LocalAuthListMaxLength: entries kept on flash
# SendLocalListMaxLength: one SendLocalList CALL with that many entries must fit the WebSocket
# message limit (net.ws.DEFAULT_MAX_MESSAGE, 8192 bytes). Worst entry, measured with ", " and
# ": " separators: 20-character idTag and parentIdTag, status ConcurrentTx, an expiryDate of
# 35 characters (nanoseconds and an offset) = 168 bytes with its separator; the frame around
# the list with a 36-character message id and a 20-digit listVersion = 160 bytes. Both rounded
# up to 170: (8192 - 170) // 170 = 47 entries. Also the RAM bound of a staged update
# (47 x 48 bytes).
_ENTRY_BYTES = const(170)
_FRAME_BYTES = const(170)


def send_list_max(max_message=None):
    """Entries per SendLocalList so that the message fits `max_message` bytes."""
    if max_message is None:
        from net.ws import DEFAULT_MAX_MESSAGE

        max_message = DEFAULT_MAX_MESSAGE
    return max(1, (max_message - _FRAME_BYTES) // _ENTRY_BYTES)


def declare_keys(c, board):
    c.declare("LocalAuthListEnabled", cfg.BOOL, True)
    c.declare("LocalAuthListMaxLength", cfg.INT, LOCAL_LIST_MAX, access="R")
    c.declare("SendLocalListMaxLength", cfg.INT, send_list_max(), access="R")


def table(ctx):
    """The charger's IdTable, opened (and an interrupted update finished) on first use.

    Raises OSError when the list directory cannot be created.
    """
    t = getattr(ctx, "idtable", None)
    if t is None:
        from store.idtable import IdTable

        t = IdTable(ctx.store.root, LOCAL_LIST_MAX)
        ctx.idtable = t
    return t


def _entry(ctx, id_tag):
    try:
        return table(ctx).get(id_tag)
    except OSError as e:
        log.error("localauth", "local list unavailable: %s", e)
        return None


def lookup(ctx, id_tag):
    """The idTagInfo dict of `id_tag` in the list (expiryDate as RFC 3339 text), or None.

    Independent of LocalAuthListEnabled; see authorize_local() for the authorisation rules.
    """
    e = _entry(ctx, id_tag)
    if e is None:
        return None
    status, expiry, parent = e
    info = {"status": status}
    if expiry is not None:
        from ocpp16.timefmt import format_rfc3339

        info["expiryDate"] = format_rfc3339(expiry)
    if parent is not None:
        info["parentIdTag"] = parent
    return info


def authorize_local(ctx, id_tag):
    """(status, parentIdTag) from the list when LocalAuthListEnabled and it lists id_tag.

    None otherwise. An Accepted entry whose expiryDate has passed is Expired; while the wall
    time is unknown (offline since boot) an expiryDate cannot be checked and is trusted.
    """
    if not ctx.config.get("LocalAuthListEnabled"):
        return None
    e = _entry(ctx, id_tag)
    if e is None:
        return None
    status, expiry, parent = e
    if status == "Accepted" and expiry is not None:
        now = ctx.clock.unix()
        if now is not None and now >= expiry:
            status = "Expired"
    return status, parent


class LocalAuth:
    """`ch.local_auth`: lookup(tag) -> idTagInfo or None, update(tag, idTagInfo), clear_cache().

    `cache` is the authorization cache (the same three methods) or None; this object answers
    from the Local Authorization List first and passes the rest to it.
    """

    def __init__(self, ctx, cache=None):
        self.ctx = ctx
        self.cache = cache

    def lookup(self, tag):
        res = authorize_local(self.ctx, tag)
        if res is not None:
            info = {"status": res[0]}
            if res[1] is not None:
                info["parentIdTag"] = res[1]
            return info
        return self.cache.lookup(tag) if self.cache is not None else None

    def update(self, tag, info):
        if self.cache is None:
            return
        if self.ctx.config.get("LocalAuthListEnabled") and _entry(self.ctx, tag) is not None:
            return  # listed: the list rules, the cache keeps no copy (3.5.3)
        self.cache.update(tag, info)

    def clear_cache(self):
        # ClearCache empties the cache only, never the Local Authorization List (5.3).
        fn = getattr(self.cache, "clear_cache", None)
        if fn is not None:
            fn()


# ---- handlers ------------------------------------------------------------------------------
def _failed(why, *args):
    log.warn("localauth", "SendLocalList failed: " + why, *args)
    return {"status": "Failed"}


def send_local_list(ctx, payload):
    version = payload["listVersion"]
    full = payload["updateType"] == "Full"
    items = payload.get("localAuthorizationList") or ()
    limit = ctx.config.get("SendLocalListMaxLength")
    if len(items) > limit:
        return _failed("%d entries, SendLocalListMaxLength is %d", len(items), limit)
    try:
        t = table(ctx)
    except OSError as e:
        return _failed("%s", e)
    if not full and version <= t.version:
        log.info("localauth", "Differential version %d, list at %d", version, t.version)
        return {"status": "VersionMismatch"}
    if items and version < 1:
        return _failed("listVersion %d for a non-empty list", version)
    from ocpp16.timefmt import parse_rfc3339

    entries = []
    try:
        for it in items:
            info = it.get("idTagInfo")
            if info is None:
                entries.append((it["idTag"], None, None, None))
                continue
            expiry = info.get("expiryDate")
            if expiry is not None:
                expiry = parse_rfc3339(expiry)
            entries.append((it["idTag"], info["status"], expiry, info.get("parentIdTag")))
        t.stage(version, full, entries)
    except (ValueError, OSError) as e:  # a bad entry, IdTableFull (a ValueError), flash
        return _failed("%s", e)
    log.info("localauth", "%s update to version %d: %d entries, list holds %d",
             "Full" if full else "Differential", version, len(entries), len(t))
    return {"status": "Accepted"}, lambda: _materialise(ctx, t)


def _materialise(ctx, t):
    """Write the staged update to its bucket files in a task, one file per loop turn."""
    import asyncio

    old = getattr(ctx, "idtable_task", None)
    if old is not None and not old.done():
        return  # the running task also drives the new update: it steps whatever is staged
    ctx.idtable_task = asyncio.create_task(_apply(t))


async def _apply(t):
    import asyncio

    try:
        while t.apply_step():
            await asyncio.sleep_ms(0)
    except OSError as e:
        # The journal stays: lookups still see the update, the next update or boot retries.
        log.error("localauth", "writing the local list failed: %s", e)


def get_local_list_version(ctx, payload):
    try:
        version = table(ctx).version
    except OSError as e:
        log.error("localauth", "local list unavailable: %s", e)
        version = 0
    return {"listVersion": version}


HANDLERS = {
    "GetLocalListVersion": (specs.GET_LOCAL_LIST_VERSION_REQ, get_local_list_version),
    "SendLocalList": (specs.SEND_LOCAL_LIST_REQ, send_local_list),
}
