"""OCPP configuration keys: declaration, typed values, ChangeConfiguration rules, persistence.

Each feature module declares its keys beside the code that uses them (`declare`), with a type,
access (RW / R / W = write-only, never returned), default, optional validator and whether a change
needs a reboot. Changed values are persisted atomically in the `config` record via lib/store.
Values travel as strings on the wire (OCPP 1.6 section 9: key <= 50, value <= 500 characters).
"""

from micropython import const

import log

_MAX_VALUE_LEN = const(500)

BOOL = "bool"
INT = "int"
CSL = "csl"  # comma separated list
STR = "str"


def to_text(kind, value):
    if kind == BOOL:
        return "true" if value else "false"
    return str(value)


def parse_value(kind, text):
    """Parse a wire string into the key's type; raises ValueError when it does not fit."""
    if not isinstance(text, str) or len(text) > _MAX_VALUE_LEN:
        raise ValueError("not a string of at most 500 characters")
    if kind == BOOL:
        t = text.strip().lower()
        if t == "true":
            return True
        if t == "false":
            return False
        raise ValueError("expected true or false")
    if kind == INT:
        t = text.strip()
        if not t or not (t.isdigit() or (t[0] == "-" and t[1:].isdigit())):
            raise ValueError("expected an integer")
        return int(t)
    if kind == CSL:
        return ",".join(p.strip() for p in text.split(",") if p.strip())
    return text


def non_negative(v):
    if v < 0:
        raise ValueError("must be >= 0")


def csl_subset(allowed):
    """Validator: every item of a comma separated list is one of `allowed`."""

    def check(v):
        for item in v.split(",") if v else ():
            if item not in allowed:
                raise ValueError("unsupported item {}".format(item))

    return check


class Key:
    __slots__ = ("name", "kind", "access", "default", "check", "reboot", "on_change")

    def __init__(self, name, kind, access, default, check, reboot, on_change):
        self.name = name
        self.kind = kind
        self.access = access
        self.default = default
        self.check = check
        self.reboot = reboot
        self.on_change = on_change


class Config:
    def __init__(self, store=None):
        self._store = store
        self._keys = {}
        self._order = []
        self._values = {}
        self._saved = (store.load("config", {}) if store is not None else {}) or {}
        if not isinstance(self._saved, dict):
            log.warn("config", "stored configuration is not a map: using defaults")
            self._saved = {}

    def declare(self, name, kind, default, access="RW", check=None, reboot=False, on_change=None):
        """Declare a key; a persisted value (if valid) overrides the default."""
        k = Key(name, kind, access, default, check, reboot, on_change)
        if name not in self._keys:
            self._order.append(name)
        self._keys[name] = k
        value = default
        if name in self._saved:
            try:
                value = self._checked(k, self._saved[name])
            except (ValueError, TypeError) as e:
                log.warn("config", "stored %s invalid (%s): default used", name, e)
        self._values[name] = value

    def _checked(self, k, value):
        if k.kind == BOOL and not isinstance(value, bool):
            raise ValueError("not a bool")
        if k.kind == INT and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError("not an int")
        if k.kind in (CSL, STR) and not isinstance(value, str):
            raise ValueError("not a string")
        if k.check is not None:
            k.check(value)
        return value

    def has(self, name):
        return name in self._keys

    def get(self, name):
        return self._values[name]

    def key(self, name):
        return self._keys.get(name)

    def names(self):
        return self._order

    def set(self, name, value, persist=True):
        """Set a typed value locally (board setup, provisioning, tests); validated, persisted."""
        k = self._keys[name]
        value = self._checked(k, value)
        old = self._values.get(name)
        self._values[name] = value
        if persist:
            self._saved[name] = value
            self._save()
        if k.on_change is not None and old != value:
            k.on_change(value)

    def set_text(self, name, text, persist=True):
        self.set(name, parse_value(self._keys[name].kind, text), persist)

    def change(self, name, text):
        """ChangeConfiguration semantics: Accepted / Rejected / RebootRequired / NotSupported."""
        k = self._keys.get(name)
        if k is None:
            return "NotSupported"
        if k.access == "R":
            return "Rejected"
        try:
            value = self._checked(k, parse_value(k.kind, text))
        except (ValueError, TypeError) as e:
            log.info("config", "ChangeConfiguration %s rejected: %s", name, e)
            return "Rejected"
        self.set(name, value)
        return "RebootRequired" if k.reboot else "Accepted"

    def text(self, name):
        k = self._keys[name]
        return to_text(k.kind, self._values[name])

    def readable(self, name):
        k = self._keys.get(name)
        return k is not None and k.access != "W"

    def _save(self):
        if self._store is None:
            return
        try:
            self._store.save("config", self._saved)
        except OSError as e:
            log.error("config", "could not persist configuration: %s", e)
