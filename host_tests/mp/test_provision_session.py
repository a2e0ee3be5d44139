"""provision.session + provision.device inside the Unix port, with an injected clock.

Handshake, wrong secret and the growing lockout (kept across a power cycle), the button
window, replayed/reordered/tampered messages, oversized fields and messages, certificates that
do not parse, attempts to read secrets, commit rules, timeouts, maintenance commands, and
random frames. Each refusal is checked for its status, its reason, and that nothing was stored.
The heap is large because lib/store reads every record into a 16 KB buffer and mbedTLS
contexts fragment the Unix port's heap.
"""
# mp-heapsize: 1M

import os
import random

import _provkit as K
from provision import codec as C
from provision import storage
from provision.device import lock_seconds

URL = b"ws://127.0.0.1:9000/ocpp"


def reason(recs):
    return recs.get(C.T_REASON, b"").decode()


def stored(kit):
    return kit.store.load("provisioning")


def test_handshake_then_status_shows_fields_but_no_secrets():
    kit = K.Kit()
    c = K.Client(kit)
    info = c.info()
    assert info[C.T_DEVICE_ID] == b"SIM-TEST" and info[C.T_STATE] == b"\x00"  # unprovisioned
    assert c.login()[0] == C.OK
    st, _ = c.set((C.T_URL, URL), (C.T_CP_ID, b"CP1"), (C.T_AUTH_KEY, b"pass-word-123"),
                  (C.T_WIFI_SSID, b"home"), (C.T_WIFI_PASSWORD, b"wifi-pass-456"))
    assert st == C.OK
    st, recs = c.request(C.OP_COMMIT)
    assert st == C.OK and recs[C.T_PROFILE] == b"\x01"
    assert c.sess.action == "restart" and c.sess.closed
    rec = stored(kit)
    assert rec["url"] == URL.decode() and rec["password"] == "pass-word-123"
    assert rec["wifi_ssid"] == "home" and rec["profile"] == 1
    kit.board.open_window(60000)
    c2 = K.Client(kit)
    assert c2.login()[0] == C.OK
    st, recs = c2.request(C.OP_GET_STATUS)
    assert st == C.OK and recs[C.T_URL] == URL and recs[C.T_CP_ID] == b"CP1"
    assert recs[C.T_SECRETS_SET] == b"\x03"
    blob = b"".join(recs.values())
    assert b"pass-word-123" not in blob and b"wifi-pass-456" not in blob


def test_secrets_cannot_be_read_back():
    kit = K.Kit()
    c = K.Client(kit)
    c.login()
    c.set((C.T_URL, URL), (C.T_CP_ID, b"CP1"), (C.T_AUTH_KEY, b"pass-word-123"))
    for tag in (C.T_WIFI_PASSWORD, C.T_AUTH_KEY, C.T_CLIENT_KEY):
        st, recs = c.request(C.OP_GET, [(tag, b"")])
        assert st == C.BAD_FIELD and "write-only" in reason(recs)
        assert recs[C.T_FIELD] == bytes((tag,))
    st, recs = c.request(C.OP_GET, [(C.T_CP_ID, b""), (C.T_CA, b"")])
    assert st == C.OK and recs[C.T_CA_SHA256] == b""  # readable fields, staged not stored yet
    st, recs = c.request(C.OP_GET_STATUS)
    assert recs[C.T_STAGED] == bytes((C.T_URL, C.T_CP_ID, C.T_AUTH_KEY))
    assert b"pass-word-123" not in b"".join(recs.values())


def test_wrong_secret_is_refused_closes_and_stores_nothing():
    kit = K.Kit()
    c = K.Client(kit)
    st, recs = c.login(secret=b"\xff" * 16)
    assert st == C.NOT_AUTHENTICATED and "wrong secret" in reason(recs)
    assert c.sess.closed and kit.prov.lockout.fails == 1
    assert c.sess.feed(C.frame(C.GET_INFO, 99), 0) == []  # a closed session says nothing
    assert stored(kit) is None


def test_lockout_grows_and_survives_a_power_cycle():
    kit = K.Kit()
    assert [lock_seconds(n) for n in (1, 2, 3, 4, 5, 10, 40)] == [0, 0, 30, 60, 120, 3600, 3600]
    for _ in range(2):
        assert K.Client(kit).login(b"x" * 16)[0] == C.NOT_AUTHENTICATED
    st, recs = K.Client(kit).login(b"x" * 16)  # the third failure locks for 30 s
    assert st == C.NOT_AUTHENTICATED and recs[C.T_SECONDS] == C.u32(30)
    st, recs = K.Client(kit).login()  # even the right secret waits
    assert st == C.LOCKED and recs[C.T_SECONDS] == C.u32(30) and "retry in 30 s" in reason(recs)
    assert K.Client(kit).info()[C.T_STATE] == b"\x03"
    kit.clock.advance(30000)
    st, recs = K.Client(kit).login(b"x" * 16)
    assert recs[C.T_SECONDS] == C.u32(60)  # the fourth failure: 60 s
    kit.clock.advance(59000)
    assert K.Client(kit).login()[0] == C.LOCKED
    kit2 = kit.reboot()  # a power cycle does not lift the lock: it runs again in full
    st, recs = K.Client(kit2).login()
    assert st == C.LOCKED and recs[C.T_SECONDS] == C.u32(60)
    kit2.clock.advance(60000)
    assert K.Client(kit2).login()[0] == C.OK  # success resets the counter, in flash too
    assert kit2.reboot().prov.lockout.fails == 0


def test_window_closed_when_provisioned_until_the_button_is_pressed():
    kit = K.Kit()
    kit.provision()
    c = K.Client(kit)
    assert c.info()[C.T_STATE] == b"\x02"
    st, recs = c.login()
    assert st == C.WINDOW_CLOSED and "service button" in reason(recs)
    assert kit.prov.lockout.fails == 0  # not an attempt
    kit.board.open_window(60000)
    c = K.Client(kit)
    assert c.login()[0] == C.OK
    kit.clock.advance(50000)
    assert c.request(C.OP_GET_STATUS)[0] == C.OK  # each accepted message extends the window
    kit.clock.advance(50000)
    assert c.request(C.OP_GET_STATUS)[0] == C.OK
    kit.clock.advance(60001)
    st, recs = c.request(C.OP_GET_STATUS)
    assert st == C.WINDOW_CLOSED and c.sess.closed


def test_commands_before_authentication_are_refused():
    kit = K.Kit()
    c = K.Client(kit)
    st, recs = c.request(C.OP_SET, [(C.T_URL, URL)])
    assert st == C.NOT_AUTHENTICATED and "authenticate first" in reason(recs)
    st, _ = c.request(C.OP_PROOF, [(C.T_PROOF, bytes(32))])
    assert st == C.NOT_AUTHENTICATED
    assert kit.prov.lockout.fails == 0 and stored(kit) is None


def test_replayed_message_ends_the_session_and_stores_nothing():
    kit = K.Kit()
    c = K.Client(kit)
    c.login()
    assert c.set((C.T_URL, URL))[0] == C.OK
    envelope = c.chan.seal(C.command(C.OP_COMMIT))
    c.chan.ctr_out -= 1  # as if the recorded envelope were sent again
    replay = c.send_raw(c.chan.seal(C.command(C.OP_SET, [(C.T_CP_ID, b"CP1")])))
    assert replay[0] == C.OK
    st, recs = c.send_raw(envelope)  # an old counter
    assert st == C.NOT_AUTHENTICATED and "replayed or reordered" in reason(recs)
    assert c.sess.closed and stored(kit) is None


def test_reordered_message_ends_the_session():
    kit = K.Kit()
    c = K.Client(kit)
    c.login()
    c.chan.ctr_out += 1  # skip one counter value
    st, recs = c.request(C.OP_GET_STATUS)
    assert st == C.NOT_AUTHENTICATED and c.sess.closed


def test_replayed_frames_of_the_last_message_are_ignored():
    kit = K.Kit()
    c = K.Client(kit)
    c.login()
    assert c.set((C.T_URL, URL))[0] == C.OK
    before = len(c.acks)
    for f in c.sent:  # the same frames again (a link that repeats)
        assert c.feed(f) == []
    assert all(a[0] == C.ACK for a in c.acks[before:])
    assert c.request(C.OP_GET_STATUS)[0] == C.OK  # the session goes on


def test_tampered_chunk_is_nacked_and_nothing_is_staged():
    kit = K.Kit()
    c = K.Client(kit)
    c.login()
    frames = c.frames_for(c.chan.seal(C.command(C.OP_SET, [(C.T_CP_ID, b"CP1")])))
    bad = bytearray(frames[2])
    bad[-1] ^= 0x40
    frames[2] = bytes(bad)
    for f in frames:
        assert c.feed(f) == []
    assert c.acks[-1] == (C.NACK, c.msg_id, 0, C.R_DIGEST)
    c.chan.ctr_out -= 1  # the device never saw that envelope: the same counter goes again
    st, recs = c.request(C.OP_GET_STATUS)
    assert st == C.OK and recs[C.T_STAGED] == b""


def test_oversized_fields_are_refused_by_field_and_nothing_is_staged():
    kit = K.Kit()
    c = K.Client(kit)
    c.login()
    cases = [
        (C.T_WIFI_SSID, b"s" * 33), (C.T_WIFI_SSID, b""), (C.T_WIFI_PASSWORD, b"short"),
        (C.T_WIFI_PASSWORD, b"p" * 64), (C.T_URL, b"ws://h/" + b"a" * 600),
        (C.T_URL, b"http://host/ocpp"), (C.T_URL, b"ws:///nohost"), (C.T_CP_ID, b"c" * 49),
        (C.T_CP_ID, b"CP 1"), (C.T_CP_ID, b"CP/1"), (C.T_PROFILE, b"\x04"),
        (C.T_PROFILE, b"\x01\x00"), (C.T_AUTH_KEY, b"k" * 65), (C.T_AUTH_KEY, b"short"),
        (C.T_AUTH_KEY, b"0123456789abcdef0123456789abcdef"), (C.T_AUTH_KEY, b"\xff\xfe" * 6),
        (C.T_DEVICE_ID, b"x"), (0x7F, b"x"),
    ]
    for tag, value in cases:
        st, recs = c.set((C.T_CP_ID, b"OK1"), (tag, value))
        assert st == C.BAD_FIELD, (tag, value, st)
        assert recs[C.T_FIELD] == bytes((tag,)) and reason(recs)
    st, recs = c.set((C.T_CP_ID, b"A"), (C.T_CP_ID, b"B"))
    assert st == C.BAD_FIELD and "twice" in reason(recs)
    st, recs = c.request(C.OP_GET_STATUS)
    assert recs[C.T_STAGED] == b""
    assert c.request(C.OP_COMMIT)[0] == C.INCONSISTENT and stored(kit) is None


def test_oversized_message_is_refused_before_it_is_buffered():
    kit = K.Kit()
    c = K.Client(kit)
    c.login()
    c.feed(C.begin(c.seq, 77, C.MAX_MESSAGE + 1))
    c.seq += 1
    assert c.acks[-1] == (C.NACK, 77, 0, C.R_TOO_BIG)
    big = C.T_CA, b"-----BEGIN CERTIFICATE-----\n" + b"A" * 3960
    st, recs = c.set(big)
    assert st == C.TOO_BIG and recs[C.T_FIELD] == bytes((C.T_CA,))


def test_certificates_that_do_not_parse_or_load_are_refused():
    kit = K.Kit()
    c = K.Client(kit)
    c.login()
    bad_b64 = K.CA_PEM.replace(b"MIIB", b"M!!B")
    not_a_cert = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    der_junk = b"\x30\x03\x01\x01\x00"
    for value in (b"hello", bad_b64, not_a_cert, der_junk, K.CA_PEM + K.CA_PEM):
        st, recs = c.set((C.T_CA, value))
        assert st == C.CERT_INVALID, (value[:20], st)
        assert recs[C.T_FIELD] == bytes((C.T_CA,)) and "CA certificate" in reason(recs)
    assert c.set((C.T_CLIENT_KEY, b"no key here"))[0] == C.CERT_INVALID
    assert kit.store.load_blob("ca") is None


def test_ca_pem_is_stored_as_der_and_profile_two_commits():
    kit = K.Kit()
    c = K.Client(kit, frame_size=C.MIN_FRAME)
    c.login()
    assert c.set((C.T_CA, K.CA_PEM))[0] == C.OK
    st, recs = c.set((C.T_URL, b"wss://localhost:9000/ocpp"), (C.T_CP_ID, b"CP2"),
                     (C.T_AUTH_KEY, bytes(range(20))))
    assert st == C.OK
    assert c.request(C.OP_COMMIT)[0] == C.OK
    der = kit.store.load_blob("ca")
    assert der[0] == 0x30 and len(der) < len(K.CA_PEM)
    rec = stored(kit)
    assert rec["profile"] == 2 and rec["password"] == bytes(range(20)).hex()  # the raw key


def test_inconsistent_sets_are_refused_at_commit():
    cases = [
        ([(C.T_URL, b"wss://localhost/ocpp"), (C.T_CP_ID, b"C1"), (C.T_AUTH_KEY, b"password1")],
         "CA"),
        ([(C.T_URL, URL), (C.T_CP_ID, b"C1"), (C.T_PROFILE, b"\x02")], "wss"),
        ([(C.T_URL, URL), (C.T_CP_ID, b"C1"), (C.T_PROFILE, b"\x01")], "AuthorizationKey"),
        ([(C.T_URL, URL), (C.T_CP_ID, b"C1"), (C.T_PROFILE, b"\x00"),
          (C.T_AUTH_KEY, b"password1")], "sends no"),
        ([(C.T_URL, URL), (C.T_CP_ID, b"C:1"), (C.T_AUTH_KEY, b"password1")], "Basic"),
        ([(C.T_URL, URL)], "both required"),
        ([(C.T_URL, URL), (C.T_CP_ID, b"C1"), (C.T_WIFI_PASSWORD, b"password1")], "SSID"),
        ([(C.T_URL, b"wss://localhost/ocpp"), (C.T_CP_ID, b"C1"), (C.T_CA, K.CA_PEM),
          (C.T_PROFILE, b"\x03")], "client certificate"),
    ]
    for recs, why in cases:
        kit = K.Kit()
        c = K.Client(kit)
        c.login()
        assert c.set(*recs)[0] == C.OK
        st, out = c.request(C.OP_COMMIT)
        assert st == C.INCONSISTENT and why in reason(out), (why, reason(out))
        assert stored(kit) is None and kit.store.load_blob("ca") is None


def test_profile_zero_drops_a_password_kept_from_before():
    kit = K.Kit()
    storage.commit(kit.store, {"url": URL.decode(), "cp_id": "C1", "password": "password1",
                               "profile": 1}, {})
    kit = kit.reboot()
    kit.board.open_window(60000)
    c = K.Client(kit)
    c.login()
    c.set((C.T_PROFILE, b"\x00"))
    assert c.request(C.OP_COMMIT)[0] == C.OK
    assert "password" not in stored(kit) and stored(kit)["profile"] == 0


def test_partial_message_times_out():
    kit = K.Kit()
    c = K.Client(kit)
    frames = c.frames_for(C.command(C.OP_HELLO, [(C.T_VERSION, b"\x01")]))
    c.feed(frames[0])
    c.feed(frames[1])
    kit.clock.advance(9999)
    assert c.sess.tick(kit.clock.now_ms()) == []
    kit.clock.advance(1)
    out = c.sess.tick(kit.clock.now_ms())
    assert C.parse(out[0])[0] == C.NACK and C.parse(out[0])[2][2] == C.R_TIMEOUT
    assert not c.sess.asm.partial


def test_identify_restart_and_factory_reset_commands():
    kit = K.Kit()
    c = K.Client(kit)
    c.login()
    assert c.request(C.OP_IDENTIFY)[0] == C.OK and kit.board.flashes == ["identify"]
    assert c.request(C.OP_CANCEL)[0] == C.OK
    assert c.request(0x55)[0] == C.UNKNOWN_OP
    assert c.request(C.OP_RESTART)[0] == C.OK and c.sess.action == "restart"
    c = K.Client(kit)
    c.login()
    assert c.request(C.OP_FACTORY_RESET)[0] == C.OK and c.sess.action == "factory_reset"


def test_commit_is_finished_at_boot_after_a_power_cut():
    kit = K.Kit()
    kit.store.save_blob("ca_new", b"\x30\x01\x00")
    kit.store.save(storage.PENDING, {"rec": {"url": "ws://h/o", "cp_id": "C9"}, "blobs": ["ca"]})
    storage.recover(kit.store)  # the power cut came after the commit point
    assert stored(kit)["cp_id"] == "C9" and kit.store.load_blob("ca") == b"\x30\x01\x00"
    assert kit.store.load(storage.PENDING) is None and kit.store.load_blob("ca_new") is None
    kit.store.save_blob("client_key_new", b"\x30\x00")  # before the commit point: discarded
    storage.recover(kit.store)
    assert kit.store.load_blob("client_key_new") is None
    assert kit.store.load_blob("client_key") is None and stored(kit)["cp_id"] == "C9"


def test_factory_reset_wipes_state_but_keeps_the_secret_and_the_lockout():
    kit = K.Kit()
    kit.provision()
    kit.store.save_blob("ca", b"\x30\x00")
    kit.store.save("config", {"HeartbeatInterval": 5})
    os.mkdir(kit.root + "/txq")
    kit.store.save("txq/00000001", {"action": "StartTransaction"})
    with open(kit.root + "/.sim-device-secret", "w") as f:
        f.write("00" * 16)
    kit.prov.lockout.fail(kit.clock.now_ms())
    storage.request_factory_reset(kit.store)
    storage.recover(kit.store)  # what the next boot does
    names = sorted(e[0] for e in os.ilistdir(kit.root))
    assert names == [".prov_lockout.json", ".sim-device-secret"], names
    assert kit.reboot().prov.lockout.fails == 1


def test_random_frames_never_raise():
    kit = K.Kit()
    random.seed(8)
    kinds = (C.BEGIN, C.DATA, C.ACK, C.NACK, C.ABORT, C.GET_INFO, C.INFO, 0, 0x99)
    for _ in range(60):
        sess = kit.session()
        for _ in range(40):
            n = random.getrandbits(5)
            body = bytes(random.getrandbits(8) for _ in range(n))
            frm = bytes((kinds[random.getrandbits(4) % len(kinds)], random.getrandbits(8))) + body
            out = sess.feed(frm, kit.clock.now_ms())
            assert isinstance(out, list)
            for f in out:
                C.parse(f)  # everything the device sends is a well-formed frame
            kit.clock.advance(random.getrandbits(12))
            sess.tick(kit.clock.now_ms())
    assert stored(kit) is None
