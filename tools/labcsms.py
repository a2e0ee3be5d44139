#!/usr/bin/env python3
"""Lab CSMS: an OCPP 1.6J central system that records and checks everything a charger sends.

The independent protocol peer for the integration tests and for bench work on a real board. It is
built on the PyPI `ocpp` package (2.1.0, JSON-schema validation on) and a `websockets` server, adds
what the package lacks (RFC 3339 checks of date-time fields, frame-level checks, a frame log,
HTTP Basic auth with binary keys per the security whitepaper) and is driven through a JSON-lines
control port. Every CALLERROR it sends to a charger, and every malformed frame or invalid answer
it receives, is a *violation*: tests assert there are none. Stored history is bounded per charge
point (MAX_MESSAGES, MAX_VIOLATIONS). See docs/ocpp16.md sections 1, 4 and 10.

    python tools/labcsms.py [serve] [--port N] [--control-port M] [--log FILE] ...
    python tools/labcsms.py call --control 127.0.0.1:M CP1 Reset '{"type":"Soft"}'
"""

import argparse
import asyncio
import atexit
import base64
import binascii
import collections
import copy
import hmac
import json
import logging
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote

import websockets
from jsonschema import Draft4Validator, FormatChecker
from jsonschema.validators import extend
from ocpp.charge_point import camel_to_snake_case
from ocpp.exceptions import OCPPError, PropertyConstraintViolationError
from ocpp.messages import CallResult, MessageType, get_validator, unpack, validate_payload
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result, datatypes
from rfc3339_validator import validate_rfc3339
from websockets.asyncio.server import serve

SUBPROTOCOL = "ocpp1.6"
MAX_MESSAGES = 10000  # received CALLs kept per charge point
MAX_VIOLATIONS = 10000  # violations kept per charge point
MAX_PENDING_IDS = 256  # ids of our CALLs (and of the charger's CALLs) remembered for matching
MAX_CONTROL_LINE = 16 * 1024 * 1024  # one control request; raw fuzz frames can be large
MAX_UNIQUE_ID = 36  # OCPP-J 1.6 section 4.1.3
MAX_TIMEOUT = 3600.0  # longest wait a control request may ask for, in s
HUMAN_LINE = 400  # stderr lines are cut here; the JSON log keeps everything
DEFAULT_CONTROL = "127.0.0.1:8181"

ERROR_CODES_16 = ("NotImplemented", "NotSupported", "InternalError", "ProtocolError",
                  "SecurityError", "FormationViolation", "PropertyConstraintViolation",
                  "OccurenceConstraintViolation", "TypeConstraintViolation", "GenericError")
AUTH_STATUSES = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")
BOOT_STATUSES = ("Accepted", "Pending", "Rejected")
DATA_TRANSFER_STATUSES = ("Accepted", "Rejected", "UnknownMessageId", "UnknownVendorId")
# Central-System-initiated 1.6 actions (core profiles + security whitepaper): what `call` may send.
CS_ACTIONS = frozenset((
    "CancelReservation", "CertificateSigned", "ChangeAvailability", "ChangeConfiguration",
    "ClearCache", "ClearChargingProfile", "DataTransfer", "DeleteCertificate",
    "ExtendedTriggerMessage", "GetCompositeSchedule", "GetConfiguration", "GetDiagnostics",
    "GetInstalledCertificateIds", "GetLocalListVersion", "GetLog", "InstallCertificate",
    "RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow", "Reset", "SendLocalList",
    "SetChargingProfile", "SignedUpdateFirmware", "TriggerMessage", "UnlockConnector",
    "UpdateFirmware"))

# The package validates the schema but ignores "format". This checker knows only date-time and
# uses rfc3339-validator as is (jsonschema's own checker upper-cases the text first).
_DATE_TIME = FormatChecker(formats=())
_DATE_TIME.checks("date-time")(lambda v: not isinstance(v, str) or validate_rfc3339(v))
# The package may have cached a schema parsed with Decimal (its multipleOf workaround); float
# payloads would then make multipleOf raise. The format pass runs after schema validation
# passed, so it ignores multipleOf.
_FormatValidator = extend(Draft4Validator, {"multipleOf": lambda *args: None})
_format_validators = {}


def date_time_problem(message_type_id, action, payload):
    """Return a description of the first date-time field that is not RFC 3339, or None."""
    key = (message_type_id, action)
    validator = _format_validators.get(key)
    if validator is None:
        schema = get_validator(message_type_id, action, "1.6").schema
        validator = _format_validators[key] = _FormatValidator(schema, format_checker=_DATE_TIME)
    for err in validator.iter_errors(payload):
        if err.validator == "format":
            where = "/".join(str(p) for p in err.absolute_path)
            return "{} = {!r} is not an RFC 3339 date-time".format(where, err.instance)
    return None


def utc_now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_frame(text):
    """The JSON value of a frame, or None when it is not JSON (or nested beyond CPython's
    recursion limit: a fuzzed frame must not take the server down)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def cp_id_from_path(path):
    """The charge point id: last non-empty path segment, percent-decoded ('' if none)."""
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    return unquote(segments[-1]) if segments else ""


class CommandError(Exception):
    """A control request that cannot be served; answered with ok:false."""


class Config:
    """What the CSMS answers; changed by command-line options and the `configure` command."""

    def __init__(self):
        self.boot_status = "Accepted"
        self.boot_interval = 10  # BootNotification interval when Pending/Rejected (retry)
        self.heartbeat_interval = 300  # BootNotification interval when Accepted
        self.id_tags = {}  # tag -> {"status": .., "parentIdTag": .., "expiryDate": ..}
        self.default_id_tag_status = "Accepted"
        self.data_transfer_status = "UnknownVendorId"
        self.auth = {}  # cp id -> password bytes
        self.require_auth = False

    def update(self, opts):
        """Check every option first, then apply them all; raise CommandError on any bad one."""
        changes = {}
        for key, value in opts.items():
            if key in ("boot_status", "default_id_tag_status", "data_transfer_status"):
                allowed = {"boot_status": BOOT_STATUSES,
                           "data_transfer_status": DATA_TRANSFER_STATUSES}.get(key, AUTH_STATUSES)
                if value not in allowed:
                    raise CommandError("{} must be one of {}".format(key, ", ".join(allowed)))
                changes[key] = value
            elif key in ("boot_interval", "heartbeat_interval"):
                if type(value) is not int or value < 0:
                    raise CommandError("{} must be an integer >= 0".format(key))
                changes[key] = value
            elif key == "require_auth":
                if not isinstance(value, bool):
                    raise CommandError("require_auth must be true or false")
                changes[key] = value
            elif key == "id_tags":
                changes[key] = self._merged_tags(value)
            elif key in ("auth", "auth_hex"):
                changes["auth"] = self._merged_auth(value, key == "auth_hex",
                                                    changes.get("auth", self.auth))
            else:
                raise CommandError("unknown configure option {!r}".format(key))
        for key, value in changes.items():
            setattr(self, key, value)

    def _merged_tags(self, tags):
        if not isinstance(tags, dict):
            raise CommandError("id_tags must be an object tag -> status or {status, ...}")
        merged = dict(self.id_tags)
        for tag, entry in tags.items():
            if entry is None:  # null removes the tag
                merged.pop(tag, None)
                continue
            if isinstance(entry, str):
                entry = {"status": entry}
            if not isinstance(entry, dict) or entry.get("status") not in AUTH_STATUSES:
                raise CommandError("id_tags[{!r}].status must be one of {}".format(
                    tag, ", ".join(AUTH_STATUSES)))
            if set(entry) - {"status", "parentIdTag", "expiryDate"}:
                raise CommandError("id_tags[{!r}]: status, parentIdTag, expiryDate".format(tag))
            parent = entry.get("parentIdTag")
            if parent is not None and (not isinstance(parent, str) or len(parent) > 20):
                raise CommandError("parentIdTag must be a string of at most 20 characters")
            expiry = entry.get("expiryDate")
            if expiry is not None and not (isinstance(expiry, str) and validate_rfc3339(expiry)):
                raise CommandError("expiryDate must be an RFC 3339 date-time")
            merged[tag] = dict(entry)
        return merged

    @staticmethod
    def _merged_auth(entries, is_hex, current):
        if not isinstance(entries, dict):
            raise CommandError("auth/auth_hex must be an object cp -> password (null removes)")
        merged = dict(current)
        for cpid, secret in entries.items():
            if secret is None:
                merged.pop(cpid, None)
            elif not isinstance(secret, str):
                raise CommandError("password for {!r} must be a string".format(cpid))
            elif is_hex:
                try:
                    merged[cpid] = bytes.fromhex(secret)
                except ValueError:
                    raise CommandError("auth_hex for {!r} is not hex".format(cpid)) from None
            else:
                merged[cpid] = secret.encode("utf-8")
        return merged

    def id_tag_info(self, tag):
        entry = self.id_tags.get(tag, {"status": self.default_id_tag_status})
        return datatypes.IdTagInfo(status=entry["status"], parent_id_tag=entry.get("parentIdTag"),
                                   expiry_date=entry.get("expiryDate"))


class CPState:
    """Everything known about one charge point id; outlives its connections (reboots)."""

    def __init__(self, cpid):
        self.id = cpid
        self.ws = self.conn = self.cp = None  # set while connected
        self.connected = asyncio.Event()
        self.messages = collections.deque(maxlen=MAX_MESSAGES)
        self.violations = collections.deque(maxlen=MAX_VIOLATIONS)
        self.sent_calls = collections.OrderedDict()  # our CALL id -> action, until answered
        self.their_calls = collections.OrderedDict()  # charger CALL id -> action
        self.replies = collections.OrderedDict()  # id -> (reply frame, problem), for `call`
        self.waiters = {}  # id -> future, for `raw` with wait_id


def remember(od, key, value):
    """od[key] = value, forgetting the oldest entries beyond MAX_PENDING_IDS."""
    od[key] = value
    while len(od) > MAX_PENDING_IDS:
        od.popitem(last=False)


class RecordingConnection:
    """The `_connection` the ocpp ChargePoint uses: logs and checks every frame both ways."""

    def __init__(self, ws, state, csms):
        self.ws, self.state, self.csms = ws, state, csms

    async def recv(self):
        while True:
            data = await self.ws.recv()
            if isinstance(data, bytes):  # OCPP-J is text only; the package must not see it
                self.csms.frame(self.state, "in", None, None, hex=data.hex())
                self.csms.violation(self.state, "binary_frame", "binary frame (OCPP-J uses text)")
                continue
            msg = parse_frame(data)
            self.csms.frame(self.state, "in", msg, data)
            if await self.csms.inspect_incoming(self.state, msg, data):
                return data

    async def send(self, text):
        """Frames from the package: our answers and our CALLs."""
        msg = parse_frame(text)
        self.csms.frame(self.state, "out", msg, text)
        if isinstance(msg, list) and msg and msg[0] == MessageType.CallError:
            action = self.state.their_calls.get(msg[1], "?") if isinstance(msg[1], str) else "?"
            self.csms.violation(self.state, "callerror_sent", "{} answered with {}: {} {}".format(
                action, msg[2], msg[3], json.dumps(msg[4], default=str)), action=action, frame=msg)
        self._note_call(msg)
        await self.ws.send(text)

    async def send_raw(self, data, text=True):
        """Frames from `raw`: unchecked, but a CALL among them still expects its answer."""
        if isinstance(data, str):
            msg = parse_frame(data)
            self.csms.frame(self.state, "out", msg, data)
            self._note_call(msg)
        else:
            self.csms.frame(self.state, "out", None, None, hex=data.hex(), text=text)
        await self.ws.send(data, text=text)

    def _note_call(self, msg):
        # Registered before sending: the answer may be read before send() returns.
        if (isinstance(msg, list) and len(msg) == 4 and msg[0] == MessageType.Call
                and isinstance(msg[1], str) and isinstance(msg[2], str)):
            remember(self.state.sent_calls, msg[1], msg[2])


class LabChargePoint(ChargePoint):
    """One connected charger: answers its CALLs from the Config; schema validation on."""

    def __init__(self, cpid, connection, csms):
        # `call` enforces its own timeout (and notices a closed connection); never the package.
        super().__init__(cpid, connection, response_timeout=MAX_TIMEOUT,
                         logger=logging.getLogger("labcsms.ocpp"))
        self.csms = csms

    async def route_message(self, raw_msg):
        try:
            msg = unpack(raw_msg)
        except OCPPError:
            return  # recorded as a violation already; the package would only log it
        if msg.message_type_id == MessageType.Call and msg.action in self.route_map:
            # Schema first so a schema error keeps the package's code, then the date-time format.
            try:
                await validate_payload(msg, self._ocpp_version)
                problem = date_time_problem(MessageType.Call, msg.action, msg.payload)
                if problem:
                    raise PropertyConstraintViolationError(details={"cause": problem})
            except OCPPError as exc:
                await self._connection.send(msg.create_call_error(exc).to_json())
                return
        await super().route_message(raw_msg)

    @property
    def config(self):
        return self.csms.config

    @on("BootNotification")
    def on_boot_notification(self, **_):
        c = self.config
        interval = c.heartbeat_interval if c.boot_status == "Accepted" else c.boot_interval
        return call_result.BootNotification(current_time=utc_now(), interval=interval,
                                            status=c.boot_status)

    @on("Heartbeat")
    def on_heartbeat(self, **_):
        return call_result.Heartbeat(current_time=utc_now())

    @on("Authorize")
    def on_authorize(self, id_tag, **_):
        return call_result.Authorize(id_tag_info=self.config.id_tag_info(id_tag))

    @on("StartTransaction")
    def on_start_transaction(self, id_tag, **_):
        return call_result.StartTransaction(transaction_id=self.csms.next_transaction_id(),
                                            id_tag_info=self.config.id_tag_info(id_tag))

    @on("StopTransaction")
    def on_stop_transaction(self, id_tag=None, **_):
        info = self.config.id_tag_info(id_tag) if id_tag is not None else None
        return call_result.StopTransaction(id_tag_info=info)

    @on("DataTransfer")
    def on_data_transfer(self, **_):
        return call_result.DataTransfer(status=self.config.data_transfer_status)

    @on("SignCertificate")
    def on_sign_certificate(self, **_):
        return call_result.SignCertificate(status="Accepted")


def _acknowledge(action):
    """Handler answering `action` with an empty CALLRESULT (its schema has no fields)."""

    def handler(self, **_):
        return getattr(call_result, action)()

    handler.__name__ = "on_" + action  # @on registers handlers by function name
    return on(action)(handler)


for _action in ("StatusNotification", "MeterValues", "DiagnosticsStatusNotification",
                "FirmwareStatusNotification", "SecurityEventNotification",
                "LogStatusNotification", "SignedFirmwareStatusNotification"):
    setattr(LabChargePoint, "on_" + _action, _acknowledge(_action))


def _arg(req, name, kind, default=CommandError):
    """Argument `name` of a control request, type-checked; bool never counts as a number."""
    value = req.get(name, default)
    if value is CommandError:
        raise CommandError("missing argument {!r}".format(name))
    if value is default:
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 < value <= MAX_TIMEOUT:
            raise CommandError("{!r} must be seconds in (0, {}]".format(name, MAX_TIMEOUT))
        return float(value)
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise CommandError("argument {!r} has the wrong type".format(name))
    return value


async def _await_answer(ws, awaitable, timeout, what):
    """Await `awaitable` unless the connection closes or `timeout` passes first."""
    task = asyncio.ensure_future(awaitable)
    closed = asyncio.ensure_future(ws.wait_closed())
    try:
        done, _ = await asyncio.wait({task, closed}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        closed.cancel()
    if task in done:
        return task.result()
    task.cancel()
    if closed in done:
        raise CommandError("connection closed while waiting for the answer to " + what)
    raise CommandError("no answer to {} within {} s".format(what, timeout))


def _set_at_stdin_eof(loop, event):
    """Thread body: read stdin to its end, then set `event` in `loop`."""
    while os.read(0, 4096):  # the raw fd: a buffered read would block interpreter shutdown
        pass
    loop.call_soon_threadsafe(event.set)


class LabCSMS:
    """The server: websocket endpoint, charge point registry and control port."""

    COMMANDS = ("call", "raw", "raw_bytes", "configure", "connected", "wait_connected",
                "messages", "violations", "clear", "disconnect", "shutdown")

    def __init__(self, args):
        self.args = args
        self.config = Config()
        self.cps = {}
        self._next_tx = 1
        self._tasks = set()
        self._log = open(args.log, "a", encoding="utf-8", buffering=1) if args.log else None
        self.stop_event = None

    # -- recording ---------------------------------------------------------------------------

    def record(self, entry, human=None):
        entry = dict({"t": time.time()}, **entry)
        if self._log:
            try:
                line = json.dumps(entry, default=str)
            except RecursionError:  # a fuzzed frame nested deeper than the encoder goes:
                line = json.dumps(dict(entry, msg=None), default=str)  # its raw text is kept
            self._log.write(line + "\n")
        if human:
            stamp = time.strftime("%H:%M:%S", time.localtime(entry["t"]))
            print("{} {}".format(stamp, human)[:HUMAN_LINE], file=sys.stderr, flush=True)

    def frame(self, state, direction, msg, raw, **extra):
        human = None if self.args.quiet else "{} {} {}".format(
            state.id, "<-" if direction == "in" else "->",
            raw if raw is not None else "(bytes) " + extra["hex"])
        entry = {"cp": state.id, "dir": direction, "msg": msg, "raw": raw}
        self.record(dict(entry, **extra), human)

    def event(self, cpid, name, **extra):
        details = " ".join("{}={}".format(k, v) for k, v in extra.items())
        self.record(dict({"cp": cpid, "event": name}, **extra),
                    "{} {} {}".format(cpid, name, details))

    def violation(self, state, kind, detail, **extra):
        entry = dict({"t": time.time(), "cp": state.id, "kind": kind, "detail": detail}, **extra)
        state.violations.append(entry)
        self.record(dict({"event": "violation"}, **entry), "{} VIOLATION {}: {}".format(
            state.id, kind, detail))

    def state(self, cpid):
        if cpid not in self.cps:
            self.cps[cpid] = CPState(cpid)
        return self.cps[cpid]

    def next_transaction_id(self):
        tx, self._next_tx = self._next_tx, self._next_tx + 1
        return tx

    async def inspect_incoming(self, state, msg, raw):
        """Frame-level checks the package does not make (it drops bad frames silently).

        Returns False for a frame the package must not see (it would crash on it)."""
        lengths = {MessageType.Call: 4, MessageType.CallResult: 3, MessageType.CallError: 5}
        if not isinstance(msg, list) or not msg or type(msg[0]) is not int \
                or len(msg) != lengths.get(msg[0]):
            self.violation(state, "bad_frame", "not an OCPP-J CALL/CALLRESULT/CALLERROR array",
                           raw=raw)
            return True  # the package cannot unpack it and ignores it
        uid = msg[1]
        if not isinstance(uid, str) or len(uid) > MAX_UNIQUE_ID:
            self.violation(state, "bad_frame", "uniqueId must be a string of at most 36 chars",
                           raw=raw)
        if msg[0] == MessageType.Call:
            if not isinstance(msg[2], str):
                self.violation(state, "bad_frame", "Action must be a string", raw=raw)
                return False
            if isinstance(uid, str):
                remember(state.their_calls, uid, msg[2])
            state.messages.append({"t": time.time(), "cp": state.id, "id": uid,
                                   "action": msg[2], "payload": msg[3]})
            return True
        if not isinstance(uid, str):
            return True
        action = state.sent_calls.pop(uid, None)
        problem = None
        if msg[0] == MessageType.CallResult:
            if action is None:
                self.violation(state, "unknown_reply", "CALLRESULT for no CALL of ours", frame=msg)
            elif action in CS_ACTIONS:
                problem = await self._result_problem(action, msg[2])
                if problem:
                    self.violation(state, "bad_result", "{} result: {}".format(action, problem),
                                   action=action, frame=msg)
        elif msg[2] not in ERROR_CODES_16 or not isinstance(msg[3], str) \
                or not isinstance(msg[4], dict):
            # An unknown id is fine here: it may answer a raw frame we broke on purpose.
            self.violation(state, "bad_callerror", "CALLERROR needs a 1.6 errorCode, a string "
                           "description and an object of details", action=action, frame=msg)
        remember(state.replies, uid, (msg, problem))
        waiter = state.waiters.pop(uid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(msg)
        return True

    @staticmethod
    async def _result_problem(action, payload):
        try:
            # validate_payload may rewrite the payload (Decimal parsing): give it a copy.
            await validate_payload(CallResult("-", copy.deepcopy(payload), action), "1.6")
        except OCPPError as exc:
            return "{} {}".format(exc.code, exc.details.get("cause", exc.description))
        return date_time_problem(MessageType.CallResult, action, payload)

    # -- websocket side --------------------------------------------------------------------

    def process_request(self, connection, request):
        """Refuse before the upgrade: no charge point id, no ocpp1.6 offered, bad Basic auth."""
        cpid = cp_id_from_path(request.path)
        if not cpid:
            self.event("", "rejected", path=request.path, reason="no charge point id in path")
            return connection.respond(404, "No charge point id in the path.\n")
        if not self.args.no_subprotocol:
            offered = [p.strip() for h in request.headers.get_all("Sec-WebSocket-Protocol")
                       for p in h.split(",")]
            if SUBPROTOCOL not in offered:
                self.event(cpid, "rejected", reason="ocpp1.6 not offered", offered=offered)
                return connection.respond(400, "Subprotocol ocpp1.6 required.\n")
        expected = self.config.auth.get(cpid)
        if expected is None and not self.config.require_auth:
            return None
        reason = self._auth_problem(cpid, expected, request.headers.get("Authorization"))
        if reason is None:
            return None
        self.event(cpid, "auth_failed", reason=reason)
        response = connection.respond(401, "Unauthorized.\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="labcsms", charset="UTF-8"'
        return response

    @staticmethod
    def _auth_problem(cpid, expected, header):
        if expected is None:
            return "no password configured for this charge point (--require-auth)"
        if header is None:
            return "no Authorization header"
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return "Authorization is not Basic"
        try:
            got = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return "Authorization is not base64"
        # Compare bytes: a binary AuthorizationKey is sent raw, not as text (whitepaper).
        if hmac.compare_digest(got, cpid.encode("utf-8") + b":" + expected):
            return None
        user, _, password = got.partition(b":")
        if user != cpid.encode("utf-8"):
            return "user is not the charge point id"
        if password == expected.hex().encode() or password == expected.hex().upper().encode():
            return "password is the hex text of the key; the raw key bytes are expected"
        return "wrong password"

    async def handle_ws(self, ws):
        state = self.state(cp_id_from_path(ws.request.path))
        if state.ws is not None:  # the charger reconnected before we noticed the old link died
            self.event(state.id, "replaced")
            closing = asyncio.ensure_future(state.ws.close(1000, "replaced by a new connection"))
            self._tasks.add(closing)  # the loop keeps only weak references to tasks
            closing.add_done_callback(self._tasks.discard)
        conn = RecordingConnection(ws, state, self)
        state.ws, state.conn, state.cp = ws, conn, LabChargePoint(state.id, conn, self)
        state.connected.set()
        self.event(state.id, "connect", path=ws.request.path, subprotocol=ws.subprotocol,
                   remote="{}:{}".format(*ws.remote_address[:2]),
                   tls=self.args.tls_cert is not None, auth=state.id in self.config.auth)
        try:
            await state.cp.start()
        except websockets.ConnectionClosed:
            pass
        except Exception:  # a bug here must not take the server down; the link goes instead
            traceback.print_exc()
            await ws.close(1011, "lab CSMS internal error")
        finally:
            if state.ws is ws:
                state.ws = state.conn = state.cp = None
                state.connected.clear()
            self.event(state.id, "disconnect", code=ws.close_code, reason=ws.close_reason)

    # -- control side ----------------------------------------------------------------------

    async def handle_control(self, reader, writer):
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(b'{"ok": false, "error": "request line too long"}\n')
                    break
                if not line:
                    break
                response = await self.dispatch(line)
                shutdown = response.pop("_shutdown", False)
                writer.write(json.dumps(response, default=str).encode() + b"\n")
                await writer.drain()
                if shutdown:
                    self.stop_event.set()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def dispatch(self, line):
        try:
            req = json.loads(line)
        except ValueError as exc:
            return {"ok": False, "error": "request is not JSON: {}".format(exc)}
        try:
            if not isinstance(req, dict) or req.get("cmd") not in self.COMMANDS:
                raise CommandError("unknown command; expected one of " + ", ".join(self.COMMANDS))
            return dict({"ok": True}, **await getattr(self, "cmd_" + req["cmd"])(req))
        except CommandError as exc:
            return {"ok": False, "error": str(exc)}
        except websockets.ConnectionClosed as exc:
            return {"ok": False, "error": "connection closed: {}".format(exc)}
        except Exception as exc:  # never let a control request kill the server
            traceback.print_exc()
            return {"ok": False, "error": "internal error: {!r}".format(exc)}

    def _live(self, req):
        cpid = _arg(req, "cp", str)
        state = self.cps.get(cpid)
        if state is None or state.ws is None:
            raise CommandError("charge point {!r} is not connected".format(cpid))
        return state

    async def cmd_call(self, req):
        state = self._live(req)
        action = _arg(req, "action", str)
        payload = _arg(req, "payload", dict, {})
        timeout = _arg(req, "timeout", float, 30.0)
        if action not in CS_ACTIONS:
            raise CommandError("{!r} is not a Central System initiated 1.6 action".format(action))
        # The package builds the CALL from a dataclass with snake_case fields: rename the
        # top-level keys only; nested objects pass through unchanged.
        kwargs = {next(iter(camel_to_snake_case({k: 0}))): v for k, v in payload.items()}
        try:
            request = getattr(call, action)(**kwargs)
        except TypeError as exc:
            raise CommandError("payload does not fit {}: {}".format(action, exc)) from None
        uid = str(uuid.uuid4())
        try:
            await _await_answer(state.ws, state.cp.call(request, suppress=False, unique_id=uid),
                                timeout, action)
            refusal = None
        except CommandError:
            raise
        except Exception as exc:  # OCPPError: invalid request or result, or the CALLERROR raised
            refusal = exc
        reply, problem = state.replies.pop(uid, (None, None))
        if reply is None:
            raise CommandError("{} request not sent, invalid: {}".format(action, refusal))
        if reply[0] == MessageType.CallError:
            return {"call_error": {"code": reply[2], "description": reply[3], "details": reply[4]}}
        # `problem` (ours) covers the schema as the package checks it and also date-time formats.
        return {"result": reply[2], "violation": problem} if problem else {"result": reply[2]}

    async def _send_raw(self, req, data, text):
        state = self._live(req)
        wait_id = _arg(req, "wait_id", str, None)
        timeout = _arg(req, "timeout", float, 5.0)
        waiter = None
        if wait_id is not None:
            waiter = state.waiters[wait_id] = asyncio.get_running_loop().create_future()
        try:
            await state.conn.send_raw(data, text)
            if waiter is None:
                return {}
            return {"reply": await _await_answer(state.ws, waiter, timeout, "id " + wait_id)}
        finally:
            if waiter is not None and state.waiters.get(wait_id) is waiter:
                del state.waiters[wait_id]

    async def cmd_raw(self, req):
        return await self._send_raw(req, _arg(req, "text", str), True)

    async def cmd_raw_bytes(self, req):
        try:
            data = bytes.fromhex(_arg(req, "hex", str))
        except ValueError:
            raise CommandError("'hex' is not hex") from None
        # binary:false sends the bytes as a *text* frame, e.g. to test invalid UTF-8 handling.
        return await self._send_raw(req, data, not _arg(req, "binary", bool, True))

    async def cmd_configure(self, req):
        self.config.update({k: v for k, v in req.items() if k != "cmd"})
        return {}

    async def cmd_connected(self, req):
        return {"cps": sorted(cpid for cpid, st in self.cps.items() if st.ws is not None)}

    async def cmd_wait_connected(self, req):
        state = self.state(_arg(req, "cp", str))
        timeout = _arg(req, "timeout", float, 10.0)
        try:
            await asyncio.wait_for(state.connected.wait(), timeout)
        except asyncio.TimeoutError:
            raise CommandError("{} not connected within {} s".format(state.id, timeout)) from None
        return {}

    def _selected(self, req):
        cpid = _arg(req, "cp", str, None)
        return [self.cps[cpid]] if cpid in self.cps else [] if cpid else list(self.cps.values())

    async def cmd_messages(self, req):
        action = _arg(req, "action", str, None)
        since = _arg(req, "since", (int, float), 0)
        found = [m for st in self._selected(req) for m in st.messages
                 if (action is None or m["action"] == action) and m["t"] >= since]
        return {"messages": sorted(found, key=lambda m: m["t"])}

    async def cmd_violations(self, req):
        found = [v for st in self._selected(req) for v in st.violations]
        return {"violations": sorted(found, key=lambda v: v["t"])}

    async def cmd_clear(self, req):
        for st in self._selected(req):
            st.messages.clear()
            st.violations.clear()
        return {}

    async def cmd_disconnect(self, req):
        state = self._live(req)
        code = _arg(req, "code", int, 1000)
        if not (code == 1000 or 3000 <= code <= 4999 or 1001 <= code <= 1014 and code not in
                (1004, 1005, 1006)):
            raise CommandError("close code {} cannot be sent".format(code))
        await state.ws.close(code, _arg(req, "reason", str, ""))
        return {}

    async def cmd_shutdown(self, req):
        return {"_shutdown": True}

    # -- main --------------------------------------------------------------------------------

    async def run(self):
        args = self.args
        self.stop_event = asyncio.Event()
        ctx = None
        if args.tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # whitepaper: TLS 1.2 or later
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
            if args.tls_client_ca:  # security profile 3: the charger proves itself by certificate
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(args.tls_client_ca)
        server = await serve(
            self.handle_ws, args.host, args.port, ssl=ctx,
            subprotocols=None if args.no_subprotocol else [SUBPROTOCOL],
            process_request=self.process_request, ping_interval=args.ping_interval or None,
            ping_timeout=args.ping_timeout or None)
        control = await asyncio.start_server(self.handle_control, "127.0.0.1", args.control_port,
                                             limit=MAX_CONTROL_LINE)
        ws_port = server.sockets[0].getsockname()[1]
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        if ":" in host:
            host = "[{}]".format(host)
        base = args.base_path.strip("/")
        url = "{}://{}:{}{}".format("wss" if ctx else "ws", host, ws_port,
                                    "/" + base if base else "")
        control_port = control.sockets[0].getsockname()[1]
        ready = {"ws_port": ws_port, "control_port": control_port, "url": url}
        print("LABCSMS READY " + json.dumps(ready), flush=True)
        print("lab CSMS at {}/<ChargePointId>, control on 127.0.0.1:{}".format(
            url, control_port), file=sys.stderr, flush=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        if args.stop_on_stdin_eof:
            # The parent holds our stdin: if it dies, even by SIGKILL or os._exit (pytest-timeout)
            # without running atexit, the pipe reaches EOF and we go too.
            threading.Thread(target=_set_at_stdin_eof, args=(loop, self.stop_event),
                             daemon=True).start()
        await self.stop_event.wait()
        control.close()
        server.close()
        try:
            await asyncio.wait_for(server.wait_closed(), 5)
        except asyncio.TimeoutError:
            pass
        if self._log:
            self._log, log = None, self._log
            log.close()


# -- clients ------------------------------------------------------------------------------------


class LabCSMSError(Exception):
    """The lab CSMS answered ok:false, did not start, or did not answer."""


def control_request(host, port, req, timeout=None):
    """Send one control request, return the parsed answer (a dict with "ok")."""
    if timeout is None:
        wait = req.get("timeout", 10) if isinstance(req, dict) else 10
        timeout = (wait if isinstance(wait, (int, float)) else 10) + 10
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(json.dumps(req).encode() + b"\n")
        line = sock.makefile("rb").readline()
    if not line:
        raise LabCSMSError("control port closed without an answer")
    return json.loads(line)


class LabCSMSProcess:
    """Runs `labcsms.py serve` as a child in its own process group, for tests and scripts.

    `options` are `serve` options by their Python names: tls_cert=PATH, no_subprotocol=True,
    boot_status="Pending", auth={"CP1": "pw"}, auth_hex={"CP2": b"raw key" or "hex"}, ...
    Use as a context manager or call start()/stop(); stop() is also registered with atexit, so an
    aborted test run leaves no server behind. The helpers raise LabCSMSError on ok:false.
    """

    def __init__(self, log_path=None, *, ready_timeout=20.0, stderr=None, **options):
        self.log_path = Path(log_path) if log_path else None
        args = ["--port", "0", "--control-port", "0"]
        if self.log_path:
            args += ["--log", str(self.log_path)]
        for name, value in options.items():
            flag = "--" + name.replace("_", "-")
            if isinstance(value, dict):  # auth / auth_hex: one CP=SECRET option per entry
                args += [a for cpid, secret in value.items() for a in (flag, "{}={}".format(
                    cpid, secret.hex() if isinstance(secret, bytes) else secret))]
            elif value is True:
                args.append(flag)
            elif value not in (None, False):
                args += [flag, str(value)]
        try:  # a typo should fail here, not as a server that never gets READY
            build_parser().parse_args(["serve"] + args)
        except SystemExit:
            raise ValueError("bad LabCSMSProcess options: {}".format(options)) from None
        self.argv = [sys.executable, str(Path(__file__).resolve()), "serve",
                     "--stop-on-stdin-eof"] + args
        self.ready_timeout = ready_timeout
        self.stderr = stderr
        self.proc = None
        self.url = self.ws_port = self.control_port = None

    def start(self):
        if self.proc is not None:
            return self
        atexit.register(self.stop)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, start_new_session=True)
        try:
            ready = json.loads(self._ready_line()[len("LABCSMS READY "):])
        except BaseException:
            self.stop()
            raise
        self.url, self.ws_port = ready["url"], ready["ws_port"]
        self.control_port = ready["control_port"]
        return self

    def _ready_line(self):
        deadline = time.monotonic() + self.ready_timeout
        fd, buf = self.proc.stdout.fileno(), b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabCSMSError("no READY line within {} s".format(self.ready_timeout))
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise LabCSMSError("labcsms exited ({}) before READY".format(
                        self.proc.wait(5)))
                buf += chunk
        line = buf.split(b"\n", 1)[0].decode("utf-8", "replace")
        if not line.startswith("LABCSMS READY "):
            raise LabCSMSError("unexpected first line: " + line)
        return line

    def stop(self):
        """Stop the server: SIGTERM, then SIGKILL to the whole group. Safe to call twice."""
        atexit.unregister(self.stop)
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                pass
        proc.stdin.close()
        proc.stdout.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def request(self, req, timeout=None):
        return control_request("127.0.0.1", self.control_port, req, timeout)

    def _ok(self, req):
        response = self.request(req)
        if not response.get("ok"):
            raise LabCSMSError("{}: {}".format(req.get("cmd"), response.get("error")))
        return response

    def call(self, cp, action, payload=None, timeout=30):
        """{"ok": true, "result": {...}} (+ "violation") or {"ok": true, "call_error": {...}}."""
        return self._ok({"cmd": "call", "cp": cp, "action": action, "payload": payload or {},
                         "timeout": timeout})

    def raw(self, cp, text, wait_id=None, timeout=5):
        """Send `text` as one text frame; the reply frame with `wait_id`, else None."""
        return self._ok({"cmd": "raw", "cp": cp, "text": text, "wait_id": wait_id,
                         "timeout": timeout}).get("reply")

    def configure(self, **options):
        self._ok(dict({"cmd": "configure"}, **options))

    def connected(self):
        return self._ok({"cmd": "connected"})["cps"]

    def wait_connected(self, cp, timeout=10):
        self._ok({"cmd": "wait_connected", "cp": cp, "timeout": timeout})

    def messages(self, cp=None, action=None, since=0):
        req = {"cmd": "messages", "cp": cp, "action": action, "since": since}
        return self._ok(req)["messages"]

    def violations(self, cp=None):
        return self._ok({"cmd": "violations", "cp": cp})["violations"]

    def assert_no_violations(self, cp=None):
        found = self.violations(cp)
        assert not found, "charger protocol violations:\n" + "\n".join(
            "{cp} {kind}: {detail}".format(**v) for v in found)

    def clear(self, cp=None):
        self._ok({"cmd": "clear", "cp": cp})

    def disconnect(self, cp, code=1000, reason=""):
        self._ok({"cmd": "disconnect", "cp": cp, "code": code, "reason": reason})

    def wait_for(self, what, timeout=10.0, cp=None, since=0, poll=0.05):
        """First received CALL matching `what` (an action name or a predicate on the message)."""
        match = (lambda m: m["action"] == what) if isinstance(what, str) else what
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(cp, since=since)
            for message in found:
                if match(message):
                    return message
            if time.monotonic() >= deadline:
                raise TimeoutError("{!r} not received within {} s; got {}".format(
                    what, timeout, [m["action"] for m in found]))
            time.sleep(poll)

    def read_log(self):
        """The JSON-lines log as a list of dicts."""
        if self.log_path is None:
            raise LabCSMSError("started without log_path")
        with open(self.log_path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]


# -- command line -------------------------------------------------------------------------------

CONTROL_HELP = """control protocol: one JSON object per line to 127.0.0.1:<control-port>, one
answer per line, each with "ok" (false + "error" on any problem). Commands ("cmd"):
  call        cp, action, payload={}, timeout=30 -> result | call_error{code,description,details}
              (+ "violation" when the charger's result is invalid)
  raw         cp, text, wait_id=null, timeout=5  -> reply (the charger's frame with wait_id)
  raw_bytes   cp, hex, binary=true, wait_id, timeout (binary=false: the bytes as a text frame)
  configure   any of boot_status, boot_interval, heartbeat_interval, id_tags{TAG: status |
              {status, parentIdTag, expiryDate} | null}, default_id_tag_status,
              data_transfer_status, auth{CP: password|null}, auth_hex{CP: hex|null}, require_auth
  connected   -> cps;   wait_connected  cp, timeout=10
  messages    cp=null, action=null, since=0 -> messages[{t, cp, id, action, payload}]
  violations  cp=null -> violations[{t, cp, kind, detail, ...}];   clear  cp=null
  disconnect  cp, code=1000, reason="";   shutdown
"""


def _cp_secret(text):
    cpid, sep, secret = text.partition("=")
    if not sep or not cpid:
        raise argparse.ArgumentTypeError("expected CP=SECRET")
    return cpid, secret


def build_parser():
    parser = argparse.ArgumentParser(
        prog="labcsms.py", epilog=CONTROL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Lab OCPP 1.6J CSMS for tests and bench work. Without a "
        "command it serves (see 'serve --help'). Chargers connect to <url>/<ChargePointId>: any "
        "path works, its last segment is the id. Control: JSON lines on 127.0.0.1:<control-port>.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    s = sub.add_parser("serve", help="run the CSMS (default)", description="Run the CSMS. "
                       "Prints one 'LABCSMS READY {json}' line on stdout, then logs to stderr.")
    add = s.add_argument
    add("--host", default="127.0.0.1", help="listen address (default %(default)s)")
    add("--port", type=int, default=8180, help="websocket port, 0 = any (default %(default)s)")
    add("--control-port", type=int, default=8181,
        help="control port on 127.0.0.1, 0 = any (default %(default)s)")
    add("--base-path", default="/ocpp", help="path shown in the READY url (default %(default)s)")
    add("--log", metavar="FILE", help="append all frames and events as JSON lines")
    add("--tls-cert", metavar="FILE", help="serve wss:// with this PEM certificate (chain)")
    add("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    add("--tls-client-ca", metavar="FILE",
        help="require client certificates issued by this CA (security profile 3)")
    add("--no-subprotocol", action="store_true",
        help="test mode: accept the upgrade without selecting any subprotocol")
    add("--auth", action="append", default=[], type=_cp_secret, metavar="CP=PASSWORD",
        help="require HTTP Basic auth from CP, UTF-8 password (repeatable)")
    add("--auth-hex", action="append", default=[], type=_cp_secret, metavar="CP=HEX",
        help="as --auth, the password is these raw bytes (a binary AuthorizationKey)")
    add("--require-auth", action="store_true", help="refuse charge points without a password")
    add("--boot-status", choices=BOOT_STATUSES, default="Accepted")
    add("--boot-interval", type=int, default=10,
        help="BootNotification interval when Pending/Rejected (default %(default)s)")
    add("--heartbeat-interval", type=int, default=300,
        help="BootNotification interval when Accepted (default %(default)s)")
    add("--default-id-tag-status", choices=AUTH_STATUSES, default="Accepted")
    add("--data-transfer-status", choices=DATA_TRANSFER_STATUSES, default="UnknownVendorId")
    add("--ping-interval", type=float, default=20, help="s between our pings, 0 = none")
    add("--ping-timeout", type=float, default=20, help="s to wait for a pong, 0 = forever")
    add("-q", "--quiet", action="store_true", help="no frames on stderr, events only")
    add("-v", "--verbose", action="store_true", help="also the ocpp package's own logging")
    add("--stop-on-stdin-eof", action="store_true", help="exit when stdin closes (for parents)")

    def client(name, text, *positionals):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--control", default=os.environ.get("LABCSMS_CONTROL", DEFAULT_CONTROL),
                       metavar="HOST:PORT", help="default $LABCSMS_CONTROL or %(default)s")
        p.add_argument("--timeout", type=float, default=30, help="s (default %(default)s)")
        for positional in positionals:
            p.add_argument(positional, nargs="?" if positional.islower() else None)
        return p

    client("call", "send a CALL to a charger, print the answer", "CP", "ACTION", "payload")
    client("raw", "send TEXT unchecked as one frame", "CP", "TEXT").add_argument(
        "--wait-id", help="print the charger's reply with this id")
    client("messages", "print the CALLs received", "cp", "action")
    client("violations", "print the protocol violations recorded", "cp")
    client("request", "send one control request (JSON), print the answer", "JSON")
    return parser


def client_main(args):
    host, _, port = args.control.rpartition(":")
    req = {"call": lambda: {"cmd": "call", "cp": args.CP, "action": args.ACTION,
                            "payload": json.loads(args.payload or "{}"), "timeout": args.timeout},
           "raw": lambda: {"cmd": "raw", "cp": args.CP, "text": args.TEXT,
                           "wait_id": args.wait_id, "timeout": args.timeout},
           "messages": lambda: {"cmd": "messages", "cp": args.cp, "action": args.action},
           "violations": lambda: {"cmd": "violations", "cp": args.cp},
           "request": lambda: json.loads(args.JSON)}[args.command]()
    response = control_request(host or "127.0.0.1", int(port), req, args.timeout + 10)
    print(json.dumps(response, indent=2))
    return 0 if response.get("ok") else 1


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = ("serve", "call", "raw", "messages", "violations", "request")
    if not argv or argv[0] not in commands + ("-h", "--help"):
        argv.insert(0, "serve")
    args = build_parser().parse_args(argv)
    if args.command != "serve":
        try:
            return client_main(args)
        except (OSError, ValueError) as exc:
            print("labcsms: {}".format(exc), file=sys.stderr)
            return 2
    if bool(args.tls_cert) != bool(args.tls_key):
        build_parser().error("--tls-cert and --tls-key go together")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The package logs every frame and a traceback per CALLERROR, which we record ourselves;
    # keep only crashes of our own handlers (they would pass for InternalError violations).
    ocpp_log = logging.getLogger("labcsms.ocpp")
    ocpp_log.setLevel(logging.INFO if args.verbose else logging.ERROR)
    if not args.verbose:
        ocpp_log.addFilter(lambda r: r.exc_info is not None and r.exc_info[1] is not None
                           and not isinstance(r.exc_info[1], OCPPError))
    csms = LabCSMS(args)
    try:
        csms.config.update({
            "boot_status": args.boot_status, "boot_interval": args.boot_interval,
            "heartbeat_interval": args.heartbeat_interval, "require_auth": args.require_auth,
            "default_id_tag_status": args.default_id_tag_status,
            "data_transfer_status": args.data_transfer_status,
            "auth": dict(args.auth), "auth_hex": dict(args.auth_hex)})
    except CommandError as exc:
        build_parser().error(str(exc))
    asyncio.run(csms.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
