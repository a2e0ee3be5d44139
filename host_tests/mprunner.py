"""pytest collector for MicroPython-side unit tests (host_tests/mp/test_*.py).

Each file runs once in the Unix port (one process per file, under a small heap: a file may set
`# mp-heapsize: 64K` on a line of its own); every `test_*` function becomes a pytest item, and a
failing MicroPython assertion shows as a normal pytest failure with the MicroPython traceback.
"""

import ast
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MP_DIR = ROOT / "host_tests" / "mp"
DEFAULT_HEAP = "256K"
FILE_TIMEOUT_S = 300


def micropython_path():
    return os.environ.get("MICROPYTHON") or str(ROOT / ".venv" / "bin" / "micropython")


def micropypath():
    """Import path inside the Unix port: the portable libs, the repo root (for boards/), the tests."""
    return ":".join([".frozen", str(ROOT / "lib"), str(ROOT), str(MP_DIR)])


class MicroPythonFailure(Exception):
    pass


class MPFile(pytest.File):
    _results = None

    def _heapsize(self, text):
        for line in text.splitlines()[:20]:
            if line.startswith("# mp-heapsize:"):
                return line.split(":", 1)[1].strip()
        return DEFAULT_HEAP

    def collect(self):
        text = self.path.read_text()
        self._text = text
        tree = ast.parse(text)
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith(
                "test_"
            ):
                yield MPItem.from_parent(self, name=node.name)

    def results(self):
        if self._results is None:
            names = [it.name for it in self.session.items if isinstance(it, MPItem) and it.parent is self]
            cmd = [
                micropython_path(),
                "-X",
                "heapsize=" + self._heapsize(self._text),
                str(MP_DIR / "_harness.py"),
                str(self.path),
            ] + names
            env = dict(os.environ, MICROPYPATH=micropypath())
            try:
                p = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=FILE_TIMEOUT_S, env=env, cwd=str(ROOT)
                )
                out, err, rc = p.stdout, p.stderr, p.returncode
            except subprocess.TimeoutExpired as e:
                out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
                err, rc = "timed out after %d s" % FILE_TIMEOUT_S, -1
            res = {}
            for line in out.splitlines():
                if line.startswith("@@MPTEST "):
                    r = json.loads(line[9:])
                    res[r["name"]] = r
            self._results = (res, out, err, rc)
        return self._results


class MPItem(pytest.Item):
    def runtest(self):
        res, out, err, rc = self.parent.results()
        r = res.get(self.name)
        if r is None:
            tail = "\n".join((out + "\n" + err).splitlines()[-40:])
            raise MicroPythonFailure(
                "test did not report (MicroPython exit code %s); output tail:\n%s" % (rc, tail)
            )
        if not r["ok"]:
            raise MicroPythonFailure(r["tb"])

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MicroPythonFailure):
            return "MicroPython test %s failed:\n%s" % (self.name, excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, "mp::%s" % self.name


def collect_file(file_path, parent):
    if file_path.parent == MP_DIR and file_path.name.startswith("test_") and file_path.suffix == ".py":
        return MPFile.from_parent(parent, path=file_path)
    return None
