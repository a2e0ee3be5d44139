"""Compact validator for OCPP 1.6 JSON payloads against tuple specs (see ocpp16.specs).

A spec describes one JSON object as a flat tuple of triples `name, code, arg` (one tuple per
object, no dicts: a tuple of constants is one object, and lives in flash when frozen):

| code      | JSON value                  | arg                                            |
|-----------|-----------------------------|------------------------------------------------|
| `s` / `S` | string                      | maxLength (int) or None                        |
| `e` / `E` | string from an enum         | tuple of the allowed values (case-sensitive)   |
| `t` / `T` | RFC 3339 date-time string   | None                                           |
| `u` / `U` | URI string (scheme required)| None                                           |
| `i` / `I` | integer (not a bool/float)  | None or (min, max), either end None            |
| `n` / `N` | number                      | None                                           |
| `d` / `D` | number, multipleOf 0.1      | None                                           |
| `b` / `B` | boolean                     | None                                           |
| `o` / `O` | object                      | the nested spec                                |
| `a` / `A` | array                       | (item code, item arg) or (item code, item arg, |
|           |                             | minItems, maxItems), either bound None         |

Lower case = optional, upper case = required (item codes are lower case). Every spec object is
closed (the 1.6 schemas all say `additionalProperties: false`).

`validate()` raises OCPPError on the first violation found, fields in spec order:
missing required field -> OccurenceConstraintViolation; wrong JSON type ->
TypeConstraintViolation; bad enum value, too long, out of range, bad date-time or URI, array
size -> PropertyConstraintViolation; unknown field -> FormationViolation. The description names
the field path, e.g. `csChargingProfiles.chargingSchedule.chargingSchedulePeriod[0].limit: not a
multiple of 0.1`. Recursion follows the spec, never the payload, so its depth is that of the
deepest spec (5). Nothing is allocated on success except the float arithmetic of number checks.

Known leniencies against the JSON-schema check of the `ocpp` package (which parses numbers as
`decimal.Decimal`): multipleOf 0.1 is checked on floats with a tolerance of a few ulps, so a
value like 0.30000000000000004 passes here. inf and nan are refused (not JSON numbers).
"""

from micropython import const

from ocpp16.errors import (
    OCPPError,
    FORMATION_VIOLATION,
    OCCURENCE_CONSTRAINT_VIOLATION,
    PROPERTY_CONSTRAINT_VIOLATION,
    TYPE_CONSTRAINT_VIOLATION,
)
from ocpp16.timefmt import parse_rfc3339

# Type codes as ord() of the lower-case letter; upper case (required) is this minus 0x20.
_STR = const(0x73)  # s
_ENUM = const(0x65)  # e
_TIME = const(0x74)  # t
_URI = const(0x75)  # u
_INT = const(0x69)  # i
_NUM = const(0x6E)  # n
_DEC = const(0x64)  # d
_BOOL = const(0x62)  # b
_OBJ = const(0x6F)  # o
_ARR = const(0x61)  # a
_LOWER = const(0x20)

_MISSING = object()

# Tolerance of the multipleOf 0.1 check, relative to the value times ten. Single-precision
# ports (ESP32) carry about 7 digits, double-precision ports (Unix) about 16.
_TOL = 1e-5 if 1.0 + 1e-9 == 1.0 else 1e-9


def validate(payload, spec):
    """Check a decoded payload against a spec; returns None or raises OCPPError.

    A payload that is not a dict -> FormationViolation.
    """
    if type(payload) is not dict:
        raise OCPPError(FORMATION_VIOLATION, "payload is not an object")
    try:
        _object(payload, spec)
    except OCPPError as e:
        path = getattr(e, "path", None)
        if path:
            e.description = "{}: {}".format(path, e.description)
        raise


def _fail(code, text):
    e = OCPPError(code, text)
    e.path = ""
    raise e


def _prefix(e, head):
    # Called only while an error unwinds: builds the field path, no cost on success.
    tail = getattr(e, "path", "")
    if not tail:
        e.path = head
    elif tail[0] == "[":
        e.path = head + tail
    else:
        e.path = head + "." + tail


def _object(obj, spec):
    seen = 0
    for i in range(0, len(spec), 3):
        name = spec[i]
        v = obj.get(name, _MISSING)
        code = ord(spec[i + 1])
        if v is _MISSING:
            if not code & _LOWER:  # upper case letter: required
                e = OCPPError(OCCURENCE_CONSTRAINT_VIOLATION, "required field missing")
                e.path = name
                raise e
            continue
        seen += 1
        try:
            _value(v, code | _LOWER, spec[i + 2])
        except OCPPError as e:
            _prefix(e, name)
            raise
    if seen < len(obj):
        for k in obj:
            if not _known(k, spec):
                e = OCPPError(FORMATION_VIOLATION, "unknown field")
                e.path = k if len(k) <= 40 else k[:40]
                raise e


def _known(k, spec):
    for i in range(0, len(spec), 3):
        if spec[i] == k:
            return True
    return False


def _value(v, t, arg):
    """Check one value; t is the lower-case type code (an int), arg as in the module table."""
    if t == _STR or t == _ENUM or t == _TIME or t == _URI:
        if type(v) is not str:
            _fail(TYPE_CONSTRAINT_VIOLATION, "string expected")
        if t == _STR:
            if arg is not None and len(v) > arg:
                _fail(PROPERTY_CONSTRAINT_VIOLATION, "longer than {} chars".format(arg))
        elif t == _ENUM:
            if v not in arg:
                _fail(PROPERTY_CONSTRAINT_VIOLATION, "value not allowed")
        elif t == _TIME:
            try:
                parse_rfc3339(v)
            except ValueError:
                _fail(PROPERTY_CONSTRAINT_VIOLATION, "not an RFC 3339 date-time")
        elif not _uri_ok(v):
            _fail(PROPERTY_CONSTRAINT_VIOLATION, "not a URI")
    elif t == _INT:
        if type(v) is not int:
            _fail(TYPE_CONSTRAINT_VIOLATION, "integer expected")
        if arg is not None:
            _range(v, arg)
    elif t == _NUM or t == _DEC:
        tv = type(v)
        if tv is not int and tv is not float:
            _fail(TYPE_CONSTRAINT_VIOLATION, "number expected")
        if tv is float:
            if v - v != 0:
                _fail(PROPERTY_CONSTRAINT_VIOLATION, "not a finite number")
            if t == _DEC:
                q = v * 10
                if abs(q - round(q)) > _TOL * (abs(q) + 1):
                    _fail(PROPERTY_CONSTRAINT_VIOLATION, "not a multiple of 0.1")
    elif t == _BOOL:
        if type(v) is not bool:
            _fail(TYPE_CONSTRAINT_VIOLATION, "boolean expected")
    elif t == _OBJ:
        if type(v) is not dict:
            _fail(TYPE_CONSTRAINT_VIOLATION, "object expected")
        _object(v, arg)
    elif t == _ARR:
        if type(v) is not list:
            _fail(TYPE_CONSTRAINT_VIOLATION, "array expected")
        if len(arg) > 2:
            _range(len(v), arg[2:])
        it = ord(arg[0]) | _LOWER
        iarg = arg[1]
        for j in range(len(v)):
            try:
                _value(v[j], it, iarg)
            except OCPPError as e:
                _prefix(e, "[{}]".format(j))
                raise
    else:
        raise ValueError("bad spec code")  # our bug, not the CSMS's


def _range(x, lim):
    lo = lim[0]
    hi = lim[1]
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        _fail(PROPERTY_CONSTRAINT_VIOLATION, "out of range")


def _uri_ok(s):
    """RFC 3986 scheme check only: ALPHA *(ALPHA / DIGIT / "+" / "-" / ".") ":"."""
    i = s.find(":")
    if i < 1:
        return False
    for k in range(i):
        c = s[k]
        if "a" <= c <= "z" or "A" <= c <= "Z":
            continue
        if k and ("0" <= c <= "9" or c in "+-."):
            continue
        return False
    return True
