"""tools/provision.py --serial against the firmware's USB-serial link (provision.usb).

The device side runs in the Unix port on stdin/stdout (host_tests/mp/_serial_device.py) with
console output mixed in; a TCP socket stands in for the USB cable (pyserial's `socket://` URL,
the same code path as /dev/ttyUSB0 in the CLI). The CLI reads INFO, is refused with a wrong
secret, then provisions and commits; the device stores the fields.
"""

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = bytes(range(16)).hex()  # _provkit.SECRET


class Cable:
    """TCP clients, one after the other <-> the device process's stdin/stdout."""

    def __init__(self, proc):
        self.proc = proc
        self.conn = None
        self.output = []  # everything the device wrote
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._down, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self.conn = conn
            threading.Thread(target=self._up, args=(conn,), daemon=True).start()

    def _down(self):
        while True:
            data = os.read(self.proc.stdout.fileno(), 4096)
            if not data:
                return
            self.output.append(data)
            try:
                if self.conn is not None:
                    self.conn.sendall(data)
            except OSError:
                pass

    def _up(self, conn):
        try:
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
        except (OSError, ValueError):
            return

    def close(self):
        self.srv.close()


def run_cli(port, *args):
    argv = [sys.executable, str(ROOT / "tools" / "provision.py"), "--serial",
            "socket://127.0.0.1:%d" % port] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=str(ROOT))


def test_cli_provisions_over_the_serial_link(tmp_path):
    mp = os.environ.get("MICROPYTHON") or str(ROOT / ".venv" / "bin" / "micropython")
    env = dict(os.environ, MICROPYPATH=":".join(
        [".frozen", str(ROOT / "lib"), str(ROOT), str(ROOT / "host_tests" / "mp")]))
    proc = subprocess.Popen([mp, "-X", "heapsize=1M", str(ROOT / "host_tests" / "mp" /
                                                          "_serial_device.py"),
                             str(tmp_path / "flash")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=str(ROOT))
    cable = Cable(proc)
    try:
        r = run_cli(cable.port, "--secret", "ff" * 16, "--id", "CP-USB")
        assert r.returncode == 1 and "NOT_AUTHENTICATED: wrong secret" in r.stderr, r.stderr
        r = run_cli(cable.port, "--secret", SECRET, "--url", "ws://10.0.0.1:9000/ocpp",
                    "--id", "CP-USB", "--password", "serial-passw0rd")
        assert r.returncode == 0, r.stderr
        proc.wait(20)
        err = proc.stderr.read()
    finally:
        cable.close()
        if proc.poll() is None:
            proc.kill()
    out = b"".join(cable.output)
    assert b"'cp_id': 'CP-USB'" in out, (out, err)
    assert b"serial-passw0rd" not in err  # secrets never logged
