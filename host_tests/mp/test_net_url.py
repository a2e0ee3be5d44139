"""net.url: WebSocket URL parsing and the Charge Point path segment (OCPP-J 1.6 section 3.1.1)."""

from net.url import join_cp_id, parse_url

GOOD = (
    ("ws://csms.example/ocpp", ("ws", "csms.example", 80, "/ocpp")),
    ("wss://csms.example/ocpp", ("wss", "csms.example", 443, "/ocpp")),
    ("WSS://Csms.Example:8443", ("wss", "Csms.Example", 8443, "/")),
    ("ws://10.0.0.2:9000/a/b/", ("ws", "10.0.0.2", 9000, "/a/b/")),
    ("ws://[::1]/ocpp", ("ws", "::1", 80, "/ocpp")),
    ("wss://[fe80::1]:444/x", ("wss", "fe80::1", 444, "/x")),
    ("ws://h?token=1", ("ws", "h", 80, "/?token=1")),
    ("ws://h/p?token=1", ("ws", "h", 80, "/p?token=1")),
)

BAD = (
    ("http://h/", "scheme"),
    ("h/ocpp", "no scheme"),
    ("ws:///ocpp", "no host"),
    ("ws://h:0/", "port"),
    ("ws://h:65536/", "port"),
    ("ws://h:/", "port"),
    ("ws://h:8a/", "port"),
    ("ws://user:pw@h/", "user information"),
    ("ws://h/ocpp#frag", "fragment"),
    ("ws://h/oc pp", "spaces"),
    ("ws://[::1/", "bracket"),
    ("ws://[::1]x/", "junk"),
    ("ws://[]/", "IPv6"),
    ("ws://a:b:1/", "bad character"),
    ("ws://a_b!/", "bad character"),
    ("ws://h\r\nX: y/", "control"),
    ("ws://" + "h" * 600, "longer"),
)


def test_good_urls():
    for url, want in GOOD:
        assert parse_url(url) == want, (url, parse_url(url))


def test_bad_urls_raise_value_error_with_reason():
    for url, why in BAD:
        try:
            parse_url(url)
        except ValueError as e:
            assert why in str(e), (url, str(e))
            continue
        raise AssertionError("accepted " + repr(url))
    try:
        parse_url(None)
    except ValueError:
        pass
    else:
        raise AssertionError("accepted None")


def test_join_cp_id_appends_one_segment():
    assert join_cp_id("/ocpp", "CP1") == "/ocpp/CP1"
    assert join_cp_id("/ocpp/", "CP1") == "/ocpp/CP1"
    assert join_cp_id("/", "CP1") == "/CP1"
    assert join_cp_id("/ocpp?t=1", "CP1") == "/ocpp/CP1?t=1"
    assert join_cp_id("/ocpp", "CP-1_a.b~c") == "/ocpp/CP-1_a.b~c"


def test_join_cp_id_percent_encodes_unsafe_characters():
    assert join_cp_id("/ocpp", "CP 1") == "/ocpp/CP%201"
    assert join_cp_id("/ocpp", "a/b") == "/ocpp/a%2Fb"
    assert join_cp_id("/ocpp", "100%?#") == "/ocpp/100%25%3F%23"
    assert join_cp_id("/ocpp", "Zürich") == "/ocpp/Z%C3%BCrich"
    for bad in ("", None):
        try:
            join_cp_id("/ocpp", bad)
        except ValueError:
            continue
        raise AssertionError("accepted empty identity")
