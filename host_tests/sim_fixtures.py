"""pytest fixtures for the simulated charger: start `tools/sim.py` and drive its control port.

`sim_factory(**options)` starts one simulator in its own process group, on free ports, with a
temporary state dir unless one is given; waits until the control port answers (and, unless
`wait_firmware=False`, until the firmware answers `status`); and returns a `SimHandle`. Every
simulator started is killed (SIGKILL to its process group) after the test, and at interpreter exit
as a last resort. `SimFactory` serves other fixture scopes. The firmware is the real one
(MicroPython) unless `firmware_cmd` (argv list) replaces it through sim.py's `SIM_FIRMWARE_CMD`.
"""

import atexit
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SIM = ROOT / "tools" / "sim.py"
FAKE_FIRMWARE = [sys.executable, str(ROOT / "host_tests" / "fake_firmware.py")]
START_ATTEMPTS = 3  # a free port taken between our probe and sim.py's bind: try new ports
_LIVE = set()  # every SimHandle whose process may still run


class SimError(AssertionError):
    """The simulator did not start, did not answer, or a wait timed out (with its log tail)."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimHandle:
    """One running `tools/sim.py`."""

    def __init__(self, proc, control_port, provision_port, state_dir, log_path):
        self.proc = proc
        self.control_port = control_port
        self.provision_port = provision_port
        self.state_dir = Path(state_dir)
        self.log_path = Path(log_path)

    @property
    def pid(self):
        """sim.py's PID, which is also its process-group id."""
        return self.proc.pid

    @property
    def device_secret(self):
        for line in self.log().splitlines():
            if "device secret: " in line:
                return line.split("device secret: ", 1)[1].strip()
        return None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=40):
        return "\n".join(self.log().splitlines()[-lines:])

    def alive(self):
        return self.proc.poll() is None

    def request(self, req, timeout=10.0):
        """Send one control request (a dict, or a raw line as str/bytes); returns the reply."""
        if isinstance(req, dict):
            line = json.dumps(req).encode() + b"\n"
        else:
            line = req.encode() if isinstance(req, str) else req
            if not line.endswith(b"\n"):
                line += b"\n"
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=timeout) as s:
            s.sendall(line)
            with s.makefile("rb") as f:
                reply = f.readline()
        if not reply:
            raise SimError("control port closed without a reply to {!r}".format(line))
        return json.loads(reply)

    def status(self, timeout=10.0):
        return self.request({"cmd": "status"}, timeout)

    def wait_for(self, pred, timeout=10.0, interval=0.05):
        """Poll `status` until pred(status) is true; returns that status.

        pred sees every reply, `ok: false` included; an exception in pred counts as false.
        Raises SimError with the last reply and the log tail on timeout or if sim.py exits.
        """
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if not self.alive():
                raise SimError("sim.py exited ({}); last status {}\n{}".format(
                    self.proc.returncode, last, self.log_tail()))
            try:
                last = self.status(timeout=max(1.0, min(10.0, deadline - time.monotonic())))
            except (OSError, ValueError, SimError) as e:
                last = {"ok": False, "error": "control port: {}".format(e)}
            try:
                if pred(last):
                    return last
            except (KeyError, IndexError, TypeError, ValueError, AttributeError):
                pass
            if time.monotonic() >= deadline:
                raise SimError("timed out; last status {}\n{}".format(last, self.log_tail()))
            time.sleep(interval)

    def wait_ready(self, timeout=30.0):
        return self.wait_for(lambda s: s["ok"], timeout)

    def wait_exit(self, timeout=10.0):
        """Wait for sim.py to exit; returns its exit code (SimError on timeout)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise SimError("sim.py still running\n" + self.log_tail()) from None

    def kill9(self):
        """Power cut: SIGKILL to the whole process group (sim.py and the firmware)."""
        if self not in _LIVE:
            return  # already cut; the group id may belong to someone else by now
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        _LIVE.discard(self)

    def stop(self, timeout=10.0):
        """Clean stop through the `shutdown` command; returns the exit code.

        Falls back to kill9() (returns None then) if sim.py does not exit in time.
        """
        rc = None
        if self.alive():
            try:
                self.request({"cmd": "shutdown"}, timeout)
                rc = self.proc.wait(timeout)
            except (OSError, ValueError, SimError, subprocess.TimeoutExpired):
                rc = None
        else:
            rc = self.proc.returncode
        self.kill9()  # the group may still hold a firmware process
        return rc


class SimFactory:
    """Starts simulators and remembers them for cleanup()."""

    def __init__(self, workdir=None):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="sim-"))
        self.handles = []
        self.count = 0

    def __call__(self, csms=None, cp_id=None, state_dir=None, connectors=None, max_current=None,
                 phases=None, config=None, password=None, ca=None, heapsize=None,
                 device_secret=None, firmware_cmd=None, extra_args=(), env=None,
                 wait_firmware=True, timeout=30.0):
        """Start tools/sim.py; returns a SimHandle once it is ready.

        config: dict (or list of pairs) of OCPP keys; firmware_cmd: argv list replacing the
        MicroPython command (e.g. FAKE_FIRMWARE); env: extra environment for sim.py.
        """
        self.count += 1
        run_dir = self.workdir / "sim{}".format(self.count)
        run_dir.mkdir(parents=True, exist_ok=True)
        state_dir = Path(state_dir) if state_dir else run_dir / "state"
        opts = []
        for flag, value in (("--csms", csms), ("--id", cp_id), ("--connectors", connectors),
                            ("--max-current", max_current), ("--phases", phases),
                            ("--password", password), ("--ca", ca), ("--heapsize", heapsize),
                            ("--device-secret", device_secret)):
            if value is not None:
                opts += [flag, str(value)]
        items = config.items() if isinstance(config, dict) else (config or ())
        for key, value in items:
            opts += ["--config", "{}={}".format(key, value)]
        opts += list(extra_args)
        full_env = dict(os.environ)
        full_env.update(env or {})
        if firmware_cmd is not None:
            full_env["SIM_FIRMWARE_CMD"] = shlex.join(firmware_cmd)
        for attempt in range(START_ATTEMPTS):
            handle = self._start(run_dir, state_dir, opts, full_env, attempt)
            try:
                self._wait_control(handle, timeout)
                break
            except SimError:
                handle.kill9()
                if attempt + 1 < START_ATTEMPTS and "cannot listen" in handle.log():
                    continue
                raise
        if wait_firmware:
            try:
                handle.wait_ready(timeout)
            except SimError:
                handle.kill9()
                raise
        return handle

    def _start(self, run_dir, state_dir, opts, env, attempt):
        control, provision = free_port(), free_port()
        argv = [sys.executable, str(SIM), "--state-dir", str(state_dir),
                "--control-port", str(control), "--provision-port", str(provision)] + opts
        log_path = run_dir / "sim{}.log".format("" if attempt == 0 else attempt)
        with open(log_path, "ab") as log:
            # Its own group from the first instant, so killpg can never reach pytest's group.
            group = {"process_group": 0} if sys.version_info >= (3, 11) else {
                "preexec_fn": os.setpgrp}
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    env=env, cwd=str(ROOT), **group)
        handle = SimHandle(proc, control, provision, state_dir, log_path)
        self.handles.append(handle)
        _LIVE.add(handle)
        return handle

    @staticmethod
    def _wait_control(handle, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if not handle.alive():
                raise SimError("sim.py exited with {} during start\n{}".format(
                    handle.proc.returncode, handle.log_tail()))
            try:
                handle.request({"cmd": "status"}, timeout=10.0)
                return
            except (OSError, ValueError, SimError):
                pass
            if time.monotonic() >= deadline:
                raise SimError("control port never answered\n" + handle.log_tail())
            time.sleep(0.05)

    def cleanup(self):
        for handle in self.handles:
            handle.kill9()
        self.handles.clear()


@atexit.register
def _kill_all():
    for handle in list(_LIVE):
        handle.kill9()


@pytest.fixture
def sim_factory(tmp_path_factory):
    """Function-scoped SimFactory; every simulator it started is killed afterwards."""
    factory = SimFactory(tmp_path_factory.mktemp("sim"))
    yield factory
    factory.cleanup()
