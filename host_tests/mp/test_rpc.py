"""ocpp16.rpc in the Unix port: message ids, exact wire text, the decode table, floats."""
# mp-heapsize: 256K

import json

from ocpp16 import rpc
from ocpp16.rpc import RPC, CALL, CALLRESULT, CALLERROR, BAD, decode, round1

FV = "FormationViolation"
PE = "ProtocolError"


def _rand(seed):
    def rand(n):
        return bytes((seed + i * 7) & 0xFF for i in range(n))

    return rand


# ---- ids -------------------------------------------------------------------------------------


def test_ids_are_unique_short_strings():
    r = RPC(_rand(1))
    seen = set()
    for _ in range(500):
        uid = r.new_id()
        assert type(uid) is str and 0 < len(uid) <= 36
        assert uid not in seen
        seen.add(uid)


def test_ids_differ_across_reboots_with_the_same_counter():
    # A reboot restarts the counter; the random prefix keeps the ids apart.
    a = RPC(_rand(1))
    b = RPC(_rand(2))
    assert a.new_id() != b.new_id()
    assert a.new_id().split("-")[1] == b.new_id().split("-")[1] == "2"


def test_id_counter_wraps_without_growing():
    r = RPC(_rand(3))
    r._count = 999999999
    last = r.new_id()
    assert last.endswith("-1000000000") and len(last) <= 36
    assert r.new_id().endswith("-1")


def test_encode_call_uses_a_fresh_id_each_time():
    r = RPC(_rand(4))
    u1, t1 = r.encode_call("Heartbeat", {})
    u2, t2 = r.encode_call("Heartbeat", {})
    assert u1 != u2
    assert t1 == '[2,"{}","Heartbeat",{{}}]'.format(u1)


# ---- exact wire text ------------------------------------------------------------------------


def test_encode_result_exact_text():
    assert rpc.encode_result("a1", {"status": "Accepted"}) == '[3,"a1",{"status":"Accepted"}]'
    assert RPC(_rand(0)).encode_result("a1", {}) == '[3,"a1",{}]'


def test_encode_error_defaults_to_empty_description_and_details():
    assert rpc.encode_error("a1", "NotImplemented") == '[4,"a1","NotImplemented","",{}]'
    assert (
        rpc.encode_error("a1", "GenericError", "x", {"k": 1})
        == '[4,"a1","GenericError","x",{"k":1}]'
    )
    assert (
        RPC(_rand(0)).encode_error("u", "InternalError", None) == '[4,"u","InternalError","",{}]'
    )


def test_encode_error_cuts_long_descriptions():
    text = rpc.encode_error("a1", "GenericError", "é" * 500)
    desc = json.loads(text)[3]
    assert len(desc) == rpc.DESCRIPTION_MAX and desc == "é" * rpc.DESCRIPTION_MAX


# ---- floats ---------------------------------------------------------------------------------


def test_round1_rounds_to_one_decimal():
    assert round1(13.33) == 13.3
    assert round1(0.1 * 3) == 0.3
    assert round1(16) == 16.0 and type(round1(16)) is float
    for bad in (float("inf"), float("-inf"), float("nan")):
        try:
            round1(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_floats_serialise_with_one_decimal():
    # MicroPython's repr gives 8.199999999999999 for 8.2: a Decimal-checking CSMS rejects that.
    payload = {"p": [{"limit": round1(8.2)}, {"limit": 0.1 * 3}, {"limit": 13.33}], "n": 16.0}
    text = rpc.encode_result("u", payload)
    assert text == '[3,"u",{"p":[{"limit":8.2},{"limit":0.3},{"limit":13.3}],"n":16.0}]' or (
        text == '[3,"u",{"n":16.0,"p":[{"limit":8.2},{"limit":0.3},{"limit":13.3}]}]'
    )
    assert json.loads(text)[2]["p"][0]["limit"] == round1(8.2)


def test_every_tenth_serialises_cleanly():
    for k in range(0, 100001, 13):
        text = rpc.encode_result("u", {"limit": round1(k / 10)})
        assert text == '[3,"u",{{"limit":{}.{}}}]'.format(k // 10, k % 10), text


def test_payload_without_floats_goes_through_json_dumps_unchanged():
    p = {"a": [1, "x", True, None, {"b": 'é\n"'}]}
    assert rpc.encode_result("u", p) == json.dumps([3, "u", p], separators=(",", ":"))


def test_non_finite_float_in_payload_is_our_bug_and_raises():
    try:
        rpc.encode_result("u", {"limit": float("nan")})
    except ValueError:
        return
    raise AssertionError("nan encoded")


# ---- decode: the table of the module docstring -----------------------------------------------

CASES = (
    # well formed
    ('[2,"u1","Reset",{"type":"Hard"}]', (CALL, "u1", "Reset", {"type": "Hard"})),
    (' [ 2 , "u1" , "Heartbeat" , { } ] ', (CALL, "u1", "Heartbeat", {})),
    ('[2,"","Reset",{}]', (CALL, "", "Reset", {})),
    (
        '[3,"u1",{"currentTime":"2024-01-01T00:00:00Z"}]',
        (CALLRESULT, "u1", {"currentTime": "2024-01-01T00:00:00Z"}),
    ),
    (
        '[4,"u1","NotImplemented","no",{"a":1}]',
        (CALLERROR, "u1", "NotImplemented", "no", {"a": 1}),
    ),
    # 2.0.1 spellings and unknown codes from a CSMS
    ('[4,"u1","FormatViolation","",{}]', (CALLERROR, "u1", FV, "", {})),
    (
        '[4,"u1","OccurrenceConstraintViolation","",{}]',
        (CALLERROR, "u1", "OccurenceConstraintViolation", "", {}),
    ),
    ('[4,"u1","RpcFrameworkError","",{}]', (CALLERROR, "u1", "RpcFrameworkError", "", {})),
    (
        '[4,"u1","MessageTypeNotSupported","",{}]',
        (CALLERROR, "u1", "MessageTypeNotSupported", "", {}),
    ),
    ('[4,"-1","Whatever","",{}]', (CALLERROR, "-1", "GenericError", "", {})),
    # CALLERROR leniency: description/details missing or of the wrong type
    ('[4,"u1","InternalError"]', (CALLERROR, "u1", "InternalError", "", {})),
    ('[4,"u1","InternalError","d"]', (CALLERROR, "u1", "InternalError", "d", {})),
    ('[4,"u1","InternalError",5,[1]]', (CALLERROR, "u1", "InternalError", "", {})),
    ('[4,"u1","InternalError","d",null]', (CALLERROR, "u1", "InternalError", "d", {})),
    # malformed answers become a CALLERROR for their id, never an answer of ours
    ('[4,"u1",7,"d",{}]', (CALLERROR, "u1", FV, "malformed CALLERROR", {})),
    ('[4,"u1"]', (CALLERROR, "u1", FV, "malformed CALLERROR", {})),
    ('[4,"u1","X","d",{},1]', (CALLERROR, "u1", FV, "malformed CALLERROR", {})),
    ('[3,"u1"]', (CALLERROR, "u1", PE, "malformed CALLRESULT: payload incomplete", {})),
    ('[3,"u1",[]]', (CALLERROR, "u1", FV, "malformed CALLRESULT", {})),
    ('[3,"u1",null]', (CALLERROR, "u1", FV, "malformed CALLRESULT", {})),
    ('[3,"u1",{},{}]', (CALLERROR, "u1", FV, "malformed CALLRESULT", {})),
    # not a frame we can answer: no id
    ("not json", (BAD, None, FV, "invalid JSON")),
    ("", (BAD, None, FV, "invalid JSON")),
    ('{"a":1}', (BAD, None, FV, "frame is not a JSON array")),
    ('"text"', (BAD, None, FV, "frame is not a JSON array")),
    ("2", (BAD, None, FV, "frame is not a JSON array")),
    ("null", (BAD, None, FV, "frame is not a JSON array")),
    ("[]", (BAD, None, FV, "unknown message type")),
    ('[5,"u1",{}]', (BAD, None, FV, "unknown message type")),
    ('[1,"u1",{}]', (BAD, None, FV, "unknown message type")),
    ('[2.0,"u1","Reset",{}]', (BAD, None, FV, "unknown message type")),
    ('["2","u1","Reset",{}]', (BAD, None, FV, "unknown message type")),
    ('[true,"u1","Reset",{}]', (BAD, None, FV, "unknown message type")),
    ("[2]", (BAD, None, FV, "invalid message id")),
    ('[2,12,"Reset",{}]', (BAD, None, FV, "invalid message id")),
    ('[2,null,"Reset",{}]', (BAD, None, FV, "invalid message id")),
    ('[2,"' + "x" * 37 + '","Reset",{}]', (BAD, None, FV, "invalid message id")),
    ('[3,"' + "x" * 37 + '",{}]', (BAD, None, FV, "invalid message id")),
    # CALLs we can answer
    ('[2,"u1"]', (BAD, "u1", FV, "action missing")),
    ('[2,"u1",5,{}]', (BAD, "u1", FV, "action is not a string")),
    ('[2,"u1","",{}]', (BAD, "u1", FV, "action is not a string")),
    ('[2,"u1","Reset"]', (BAD, "u1", PE, "payload incomplete")),
    ('[2,"u1","Reset",null]', (BAD, "u1", FV, "payload is not an object")),
    ('[2,"u1","Reset",[]]', (BAD, "u1", FV, "payload is not an object")),
    ('[2,"u1","Reset","{}"]', (BAD, "u1", FV, "payload is not an object")),
    ('[2,"u1","Reset",{},{}]', (BAD, "u1", FV, "too many elements in CALL")),
    ('[2,"' + "x" * 36 + '","Reset",{}]', (CALL, "x" * 36, "Reset", {})),
)


def test_decode_table():
    for text, want in CASES:
        got = decode(text)
        assert got == want, (text, got, want)
        assert RPC(_rand(0)).decode(text) == want


def test_decode_accepts_bytes():
    assert decode(b'[2,"u1","Reset",{"type":"Soft"}]') == (CALL, "u1", "Reset", {"type": "Soft"})
    assert decode(b"\xff\xfe")[0] == BAD


def test_decode_unicode_payload():
    ev = decode('[2,"u1","DataTransfer",{"vendorId":"é€😀","data":"\\u00e9"}]')
    assert ev == (CALL, "u1", "DataTransfer", {"vendorId": "é€😀", "data": "é"})


# id recovery from broken JSON: only a CALL can be answered, only a plain id is trusted
RECOVER = (
    ('[2,"abc","Reset",{', "abc"),
    ('  [ 2 ,\t"abc" , "Reset", {"type": ', "abc"),
    ('[2,"abc"', "abc"),
    ('[2,"abc","Reset",{}] trailing', "abc"),  # tr(): trailing data after a whole frame
    ('[2,"ab\\"c","Reset",{', None),  # escaped quote: would need a real parser
    ('[2,"' + "x" * 37 + '","Reset",{', None),
    ('[2,"abc', None),
    ('[3,"abc",{', None),  # an answer: never answered
    ('[4,"abc","X",', None),
    ('[2, 5, "Reset", {', None),
    ('{"x": [2,"abc"', None),
    ("", None),
)


def test_bad_json_recovers_the_call_id_when_plain():
    for text, uid in RECOVER:
        ev = decode(text)
        assert ev == (BAD, uid, FV, "invalid JSON"), (text, ev)


def test_bad_json_id_recovery_from_bytes():
    assert decode(b'[2,"abc","Reset",{')[1] == "abc"
    assert decode(b'[2,"\xff\xfe","Reset",{')[1] is None


def test_whole_frame_then_every_prefix():
    # tr() for a whole-frame parser: the frame decodes; every cut of it is BAD with the real id
    # or none, never a wrong id and never an exception.
    text = '[2,"id-7","SetChargingProfile",{"connectorId":1,"csChargingProfiles":{"a":[1,2.5]}}]'
    assert decode(text)[0] == CALL
    for i in range(len(text)):
        ev = decode(text[:i])
        assert ev[0] == BAD and ev[1] in (None, "id-7"), (i, ev)
        assert ev[2] in (FV, PE)


def test_round_trip_encode_then_decode():
    r = RPC(_rand(5))
    payload = {"connectorId": 1, "idTag": "ABC", "nested": {"l": [1, "2", None, True]}, "x": 13.3}
    uid, text = r.encode_call("RemoteStartTransaction", payload)
    assert decode(text) == (CALL, uid, "RemoteStartTransaction", payload)
    assert decode(r.encode_result(uid, payload)) == (CALLRESULT, uid, payload)
    assert decode(r.encode_error(uid, "NotSupported", "d", {"k": "v"})) == (
        CALLERROR,
        uid,
        "NotSupported",
        "d",
        {"k": "v"},
    )


def test_deep_nesting_is_bad_not_a_crash():
    # MicroPython's json parser is iterative; depth costs heap. Under this file's 256K heap the
    # parse runs out of memory, which must end as a BAD frame, not a MemoryError.
    n = 20000
    text = '[2,"deep","DataTransfer",{"data":' + "[" * n + "]" * n + "}]"
    assert decode(text) == (BAD, "deep", FV, "invalid JSON")
    text = None
    ev = decode("[" * n)
    assert ev[:3] == (BAD, None, FV)


def test_values_json_cannot_hold_are_refused_not_misencoded():
    # MicroPython's json.dumps writes bytes as a string and objects as their repr: not JSON.
    for bad in ({"b": b"x"}, {"o": object()}, {"s": {1}}, {1: "non-string key"}, {"c": 1j}):
        try:
            rpc.encode_result("u", bad)
        except TypeError:
            continue
        raise AssertionError(bad)


def test_absurdly_nested_payload_of_ours_is_refused():
    p = {}
    for _ in range(10):
        p = {"n": [p]}
    try:
        rpc.encode_result("u", p)
    except ValueError:
        return
    raise AssertionError("nested payload encoded")
