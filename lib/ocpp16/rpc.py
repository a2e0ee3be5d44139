"""OCPP-J 1.6 RPC framing: message ids, CALL/CALLRESULT/CALLERROR encoding, frame decoding.

Sans-I/O (style rule 5): text in, event tuples out; payload dicts in, text out. No socket, time
or asyncio, so it runs under CPython and the Unix port alike. Frames follow OCPP-J 1.6 section 4:
`[2, id, action, {}]`, `[3, id, {}]`, `[4, id, code, description, {}]`, ids at most 36 chars.
Bounds: the WebSocket layer caps the frame size before `decode()`; descriptions we send are cut
to `DESCRIPTION_MAX` chars.

`decode(text)` never raises on bad input; it returns one of:

    (CALL, uid, action, payload)
    (CALLRESULT, uid, payload)
    (CALLERROR, uid, code, description, details)
    (BAD, uid_or_None, code, description)

BAD means "a CALL we cannot process": answer it with `encode_error(uid, code, description)` when
uid is not None; with uid None there is no id to answer to, so log and drop it. A malformed
answer (type 3 or 4) whose uid is readable is never answered (OCPP-J answers CALLs only); it comes
out as a CALLERROR event for that uid, so the CALL in flight fails at once instead of timing out.

| Frame                                              | Event                                  |
|----------------------------------------------------|----------------------------------------|
| not JSON, nested too deep, too big for the heap    | BAD, id recovered from a `[2,"<id>"`   |
|                                                    | prefix else None, FormationViolation   |
| JSON, but not an array                             | BAD, None, FormationViolation          |
| type id missing, not an int (`2.0`, `"2"`, `true`) | BAD, None, FormationViolation: OCPP-J  |
| or not 2/3/4                                       | 1.6 4.1.3 says ignore unknown types    |
| uid missing, not a string, or > 36 chars           | BAD, None, FormationViolation          |
| CALL `[2, id]` (no action)                         | BAD, id, FormationViolation            |
| CALL action not a non-empty string                 | BAD, id, FormationViolation            |
| CALL `[2, id, action]` (no payload)                | BAD, id, ProtocolError ("payload       |
|                                                    | incomplete", OCPP-J 4.2.3)             |
| CALL payload not an object (null, list, string)    | BAD, id, FormationViolation            |
| CALL with more than 4 elements                     | BAD, id, FormationViolation            |
| CALLRESULT `[3, id]` (no payload)                  | CALLERROR, id, ProtocolError           |
| CALLRESULT payload not an object, > 3 elements     | CALLERROR, id, FormationViolation      |
| CALLERROR code missing or not a string, > 5 elems  | CALLERROR, id, FormationViolation      |
| CALLERROR well formed                              | CALLERROR, id, normalised code (1.6    |
|                                                    | spelling), description, details        |
| CALLERROR description / details missing or of the  | CALLERROR with "" / {} in their place  |
| wrong type (be liberal: the answer is an error)    |                                        |

Unknown actions and payload contents are not checked here (see dispatch and schema).
Surrogate escapes: MicroPython's json.loads keeps an escaped surrogate pair (`"\\ud83d\\ude00"`,
as CPython's ensure_ascii writes an emoji) as two code points stored as invalid UTF-8, so any
echo of such a string (GetConfiguration's unknownKey, an idTag in a queued StartTransaction)
would make a text frame the CSMS must refuse (close 1007, over and over for a queued message).
`decode()` therefore rewrites these escapes first: a pair becomes the character itself (which
also counts once against a maxLength, as in CPython), a lone surrogate becomes U+FFFD.

Floats: every float is written with one decimal (`"{:.1f}"`). All number fields of the 1.6
schemas (`limit`, `minChargingRate`) are `multipleOf: 0.1`, and MicroPython's own float repr is
not shortest-round-trip (json.dumps(8.2) gives `8.199999999999999` on the Unix port), which a CSMS
checking with `decimal.Decimal` (the `ocpp` package) rejects. `round1()` rounds a value for that.
"""

import json
from micropython import const

from ocpp16.errors import FORMATION_VIOLATION, PROTOCOL_ERROR, normalise_error_code

CALL = const(2)
CALLRESULT = const(3)
CALLERROR = const(4)
BAD = const(0)

_UID_MAX = const(36)  # OCPP-J 1.6 4.1.4
DESCRIPTION_MAX = const(120)  # our CALLERROR descriptions are cut to this many chars
_PREFIX_BYTES = const(6)  # per-boot random id prefix: 48 bits, 12 hex chars
_COUNT_WRAP = const(1000000000)  # counter stays a small int on 32-bit ports; ids <= 22 chars
_PAYLOAD_DEPTH = const(8)  # deepest container nesting our own payloads may use

_SEP = (",", ":")  # compact JSON: fewer bytes on the air


class RPC:
    """Message-id source plus the stateless encoders and `decode`.

    `rand(n)` returns n random bytes (`os.urandom` on the device). It is called once, here: the
    per-boot prefix keeps ids unique across reboots, where a bare counter would restart at 1 and
    a CSMS could mistake a new CALL for a retransmission of an old one.
    """

    def __init__(self, rand):
        b = rand(_PREFIX_BYTES)
        self._prefix = "".join("{:02x}".format(x) for x in b)
        self._count = 0

    def new_id(self):
        """A fresh message id `<12 hex>-<counter>`, at most 22 chars."""
        self._count = self._count % _COUNT_WRAP + 1
        return "{}-{}".format(self._prefix, self._count)

    def encode_call(self, action, payload):
        """Returns (uid, text) of a CALL frame with a new id."""
        uid = self.new_id()
        return uid, _dumps([CALL, uid, action, payload])

    def encode_result(self, uid, payload):
        return encode_result(uid, payload)

    def encode_error(self, uid, code, description="", details=None):
        return encode_error(uid, code, description, details)

    def decode(self, text):
        return decode(text)


def round1(x):
    """x rounded to one decimal, as a float (ValueError for inf/nan).

    Our encoders write every float with one decimal, so the value goes out as e.g. `13.3`.
    """
    if x - x != 0:  # inf - inf and nan - nan are nan
        raise ValueError("not a finite number")
    return round(float(x), 1)


def encode_result(uid, payload):
    """Text of `[3, uid, payload]`."""
    return _dumps([CALLRESULT, uid, payload])


def encode_error(uid, code, description="", details=None):
    """Text of `[4, uid, code, description, details]`: `""` and `{}` when empty.

    The description is cut to DESCRIPTION_MAX chars (it may quote CSMS input).
    """
    if not isinstance(description, str):
        description = ""
    elif len(description) > DESCRIPTION_MAX:
        description = description[:DESCRIPTION_MAX]
    if details is None:
        details = {}
    return _dumps([CALLERROR, uid, code, description, details])


def decode(text):
    """Parse one OCPP-J frame (str or bytes) into an event tuple; see the module table.

    Never raises for bad input. The caller bounds the text length before calling.
    """
    data = text
    try:
        if _has_surrogate_escape(text):
            data = _join_surrogates(text)
        msg = json.loads(data)
    except (ValueError, RuntimeError, MemoryError):
        # ValueError: not JSON (also bad UTF-8 in CPython); RuntimeError: recursion limit
        # (CPython RecursionError); MemoryError: absurd nesting in a small heap. The partial
        # parse is garbage either way, and the loop must answer, not die.
        return (BAD, _recover_uid(text), FORMATION_VIOLATION, "invalid JSON")
    if type(msg) is not list:
        return (BAD, None, FORMATION_VIOLATION, "frame is not a JSON array")
    n = len(msg)
    kind = msg[0] if n else None
    if type(kind) is not int or kind < CALL or kind > CALLERROR:
        return (BAD, None, FORMATION_VIOLATION, "unknown message type")
    uid = msg[1] if n > 1 else None
    if type(uid) is not str or len(uid) > _UID_MAX:
        return (BAD, None, FORMATION_VIOLATION, "invalid message id")
    if kind == CALL:
        if n < 3:
            return (BAD, uid, FORMATION_VIOLATION, "action missing")
        action = msg[2]
        if type(action) is not str or not action:
            return (BAD, uid, FORMATION_VIOLATION, "action is not a string")
        if n < 4:
            return (BAD, uid, PROTOCOL_ERROR, "payload incomplete")
        if n > 4:
            return (BAD, uid, FORMATION_VIOLATION, "too many elements in CALL")
        payload = msg[3]
        if type(payload) is not dict:
            return (BAD, uid, FORMATION_VIOLATION, "payload is not an object")
        return (CALL, uid, action, payload)
    if kind == CALLRESULT:
        if n < 3:
            return (CALLERROR, uid, PROTOCOL_ERROR, "malformed CALLRESULT: payload incomplete", {})
        if n > 3 or type(msg[2]) is not dict:
            return (CALLERROR, uid, FORMATION_VIOLATION, "malformed CALLRESULT", {})
        return (CALLRESULT, uid, msg[2])
    # CALLERROR
    code = msg[2] if n > 2 else None
    if type(code) is not str or n > 5:
        return (CALLERROR, uid, FORMATION_VIOLATION, "malformed CALLERROR", {})
    desc = msg[3] if n > 3 else ""
    if type(desc) is not str:
        desc = ""
    details = msg[4] if n > 4 else {}
    if type(details) is not dict:
        details = {}
    return (CALLERROR, uid, normalise_error_code(code), desc, details)


def _has_surrogate_escape(text):
    # A cheap substring test; false hits (\\ud0xx, "\\\\ud") only cost the exact pass.
    try:
        if isinstance(text, str):
            return "\\ud" in text or "\\uD" in text
        return b"\\ud" in text or b"\\uD" in text
    except TypeError:  # a memoryview: no substring test; the JSON parser decides alone
        return False


def _hex4(b, i):
    v = 0
    for k in range(i, i + 4):
        c = b[k] | 0x20  # lower case for letters; digits keep their value
        if 0x30 <= c <= 0x39:
            v = v * 16 + c - 0x30
        elif 0x61 <= c <= 0x66:
            v = v * 16 + c - 0x57
        else:
            return -1
    return v


def _join_surrogates(text):
    """`text` (str or bytes) with every \\uD800-\\uDFFF escape rewritten as UTF-8: a high+low
    pair as its character, a lone surrogate as U+FFFD. Anything else is left as it is (invalid
    JSON stays invalid). Memory: one bytearray of the frame's length when something changed
    (the result is never longer: 12 escape bytes become 4, 6 become 3; the rest is padded with
    spaces, which JSON allows), read through a memoryview of the str on MicroPython (no copy)."""
    b = text
    if isinstance(text, str):
        try:
            b = memoryview(text)  # MicroPython: the str's own UTF-8 bytes
        except TypeError:
            try:
                b = text.encode()  # CPython
            except UnicodeError:  # a CPython str already holding a lone surrogate
                return text
    n = len(b)
    out = None
    k = 0  # bytes written to out
    last = 0  # first byte of b not yet copied
    i = 0
    while i < n:
        if b[i] != 0x5C:  # backslash: an escape inside a string (elsewhere JSON is invalid)
            i += 1
            continue
        hi = _hex4(b, i + 2) if i + 6 <= n and b[i + 1] == 0x75 else -1
        if not 0xD800 <= hi <= 0xDFFF:
            i += 2  # any other escape, "\\\\" included, is two bytes or starts with them
            continue
        lo = -1
        if hi < 0xDC00 and i + 12 <= n and b[i + 6] == 0x5C and b[i + 7] == 0x75:
            lo = _hex4(b, i + 8)
        if out is None:
            out = bytearray(n)
        out[k : k + i - last] = b[last:i]
        k += i - last
        if 0xDC00 <= lo <= 0xDFFF:
            cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            out[k] = 0xF0 | cp >> 18
            out[k + 1] = 0x80 | (cp >> 12) & 0x3F
            out[k + 2] = 0x80 | (cp >> 6) & 0x3F
            out[k + 3] = 0x80 | cp & 0x3F
            k += 4
            i += 12
        else:  # U+FFFD
            out[k] = 0xEF
            out[k + 1] = 0xBF
            out[k + 2] = 0xBD
            k += 3
            i += 6
        last = i
    if out is None:
        return text
    out[k : k + n - last] = b[last:n]
    for j in range(k + n - last, n):
        out[j] = 0x20
    return out


def _recover_uid(text):
    """The id of a broken frame that starts like a CALL (`[2, "<id>"`), else None."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text[:80])
        try:
            text = text.decode()
        except ValueError:  # UnicodeError: cut inside a character, or not UTF-8 at all
            return None
    elif not isinstance(text, str):
        return None
    n = len(text)
    i = _skip_ws(text, 0, n)
    if i >= n or text[i] != "[":
        return None
    i = _skip_ws(text, i + 1, n)
    if i >= n or text[i] != "2":
        return None
    i = _skip_ws(text, i + 1, n)
    if i >= n or text[i] != ",":
        return None
    i = _skip_ws(text, i + 1, n)
    if i >= n or text[i] != '"':
        return None
    start = i + 1
    end = text.find('"', start, start + _UID_MAX + 1)
    if end < 0:
        return None
    uid = text[start:end]
    for c in uid:
        if c == "\\" or c < " ":  # an escape would need a JSON parser; stay safe
            return None
    return uid


def _skip_ws(text, i, n):
    while i < n and text[i] in " \t\r\n":
        i += 1
    return i


def _dumps(obj):
    """Compact JSON text of obj; floats written with one decimal (see module docstring).

    Raises TypeError for a value JSON cannot hold (MicroPython's json.dumps would write bytes as
    a string and other objects as their repr), ValueError for inf/nan or absurd nesting: both
    are our bugs, and the dispatcher turns them into an InternalError.
    """
    if not _scan(obj, _PAYLOAD_DEPTH):
        return json.dumps(obj, separators=_SEP)
    out = []
    _write(obj, out)
    return "".join(out)


def _scan(o, depth):
    """True when o holds a float; checks every value is a JSON type (one walk, no allocation)."""
    t = type(o)
    if t is str or t is int or t is bool or o is None:
        return False
    if t is float:
        return True
    if t is not dict and t is not list and t is not tuple:
        raise TypeError("not a JSON value")
    if depth == 0:
        raise ValueError("payload nested too deep")
    found = False
    if t is dict:
        for k in o:
            if type(k) is not str:
                raise TypeError("object key is not a string")
            if _scan(o[k], depth - 1):
                found = True
    else:
        for v in o:
            if _scan(v, depth - 1):
                found = True
    return found


def _write(o, out):
    """Appends the JSON text of o to the list out, piece by piece (only payloads with floats)."""
    t = type(o)
    if t is float:
        if o - o != 0:
            raise ValueError("not a finite number")
        out.append("{:.1f}".format(o))
    elif t is dict:
        out.append("{")
        first = True
        for k, v in o.items():
            if not first:
                out.append(",")
            first = False
            out.append(json.dumps(k))
            out.append(":")
            _write(v, out)
        out.append("}")
    elif t is list or t is tuple:
        out.append("[")
        for i, v in enumerate(o):
            if i:
                out.append(",")
            _write(v, out)
        out.append("]")
    else:
        out.append(json.dumps(o))
