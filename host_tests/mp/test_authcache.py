"""charger.authcache: bound, eviction, expiry, disabled, persistence."""

from clock import ManualClock
from ocpp16 import config as cfg
from store import Store
from store.tree import rmtree
from charger.authcache import AuthCache, MAX_ENTRIES

T0 = 1795000000


def make(root="/tmp/authcache-test"):
    rmtree(root)
    st = Store(root)
    c = cfg.Config(st)
    c.declare("AuthorizationCacheEnabled", cfg.BOOL, True)
    clock = ManualClock()
    clock.set_unix(T0)
    return AuthCache(st, clock, c), st, clock, c


def test_remembers_answers_and_survives_a_reboot():
    cache, st, clock, c = make()
    cache.update("AA11", {"status": "Accepted", "parentIdTag": "P1"})
    cache.update("BB22", {"status": "Blocked"})
    again = AuthCache(Store(st.root), clock, c)
    assert again.lookup("aa11") == {"status": "Accepted", "parentIdTag": "P1"}
    assert again.lookup("BB22") == {"status": "Blocked"}
    assert again.lookup("CC33") is None


def test_expired_accepted_entry_reads_expired():
    cache, st, clock, c = make()
    from ocpp16.timefmt import format_rfc3339

    cache.update("AA11", {"status": "Accepted", "expiryDate": format_rfc3339(T0 + 3600)})
    assert cache.lookup("AA11")["status"] == "Accepted"
    clock.advance(10 * 86400 * 1000)
    assert cache.lookup("AA11")["status"] == "Expired"


def test_bounded_least_recently_used_goes_first():
    cache, st, clock, c = make()
    for i in range(MAX_ENTRIES + 5):
        cache.update("T%d" % i, {"status": "Accepted"})
    assert len(st.load("authcache")) == MAX_ENTRIES
    assert cache.lookup("T0") is None and cache.lookup("T%d" % (MAX_ENTRIES + 4)) is not None


def test_disabled_cache_neither_stores_nor_answers():
    cache, st, clock, c = make()
    cache.update("AA11", {"status": "Accepted"})
    c.set("AuthorizationCacheEnabled", False)
    assert cache.lookup("AA11") is None
    cache.update("BB22", {"status": "Accepted"})
    c.set("AuthorizationCacheEnabled", True)
    assert cache.lookup("BB22") is None
    cache.clear_cache()
    assert cache.lookup("AA11") is None
