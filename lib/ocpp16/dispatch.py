"""Incoming OCPP CALLs -> handlers: the action registry and the CALLRESULT/CALLERROR it answers.

Feature-profile modules export `HANDLERS = {"Reset": (specs.RESET_REQ, reset), ...}`: action ->
(request spec or None, handler). `Dispatcher.register()` merges the maps of the enabled profiles,
so this module keeps no feature list (aioble's register_irq_handler shape).

A handler is a plain function `handler(ctx, payload) -> response`; `payload` has passed the
spec. The response is either
- a dict: the CALLRESULT payload, or
- a tuple `(dict, after)`: `after` is a zero-argument callable to run once the answer has gone
  out (Reset, a reboot after ChangeConfiguration, starting a firmware download).
It refuses by raising OCPPError(code, description).

`handle()` always returns `(text, after)`: the frame to send and the callable to run after
sending it (None when there is none, always None for a CALLERROR). Outcomes, OCPP-J 1.6 4.2.3:

| Case                                             | Answer                                  |
|--------------------------------------------------|-----------------------------------------|
| action has no registered handler                 | CALLERROR NotImplemented. OCPP-J:       |
| (unknown to 1.6, a charger -> CSMS action, or a  | "Requested Action is not known by       |
| 1.6 action of a profile we do not run)           | receiver"; peers (ocpp-rpc, OCTT) expect|
|                                                  | it for unsupported profiles too         |
| payload fails the spec                           | CALLERROR with the schema's code        |
| handler raises OCPPError                         | CALLERROR with its code (1.6 spelling)  |
| handler raises anything else, returns a bad      | CALLERROR InternalError "<action>       |
| response, or the response cannot be encoded     | failed: <ExcType>"; exception passed to |
|                                                  | on_exception(e), never raised           |
| handler returns a response                       | CALLRESULT                              |
"""

from ocpp16.errors import OCPPError, NOT_IMPLEMENTED, INTERNAL_ERROR, normalise_error_code
from ocpp16.rpc import encode_result, encode_error
from ocpp16.schema import validate


class Dispatcher:
    """Registry of incoming-action handlers; `handle()` turns one CALL into its answer frame.

    `on_exception(e)` (optional) is told about every exception that is not an OCPPError, for
    logging; an exception raised by on_exception itself is ignored.
    """

    def __init__(self, on_exception=None):
        self._handlers = {}  # action -> (spec or None, handler); bounded by the 1.6 action set
        self.on_exception = on_exception

    def register(self, handlers):
        """Merge a feature profile's HANDLERS map.

        Raises ValueError (our bug, at startup) for an entry that is not (spec, callable), or
        for an action already registered by another profile.
        """
        for action, entry in handlers.items():
            if type(entry) is not tuple or len(entry) != 2 or not callable(entry[1]):
                raise ValueError("HANDLERS[{}] must be (spec, handler)".format(action))
            if action in self._handlers:
                raise ValueError("{} registered twice".format(action))
            self._handlers[action] = entry

    def handles(self, action):
        """True when a handler is registered for action."""
        return action in self._handlers

    def handle(self, ctx, uid, action, payload):
        """Answer one decoded CALL: returns (text, after) as in the module docstring."""
        entry = self._handlers.get(action)
        if entry is None:
            return encode_error(uid, NOT_IMPLEMENTED, "action not implemented"), None
        spec, fn = entry
        after = None
        try:
            if spec is not None:
                validate(payload, spec)
            resp = fn(ctx, payload)
            if type(resp) is tuple:
                if len(resp) != 2 or not callable(resp[1]):
                    raise TypeError("bad (response, after) tuple")
                resp, after = resp
            if type(resp) is not dict:
                raise TypeError("response is not a dict")
            return encode_result(uid, resp), after
        except OCPPError as e:
            err = e
        except Exception as e:  # a handler bug must cost one CALLERROR, not the connection
            self._report(e)
            return self._internal(uid, action, e), None
        try:
            details = err.details if type(err.details) is dict else None
            text = encode_error(uid, normalise_error_code(err.code), err.description, details)
        except Exception as e:  # details a handler filled with something JSON cannot hold
            self._report(e)
            text = self._internal(uid, action, e)
        return text, None

    def _internal(self, uid, action, e):
        return encode_error(uid, INTERNAL_ERROR, "{} failed: {}".format(action, type(e).__name__))

    def run_after(self, after):
        """Call an `after` callable from handle(); exceptions go to on_exception, not up."""
        try:
            after()
        except Exception as e:  # the answer is already sent; nothing to tell the CSMS
            self._report(e)

    def _report(self, e):
        cb = self.on_exception
        if cb is not None:
            try:
                cb(e)
            except Exception:  # a failing logger must not turn into a crash here
                pass
