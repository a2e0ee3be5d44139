"""ocpp16.dispatch in the Unix port: registry, answers, the (text, after) convention."""
# mp-heapsize: 128K

import json

from ocpp16 import specs
from ocpp16.dispatch import Dispatcher
from ocpp16.errors import OCPPError


def _answer(out):
    text, after = out
    return json.loads(text), after


def _reset(ctx, payload):
    ctx.append(("reset", payload["type"]))
    return {"status": "Accepted"}, lambda: ctx.append("rebooting")


def _unlock(ctx, payload):
    if payload["connectorId"] > 1:
        raise OCPPError("PropertyConstraintViolation", "no such connector", {"max": 1})
    return {"status": "Unlocked"}


def _clear_cache(ctx, payload):
    raise KeyError("cache")


def _make(log=None):
    d = Dispatcher(on_exception=None if log is None else log.append)
    d.register(
        {
            "Reset": (specs.RESET_REQ, _reset),
            "UnlockConnector": (specs.UNLOCK_CONNECTOR_REQ, _unlock),
        }
    )
    d.register({"ClearCache": (specs.CLEAR_CACHE_REQ, _clear_cache)})
    return d


def test_handler_result_becomes_a_callresult():
    ctx = []
    msg, after = _answer(_make().handle(ctx, "u1", "UnlockConnector", {"connectorId": 1}))
    assert msg == [3, "u1", {"status": "Unlocked"}] and after is None


def test_after_callable_is_returned_not_run():
    ctx = []
    msg, after = _answer(_make().handle(ctx, "u2", "Reset", {"type": "Hard"}))
    assert msg == [3, "u2", {"status": "Accepted"}]
    assert ctx == [("reset", "Hard")]  # the answer goes out before the reboot
    after()
    assert ctx == [("reset", "Hard"), "rebooting"]


def test_unknown_action_is_not_implemented():
    for action in ("Frobnicate", "BootNotification", "GetLog", "SendLocalList"):
        msg, after = _answer(_make().handle([], "u3", action, {}))
        assert msg == [4, "u3", "NotImplemented", "action not implemented", {}] and after is None


def test_validation_errors_keep_their_code_and_the_handler_is_not_called():
    ctx = []
    d = _make()
    cases = (
        ({}, "OccurenceConstraintViolation", "type: required field missing"),
        ({"type": "Warm"}, "PropertyConstraintViolation", "type: value not allowed"),
        ({"type": 1}, "TypeConstraintViolation", "type: string expected"),
        ({"type": "Hard", "when": "now"}, "FormationViolation", "when: unknown field"),
    )
    for payload, code, desc in cases:
        msg, after = _answer(d.handle(ctx, "u4", "Reset", payload))
        assert msg == [4, "u4", code, desc, {}] and after is None
    assert ctx == []


def test_handler_ocpp_error_keeps_code_description_details():
    msg, _ = _answer(_make().handle([], "u5", "UnlockConnector", {"connectorId": 2}))
    assert msg == [4, "u5", "PropertyConstraintViolation", "no such connector", {"max": 1}]


def test_handler_2_0_1_code_goes_out_in_1_6_spelling():
    def h(ctx, p):
        raise OCPPError("FormatViolation", "x")

    d = Dispatcher()
    d.register({"ClearCache": (None, h)})
    assert _answer(d.handle(None, "u", "ClearCache", {}))[0][2] == "FormationViolation"


def test_handler_crash_is_internal_error_and_reported():
    log = []
    msg, after = _answer(_make(log).handle([], "u6", "ClearCache", {}))
    assert msg == [4, "u6", "InternalError", "ClearCache failed: KeyError", {}] and after is None
    assert len(log) == 1 and isinstance(log[0], KeyError)


def test_failing_on_exception_is_ignored():
    def bad_log(e):
        raise RuntimeError("logger down")

    d = Dispatcher(on_exception=bad_log)
    d.register({"ClearCache": (specs.CLEAR_CACHE_REQ, _clear_cache)})
    assert _answer(d.handle([], "u7", "ClearCache", {}))[0][2] == "InternalError"


def test_bad_handler_returns_are_internal_errors():
    bad = (
        lambda c, p: None,
        lambda c, p: [1],
        lambda c, p: ({"a": 1},),
        lambda c, p: ({"a": 1}, "not callable"),
        lambda c, p: ("x", lambda: None),
        lambda c, p: {"b": b"bytes"},  # JSON cannot hold it
        lambda c, p: {"limit": float("inf")},
    )
    for fn in bad:
        log = []
        d = Dispatcher(on_exception=log.append)
        d.register({"ClearCache": (None, fn)})
        msg, after = _answer(d.handle(None, "u8", "ClearCache", {}))
        assert msg[:3] == [4, "u8", "InternalError"] and after is None, msg
        assert len(log) == 1


def test_unencodable_error_details_become_internal_error():
    def h(ctx, p):
        raise OCPPError("GenericError", "d", {"x": b"raw"})

    d = Dispatcher()
    d.register({"ClearCache": (None, h)})
    assert _answer(d.handle(None, "u", "ClearCache", {}))[0][2] == "InternalError"


def test_spec_none_skips_validation():
    d = Dispatcher()
    d.register({"DataTransfer": (None, lambda c, p: {"status": "Accepted", "data": str(len(p))})})
    msg, _ = _answer(d.handle(None, "u", "DataTransfer", {"anything": [1, 2]}))
    assert msg == [3, "u", {"status": "Accepted", "data": "1"}]


def test_register_rejects_duplicates_and_malformed_entries():
    d = _make()
    for bad in (
        {"Reset": (specs.RESET_REQ, _reset)},
        {"X": _reset},
        {"X": (specs.RESET_REQ,)},
        {"X": (specs.RESET_REQ, "notcallable")},
    ):
        try:
            d.register(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
    assert d.handles("Reset") and not d.handles("X")


def test_run_after_reports_instead_of_raising():
    log = []
    d = Dispatcher(on_exception=log.append)

    def after():
        raise OSError(5)

    d.run_after(after)
    assert len(log) == 1 and isinstance(log[0], OSError)
