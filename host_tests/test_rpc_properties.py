"""Property tests (CPython) for ocpp16.rpc, ocpp16.dispatch, ocpp16.schema/specs, ocpp16.timefmt.

- decode() never raises on any text, bytes or JSON value, and answers per its docstring table;
  a cut or mutated frame never yields a wrong id.
- Encoded frames are strict JSON (no NaN) whose floats have at most one decimal, and round-trip.
- Dispatcher.handle() never raises and gives the right error class for every outcome.
- Every spec matches the OCA JSON schema it was written from, field for field, and for random
  valid and singly-mutated payloads our validator agrees with `jsonschema` (Draft 4, numbers as
  `decimal.Decimal` like the `ocpp` package, `date-time` checked by rfc3339-validator) on valid
  versus invalid; for a single mutation our code is the one the mutation calls for. The same
  cases also run through the validator inside the MicroPython Unix port.
- parse_rfc3339 agrees with rfc3339-validator on validity and with `datetime` on the value.

Not compared: `format: uri` (jsonschema checks it only with the rfc3987 package, not installed;
ours checks the scheme), and float spellings like 0.30000000000000004 for multipleOf 0.1 (we
allow a few ulps; Decimal does not).
"""

import datetime
import decimal
import json
import os
import subprocess
from pathlib import Path

import jsonschema
import ocpp
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from rfc3339_validator import validate_rfc3339

from mprunner import ROOT, micropython_path
from ocpp16 import rpc, specs, timefmt
from ocpp16.dispatch import Dispatcher
from ocpp16.errors import OCPPError, normalise_error_code
from ocpp16.schema import validate

SCHEMAS = Path(ocpp.__file__).parent / "v16" / "schemas"
BAD, CALL, CALLRESULT, CALLERROR = rpc.BAD, rpc.CALL, rpc.CALLRESULT, rpc.CALLERROR
FV, PE = "FormationViolation", "ProtocolError"
OCC, TYP, PROP = (
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "PropertyConstraintViolation",
)
CODES_1_6 = (
    "NotImplemented NotSupported InternalError ProtocolError SecurityError FormationViolation "
    "PropertyConstraintViolation OccurenceConstraintViolation TypeConstraintViolation GenericError"
).split()
RECEIVED_CODES = CODES_1_6 + ["RpcFrameworkError", "MessageTypeNotSupported"]

REQUESTS = (
    "ChangeAvailability ChangeConfiguration ClearCache DataTransfer GetConfiguration "
    "RemoteStartTransaction RemoteStopTransaction Reset UnlockConnector GetDiagnostics "
    "UpdateFirmware SendLocalList GetLocalListVersion ReserveNow CancelReservation "
    "SetChargingProfile ClearChargingProfile GetCompositeSchedule TriggerMessage"
).split()
CONFIRMATIONS = (
    "Authorize BootNotification DataTransfer Heartbeat MeterValues StartTransaction "
    "StatusNotification StopTransaction DiagnosticsStatusNotification FirmwareStatusNotification"
).split()


def _snake_upper(action):
    out = []
    for i, c in enumerate(action):
        if c.isupper() and i:
            out.append("_")
        out.append(c.upper())
    return "".join(out)


# (spec attribute in ocpp16.specs, schema file name)
PAIRS = [(_snake_upper(a) + "_REQ", a + ".json") for a in REQUESTS] + [
    (_snake_upper(a) + "_CONF", a + "Response.json") for a in CONFIRMATIONS
]


def load_schema(fname, parse_float=float):
    return json.loads((SCHEMAS / fname).read_text(), parse_float=parse_float)


VALIDATORS = {
    name: jsonschema.Draft4Validator(
        load_schema(fname, decimal.Decimal), format_checker=jsonschema.FormatChecker()
    )
    for name, fname in PAIRS
}


def reference_valid(name, text):
    """The `ocpp` package's way: numbers as Decimal, Draft 4; plus the date-time format check."""
    return VALIDATORS[name].is_valid(json.loads(text, parse_float=decimal.Decimal))


def our_code(name, text):
    try:
        validate(json.loads(text), getattr(specs, name))
    except OCPPError as e:
        return e.code
    return None


# ---- structural comparison: spec == schema ----------------------------------------------------


def spec_to_schema(spec):
    props, required = {}, []
    for i in range(0, len(spec), 3):
        name, code, arg = spec[i : i + 3]
        if code.isupper():
            required.append(name)
        props[name] = _field_schema(code.lower(), arg)
    out = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = sorted(required)
    return out


def _field_schema(code, arg):
    if code == "s":
        return {"type": "string", **({"maxLength": arg} if arg is not None else {})}
    if code == "e":
        return {"type": "string", "enum": sorted(arg)}
    if code == "t":
        return {"type": "string", "format": "date-time"}
    if code == "u":
        return {"type": "string", "format": "uri"}
    if code == "i":
        assert arg is None  # the 1.6 schemas have no integer bounds
        return {"type": "integer"}
    if code == "n":
        return {"type": "number"}
    if code == "d":
        return {"type": "number", "multipleOf": 0.1}
    if code == "b":
        return {"type": "boolean"}
    if code == "o":
        return spec_to_schema(arg)
    if code == "a":
        assert len(arg) == 2  # the 1.6 schemas we cover have no item counts
        return {"type": "array", "items": _field_schema(arg[0], arg[1])}
    raise AssertionError(code)


def normalise(s):
    if not isinstance(s, dict):
        return s
    out = {}
    for k, v in s.items():
        if k in ("$schema", "title", "id", "$id"):
            continue
        if k == "additionalProperties" and s.get("type") != "object":
            continue  # the OCA files put it on enum strings, where it means nothing
        if k == "properties":
            v = {pk: normalise(pv) for pk, pv in v.items()}
        elif k in ("required", "enum"):
            v = sorted(v)
        elif k == "items":
            v = normalise(v)
        out[k] = v
    if out.get("type") == "object":
        out.setdefault("additionalProperties", True)
        if not out.get("required"):
            out.pop("required", None)
        out.setdefault("properties", {})
    return out


@pytest.mark.parametrize("name,fname", PAIRS)
def test_spec_matches_the_oca_schema_field_for_field(name, fname):
    assert normalise(spec_to_schema(getattr(specs, name))) == normalise(load_schema(fname))


def test_every_spec_is_covered():
    names = {n for n in dir(specs) if n.endswith(("_REQ", "_CONF"))}
    assert names == {n for n, _ in PAIRS}
    for action in CONFIRMATIONS:
        assert specs.confirmation_spec(action) is getattr(specs, _snake_upper(action) + "_CONF")


# ---- payload generators from the official schemas ---------------------------------------------


@st.composite
def datetimes(draw):
    y = draw(st.integers(1, 9999))
    m = draw(st.integers(1, 12))
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    dim = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
    d = draw(st.integers(1, dim))
    hh, mm, ss = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    frac = draw(
        st.one_of(
            st.just(""), st.text("0123456789", min_size=1, max_size=9).map(lambda f: "." + f)
        )
    )
    off = draw(
        st.one_of(
            st.sampled_from(["Z", "z"]),
            st.tuples(st.sampled_from("+-"), st.integers(0, 23), st.integers(0, 59)).map(
                lambda t: "%s%02d:%02d" % t
            ),
        )
    )
    sep = draw(st.sampled_from("Tt"))
    return "%04d-%02d-%02d%s%02d:%02d:%02d%s%s" % (y, m, d, sep, hh, mm, ss, frac, off)


@st.composite
def loose_datetimes(draw):
    """Well-formed shape, each field drawn a little past its range (day 29-31 of every month)."""
    y = draw(st.one_of(st.integers(0, 9999), st.sampled_from([1900, 2000, 2023, 2024, 2100])))
    m, d = draw(st.integers(0, 13)), draw(st.one_of(st.integers(0, 32), st.integers(28, 31)))
    hh, mm, ss = draw(st.integers(0, 25)), draw(st.integers(0, 61)), draw(st.integers(0, 61))
    off = draw(
        st.one_of(
            st.just("Z"),
            st.tuples(st.sampled_from("+-"), st.integers(0, 25), st.integers(0, 61)).map(
                lambda t: "%s%02d:%02d" % t
            ),
        )
    )
    return "%04d-%02d-%02dT%02d:%02d:%02d%s" % (y, m, d, hh, mm, ss, off)


_DT_NOISE = "0123456789-:.TtZz+ "


@st.composite
def corrupt(draw, base):
    s = draw(base)
    kind = draw(st.sampled_from(["replace", "delete", "insert", "cut"]))
    i = draw(st.integers(0, len(s)))
    c = draw(st.sampled_from(_DT_NOISE))
    if kind == "replace" and i < len(s):
        return s[:i] + c + s[i + 1 :]
    if kind == "delete":
        return s[:i] + s[i + 1 :]
    if kind == "insert":
        return s[:i] + c + s[i:]
    return s[:i]


date_like = st.one_of(
    datetimes(),
    loose_datetimes(),
    corrupt(datetimes()),
    st.text(_DT_NOISE, max_size=32),
    st.text(max_size=25),
)

uris = st.sampled_from(
    ["ftp://host/dir/", "https://example.com/fw.bin?x=1", "urn:isbn:1", "http://[::1]:80/"]
)


def from_schema(s, ascii_only=False):
    """A strategy of valid instances of a (float-parsed) 1.6 schema node."""
    t = s["type"]
    if t == "object":
        props = s.get("properties", {})
        req = set(s.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(props[k], ascii_only) for k in req},
            optional={k: from_schema(v, ascii_only) for k, v in props.items() if k not in req},
        )
    if t == "string":
        if "enum" in s:
            return st.sampled_from(s["enum"])
        if s.get("format") == "date-time":
            return datetimes()
        if s.get("format") == "uri":
            return uris
        return _text(0, s.get("maxLength", 40), ascii_only)
    if t == "integer":
        return st.integers(-(2**40), 2**40)
    if t == "number":
        tenths = st.integers(-(10**6), 10**6).map(lambda k: k / 10)
        return st.one_of(tenths, st.integers(-(10**5), 10**5))
    if t == "boolean":
        return st.booleans()
    if t == "array":
        return st.lists(from_schema(s["items"], ascii_only), max_size=4)
    raise AssertionError(t)


def _text(lo, hi, ascii_only):
    # ascii_only / BMP for the MicroPython run: its json.loads does not join escaped surrogate
    # pairs, so an astral char escaped by CPython counts as two there (see the report).
    if ascii_only:
        alphabet = st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",))
        return st.text(alphabet, min_size=lo, max_size=hi)
    return st.text(min_size=lo, max_size=hi)


def _wrong_type(s):
    t = s["type"]
    pool = {
        "string": st.one_of(st.integers(), st.booleans(), st.none(), st.just([]), st.just({})),
        "integer": st.one_of(
            _text(0, 5, False),
            st.booleans(),
            st.none(),
            st.integers(-1000, 1000).map(lambda k: k + 0.5),
            st.just(2.0),
        ),
        "number": st.one_of(_text(0, 5, False), st.booleans(), st.none(), st.just([1])),
        "boolean": st.one_of(st.integers(0, 1), st.text(max_size=3), st.none()),
        "object": st.one_of(st.text(max_size=3), st.integers(), st.just([]), st.none()),
        "array": st.one_of(st.text(max_size=3), st.integers(), st.just({}), st.none()),
    }
    return pool[t]


def _bad_value(s):
    """A strategy of same-type values that break the node's constraint, or None."""
    if s["type"] == "string":
        if "enum" in s:
            return _text(0, 25, False).filter(lambda v: v not in s["enum"])
        if s.get("format") == "date-time":
            return date_like  # may happen to be valid: the reference decides
        if "maxLength" in s:
            n = s["maxLength"]
            return _text(n + 1, n + 4, False)
    if s["type"] == "number" and "multipleOf" in s:
        return st.integers(-(10**5), 10**5).filter(lambda k: k % 10).map(lambda k: k / 100)
    return None


def _sites(value, s, path=()):
    """Every (path, schema node) in a valid instance, objects and their values included."""
    yield path, s
    if s["type"] == "object":
        for k, v in value.items():
            yield from _sites(v, s["properties"][k], path + (k,))
    elif s["type"] == "array":
        for i, v in enumerate(value):
            yield from _sites(v, s["items"], path + (i,))


def _set(root, path, v):
    for p in path[:-1]:
        root = root[p]
    root[path[-1]] = v


def _get(root, path):
    for p in path:
        root = root[p]
    return root


@st.composite
def mutated(draw, s, ascii_only=False):
    """(payload, expected code or "?" when the reference decides) with one violation."""
    payload = draw(from_schema(s, ascii_only))
    sites = list(_sites(payload, s))
    path, node = draw(st.sampled_from(sites))
    kinds = []
    if node["type"] == "object":
        kinds.append("extra")
        present_req = [k for k in node.get("required", []) if k in _get(payload, path)]
        if present_req:
            kinds.append("drop")
    if path:
        kinds.append("type")
        if _bad_value(node) is not None:
            kinds.append("value")
    kind = draw(st.sampled_from(kinds))
    if kind == "extra":
        key = "x_" + draw(st.text("abcdefghij", min_size=1, max_size=6))
        _get(payload, path)[key] = draw(st.one_of(st.integers(), st.text(max_size=3)))
        return payload, FV
    if kind == "drop":
        del _get(payload, path)[draw(st.sampled_from(present_req))]
        return payload, OCC
    if kind == "type":
        _set(payload, path, draw(_wrong_type(node)))
        return payload, TYP
    _set(payload, path, draw(_bad_value(node)))
    return payload, "?" if node.get("format") == "date-time" else PROP


SPEC_NAMES = [n for n, _ in PAIRS]
FLOAT_SCHEMAS = {name: load_schema(fname) for name, fname in PAIRS}


@settings(max_examples=60, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("name", SPEC_NAMES)
def test_valid_payloads_pass_both_validators(name, data):
    payload = data.draw(from_schema(FLOAT_SCHEMAS[name]))
    text = json.dumps(payload)
    assert reference_valid(name, text), text
    assert our_code(name, text) is None, (text, our_code(name, text))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
@pytest.mark.parametrize("name", [n for n in SPEC_NAMES if FLOAT_SCHEMAS[n]["properties"]])
def test_mutated_payloads_agree_with_jsonschema(name, data):
    payload, want = data.draw(mutated(FLOAT_SCHEMAS[name]))
    text = json.dumps(payload)
    theirs = reference_valid(name, text)
    ours = our_code(name, text)
    assert (ours is None) == theirs, (text, ours, theirs)
    if want != "?":
        assert not theirs and ours == want, (text, ours, want)
    elif ours is not None:
        assert ours == PROP


def test_mp_validator_agrees_on_generated_cases(tmp_path):
    """The same generated cases through the validator inside the Unix port, in one process."""
    cases = []

    @settings(
        max_examples=1, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(data=st.data())
    def collect(data):
        for name in SPEC_NAMES:
            s = FLOAT_SCHEMAS[name]
            for _ in range(12):
                cases.append([name, json.dumps(data.draw(from_schema(s, True)))])
                if s["properties"]:
                    cases.append([name, json.dumps(data.draw(mutated(s, True))[0])])

    collect()
    script = tmp_path / "mpcheck.py"
    script.write_text(
        "import sys, json\n"
        "from ocpp16 import specs\n"
        "from ocpp16.schema import validate\n"
        "from ocpp16.errors import OCPPError\n"
        "out = []\n"
        "for name, text in json.loads(sys.stdin.read()):\n"
        "    try:\n"
        "        validate(json.loads(text), getattr(specs, name))\n"
        "        out.append(None)\n"
        "    except OCPPError as e:\n"
        "        out.append(e.code)\n"
        "print(json.dumps(out))\n"
    )
    env = dict(os.environ, MICROPYPATH=str(ROOT / "lib"))
    p = subprocess.run(
        [micropython_path(), "-X", "heapsize=8M", str(script)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    mp_codes = json.loads(p.stdout)
    assert len(mp_codes) == len(cases)
    n_invalid = 0
    for (name, text), mp in zip(cases, mp_codes, strict=True):
        assert mp == our_code(name, text), (name, text, mp)
        assert (mp is None) == reference_valid(name, text), (name, text, mp)
        n_invalid += mp is not None
    assert 0 < n_invalid < len(cases)


# ---- rfc3339 ----------------------------------------------------------------------------------


def _reference_seconds(s):
    date, rest = s[:10], s[11:]
    y, m, d = int(date[:4]), int(date[5:7]), int(date[8:10])
    hh, mm, ss = int(rest[:2]), int(rest[3:5]), int(rest[6:8])
    tail = rest[8:]
    frac = ""
    if tail.startswith("."):
        i = 1
        while tail[i].isdigit():
            i += 1
        frac, tail = tail[1:i], tail[i:]
    off = (
        0
        if tail in "Zz"
        else (1 if tail[0] == "+" else -1) * (int(tail[1:3]) * 3600 + int(tail[4:6]) * 60)
    )
    base = datetime.datetime(y, m, d, hh, mm, ss) - datetime.datetime(1970, 1, 1)
    secs = base.days * 86400 + base.seconds - off
    ms = int((frac + "000")[:3]) if frac else 0
    return secs, secs * 1000 + ms


@settings(max_examples=2000, deadline=None)
@given(date_like)
def test_rfc3339_agrees_with_validator_and_datetime(s):
    ref = validate_rfc3339(s.upper())
    try:
        secs = timefmt.parse_rfc3339(s)
        ms = timefmt.parse_rfc3339_ms(s)
        ours = True
    except ValueError:
        ours = False
    assert ours == ref, s
    if ours:
        assert (secs, ms) == _reference_seconds(s)


@settings(max_examples=500, deadline=None)
@given(st.integers(-62135596800, 253402300799))
def test_format_rfc3339_matches_datetime(t):
    ref = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=t)
    assert timefmt.format_rfc3339(t) == ref.strftime("%Y-%m-%dT%H:%M:%SZ").rjust(20, "0")
    assert timefmt.parse_rfc3339(timefmt.format_rfc3339(t)) == t


# ---- decode -----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=6), c, max_size=5),
    max_leaves=20,
)
uids = st.one_of(
    st.text(max_size=36),
    st.text(min_size=37, max_size=40),
    st.integers(),
    st.none(),
    st.just("-1"),
)
elements = st.one_of(
    st.sampled_from(["Reset", "", "FormatViolation", "NotImplemented", "Nonsense", "d"]),
    st.dictionaries(st.text(max_size=4), json_values, max_size=3),
    json_values,
)
# Mostly near-valid frames: a likely message type and id, then 0-4 elements of any kind.
near_frames = st.builds(
    lambda kind, uid, rest, n: ([kind, uid] + rest)[:n],
    st.one_of(st.sampled_from([2, 3, 4]), st.sampled_from([1, 5, 2.0, "2", True, None])),
    uids,
    st.lists(elements, max_size=4),
    st.integers(0, 7),
)


def check_event(ev):
    """Shape of every event, per the rpc docstring."""
    kind = ev[0]
    if kind == BAD:
        assert len(ev) == 4 and ev[2] in (FV, PE) and isinstance(ev[3], str)
        assert ev[1] is None or (type(ev[1]) is str and len(ev[1]) <= 36)
    elif kind == CALL:
        assert len(ev) == 4 and type(ev[1]) is str and len(ev[1]) <= 36
        assert type(ev[2]) is str and ev[2] and type(ev[3]) is dict
    elif kind == CALLRESULT:
        assert len(ev) == 3 and type(ev[1]) is str and len(ev[1]) <= 36 and type(ev[2]) is dict
    else:
        assert kind == CALLERROR and len(ev) == 5 and type(ev[1]) is str and len(ev[1]) <= 36
        assert ev[2] in RECEIVED_CODES and type(ev[3]) is str and type(ev[4]) is dict


def expected_kind(v):
    """(kind, uid, code) the docstring table gives for a parsed JSON value."""
    if type(v) is not list:
        return BAD, None, FV
    if not v or type(v[0]) is not int or v[0] not in (2, 3, 4):
        return BAD, None, FV
    uid = v[1] if len(v) > 1 else None
    if type(uid) is not str or len(uid) > 36:
        return BAD, None, FV
    n = len(v)
    if v[0] == 2:
        if n == 2 or type(v[2]) is not str or not v[2]:
            return BAD, uid, FV
        if n == 3:
            return BAD, uid, PE
        if n > 4 or type(v[3]) is not dict:
            return BAD, uid, FV
        return CALL, uid, None
    if v[0] == 3:
        if n == 2:
            return CALLERROR, uid, PE
        if n > 3 or type(v[2]) is not dict:
            return CALLERROR, uid, FV
        return CALLRESULT, uid, None
    if n < 3 or type(v[2]) is not str or n > 5:
        return CALLERROR, uid, FV
    return CALLERROR, uid, normalise_error_code(v[2])


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(max_size=60), st.binary(max_size=60)))
def test_decode_never_raises_on_any_text(text):
    check_event(rpc.decode(text))


@settings(max_examples=3000, deadline=None)
@given(st.one_of(near_frames, json_values))
def test_decode_follows_the_table(v):
    ev = rpc.decode(json.dumps(v))
    check_event(ev)
    kind, uid, code = expected_kind(v)
    assert (ev[0], ev[1]) == (kind, uid), (v, ev)
    if code is not None:
        assert ev[2] == code, (v, ev)


@st.composite
def frame_texts(draw):
    uid = draw(
        st.text(
            st.characters(min_codepoint=0x20, max_codepoint=0x7E).filter(lambda c: c not in '"\\'),
            max_size=36,
        )
    )
    payload = draw(st.dictionaries(st.text(max_size=6), json_values, max_size=4))
    return uid, json.dumps([2, uid, "DataTransfer", payload])


@settings(max_examples=1000, deadline=None)
@given(frame_texts(), st.data())
def test_cut_or_mutated_frames_never_give_a_wrong_id(frame, data):
    uid, text = frame
    assert rpc.decode(text)[:2] == (CALL, uid)
    i = data.draw(st.integers(0, len(text)))
    cut = rpc.decode(text[:i])
    check_event(cut)
    if i < len(text):
        assert cut[0] == BAD and cut[1] in (None, uid), (text[:i], cut)
    j = data.draw(st.integers(0, max(0, len(text) - 1)))
    c = data.draw(st.characters(codec="utf-8"))
    check_event(rpc.decode(text[:j] + c + text[j + 1 :]))
    check_event(rpc.decode(text[:j] + c + text[j:]))


# ---- encode -----------------------------------------------------------------------------------

enc_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.integers(-(10**6), 10**6).map(lambda k: k / 10),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=15,
)


def _strict(text):
    def no_constants(name):
        raise ValueError(name)

    return json.loads(text, parse_constant=no_constants, parse_float=decimal.Decimal)


def _decimals(v):
    if isinstance(v, decimal.Decimal):
        yield v
    elif isinstance(v, dict):
        for x in v.values():
            yield from _decimals(x)
    elif isinstance(v, list):
        for x in v:
            yield from _decimals(x)


@settings(max_examples=1000, deadline=None)
@given(st.dictionaries(st.text(max_size=6), enc_values, max_size=5), st.text(max_size=40))
def test_encoders_round_trip_and_write_clean_decimals(payload, desc):
    r = rpc.RPC(os.urandom)
    uid, text = r.encode_call("DataTransfer", payload)
    assert rpc.decode(text) == (CALL, uid, "DataTransfer", payload)
    for t in (
        text,
        r.encode_result(uid, payload),
        r.encode_error(uid, "GenericError", desc, payload),
    ):
        for d in _decimals(_strict(t)):
            assert d.as_tuple().exponent >= -1, t
    assert rpc.decode(r.encode_result(uid, payload)) == (CALLRESULT, uid, payload)
    assert rpc.decode(r.encode_error(uid, "GenericError", desc, payload)) == (
        CALLERROR, uid, "GenericError", desc[: rpc.DESCRIPTION_MAX], payload,
    )  # fmt: skip


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9))
def test_round1_serialises_with_one_decimal(x):
    text = rpc.encode_result("u", {"limit": rpc.round1(x)})
    d = _strict(text)[2]["limit"]
    assert d.as_tuple().exponent == -1 and abs(float(d) - x) <= 0.05 + 1e-6


# ---- dispatch ---------------------------------------------------------------------------------

BEHAVIOURS = ["ok", "ok_after", "ocpp_error", "crash", "garbage"]


def _handler(behaviour, code):
    def h(ctx, payload):
        ctx.append(payload)
        if behaviour == "ok":
            return {"status": "Accepted"}
        if behaviour == "ok_after":
            return {"status": "Accepted"}, lambda: ctx.append("after")
        if behaviour == "ocpp_error":
            raise OCPPError(code, "refused")
        if behaviour == "crash":
            raise ZeroDivisionError
        return object()

    return h


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from(REQUESTS + ["Frobnicate", "BootNotification"]),
    st.sampled_from(BEHAVIOURS),
    st.one_of(st.sampled_from(RECEIVED_CODES + ["FormatViolation", "Nonsense"]), st.integers()),
    st.data(),
)
def test_dispatch_never_raises_and_answers_with_the_right_class(action, behaviour, code, data):
    registered = REQUESTS[::2]  # half of the profile actions have a handler
    seen = []
    d = Dispatcher(on_exception=seen.append)
    d.register(
        {
            a: (getattr(specs, _snake_upper(a) + "_REQ"), _handler(behaviour, code))
            for a in registered
        }
    )
    if action in REQUESTS and data.draw(st.booleans()):
        payload = data.draw(from_schema(FLOAT_SCHEMAS[_snake_upper(action) + "_REQ"]))
    else:
        payload = data.draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4))
    ctx = []
    out = d.handle(ctx, "id-1", action, payload)
    assert type(out) is tuple and len(out) == 2
    text, after = out
    ev = rpc.decode(text)
    assert ev[1] == "id-1"
    if action not in registered:
        assert ev[:3] == (CALLERROR, "id-1", "NotImplemented") and after is None and not ctx
        return
    try:
        validate(payload, getattr(specs, _snake_upper(action) + "_REQ"))
        invalid = None
    except OCPPError as e:
        invalid = e.code
    if invalid:
        assert ev[:3] == (CALLERROR, "id-1", invalid) and not ctx and after is None
        return
    assert ctx == [payload]
    if behaviour in ("ok", "ok_after"):
        assert ev == (CALLRESULT, "id-1", {"status": "Accepted"})
        assert (after is None) == (behaviour == "ok")
    elif behaviour == "ocpp_error":
        assert ev[:3] == (CALLERROR, "id-1", normalise_error_code(code)) and after is None
        assert ev[2] in CODES_1_6 + ["RpcFrameworkError", "MessageTypeNotSupported"]
    else:
        assert ev[:3] == (CALLERROR, "id-1", "InternalError") and after is None and len(seen) == 1
