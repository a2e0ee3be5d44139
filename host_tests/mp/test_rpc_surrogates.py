"""ocpp16.rpc.decode in the Unix port: escaped UTF-16 surrogates never reach an answer.

Found by host_tests/test_fuzz.py: MicroPython's json.loads keeps `"\\ud83d\\ude00"` (how CPython's
json.dumps writes an emoji) as two surrogate code points stored as invalid UTF-8, so echoing the
string (GetConfiguration unknownKey) produced a text frame the CSMS closed with 1007.
"""
# mp-heapsize: 128K

from ocpp16.rpc import CALL, BAD, decode, encode_result

EMOJI = "\U0001f600"


def _utf8_clean(text):
    b = text.encode()
    # CESU-8 surrogates are ED A0..BF xx: valid UTF-8 never holds them.
    for i in range(len(b) - 1):
        if b[i] == 0xED and b[i + 1] >= 0xA0:
            return False
    return True


def test_an_escaped_pair_becomes_the_character():
    ev = decode('[2,"a","GetConfiguration",{"key":["x\\ud83d\\ude00y"]}]')
    assert ev[0] == CALL
    key = ev[3]["key"][0]
    assert key == "x" + EMOJI + "y" and len(key) == 3  # one char, as a maxLength counts it


def test_upper_case_hex_and_bytes_input():
    ev = decode(b'[2,"a","X",{"k":"\\uD83D\\uDE00"}]')
    assert ev[3]["k"] == EMOJI


def test_a_lone_surrogate_becomes_the_replacement_character():
    for text in ('"\\udbbb"', '"\\udc00\\ud800"', '"\\ud800\\u0041"', '"\\ud800"'):
        ev = decode('[2,"a","X",{"k":' + text + "}]")
        assert ev[0] == CALL
        assert "\ufffd" in ev[3]["k"]
        assert _utf8_clean(ev[3]["k"])


def test_an_escaped_backslash_is_not_an_escape():
    ev = decode('[2,"a","X",{"k":"\\\\ud83d"}]')
    assert ev[3]["k"] == "\\ud83d"


def test_the_echo_is_valid_utf8():
    ev = decode('[2,"a","GetConfiguration",{"key":["\\ud83d\\ude00","\\udfff"]}]')
    out = encode_result("a", {"configurationKey": [], "unknownKey": ev[3]["key"]})
    assert _utf8_clean(out)


def test_broken_escapes_stay_invalid_json_with_the_id_recovered():
    ev = decode('[2,"a","X",{"k":"\\ud8"}]')
    assert ev[0] == BAD and ev[1] == "a"
