"""Authorization cache: idTags the CSMS answered lately, for offline and pre-authorisation.

OCPP 1.6 section 3.5.2: with AuthorizationCacheEnabled the charger remembers the idTagInfo of
every Authorize, StartTransaction and StopTransaction answer, and LocalAuthorizeOffline /
LocalPreAuthorize may use it. An Accepted entry past its expiryDate counts as Expired. ClearCache
empties it. The Local Authorization List (ocpp16.localauth) is asked first and wraps this cache.

Bound: `MAX_ENTRIES` idTags, kept in one lib/store record (atomic, CRC'd) and loaded only while
a lookup or update runs, so it costs no RAM between taps. When full, expired entries go first,
then the least recently used.
"""

from micropython import const

import log
from ocpp16.timefmt import parse_rfc3339

MAX_ENTRIES = const(64)
_RECORD = "authcache"


class AuthCache:
    def __init__(self, store, clock, config):
        self.store = store
        self.clock = clock
        self.config = config

    def _load(self):
        rec = self.store.load(_RECORD, {}) or {}
        return rec if isinstance(rec, dict) else {}

    def lookup(self, tag):
        """idTagInfo-like dict for `tag`, or None when unknown or the cache is disabled."""
        if not self.config.get("AuthorizationCacheEnabled"):
            return None
        e = self._load().get(tag.upper())
        if not isinstance(e, list) or len(e) < 4:
            return None
        status, expiry, parent = e[0], e[1], e[2]
        now = self.clock.unix()
        if status == "Accepted" and expiry is not None and now is not None and now >= expiry:
            status = "Expired"  # 3.5.2: an expired entry is not valid any more
        info = {"status": status}
        if parent:
            info["parentIdTag"] = parent
        return info

    def update(self, tag, info):
        """Remember the CSMS's idTagInfo for `tag` (an Authorize/Start/Stop answer)."""
        if not self.config.get("AuthorizationCacheEnabled") or not isinstance(info, dict):
            return
        status = info.get("status")
        if not isinstance(status, str):
            return
        expiry = info.get("expiryDate")
        try:
            expiry = parse_rfc3339(expiry) if expiry else None
        except ValueError:
            expiry = None
        rec = self._load()
        used = max((e[3] for e in rec.values() if isinstance(e, list) and len(e) > 3),
                   default=0) + 1
        key = tag.upper()
        if key not in rec and len(rec) >= MAX_ENTRIES:
            self._evict(rec)
        rec[key] = [status, expiry, info.get("parentIdTag"), used]
        self._save(rec)

    def _evict(self, rec):
        now = self.clock.unix()
        victim = None
        for k, e in rec.items():
            if now is not None and e[1] is not None and now >= e[1]:
                victim = k
                break
            if victim is None or e[3] < rec[victim][3]:
                victim = k
        if victim is not None:
            del rec[victim]

    def clear_cache(self):
        self.store.delete(_RECORD)
        log.info("auth", "authorization cache cleared")

    def _save(self, rec):
        try:
            self.store.save(_RECORD, rec)
        except OSError as e:
            log.error("auth", "authorization cache not saved: %s", e)
