"""pytest fixtures for the lab CSMS (tools/labcsms.py), loaded by conftest.py as a plugin.

`labcsms`: a plain ws:// lab CSMS per test, log in tmp_path. `labcsms_factory(**kw)`: start any
number of variants (wss, auth, no subprotocol, ...; keywords of labcsms.LabCSMSProcess).
`lab_pki`: a CA plus a server certificate for 127.0.0.1/localhost (host_tests/certs.py).
Every server runs in its own process group and is killed at teardown, also when the test fails.
"""

import pytest

from certs import make_server_pki
from labcsms import LabCSMSProcess


@pytest.fixture
def labcsms(tmp_path):
    with LabCSMSProcess(tmp_path / "labcsms.jsonl") as csms:
        yield csms


@pytest.fixture
def labcsms_factory(tmp_path):
    started = []

    def start(**kwargs):
        kwargs.setdefault("log_path", tmp_path / "labcsms-{}.jsonl".format(len(started)))
        csms = LabCSMSProcess(**kwargs)
        started.append(csms)  # before start(): a server that fails half-way is still stopped
        return csms.start()

    try:
        yield start
    finally:
        for csms in started:
            csms.stop()


@pytest.fixture
def lab_pki(tmp_path):
    return make_server_pki(tmp_path / "pki")
