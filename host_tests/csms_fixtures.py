"""pytest fixtures for the lab CSMS (tools/labcsms.py), loaded by conftest.py as a plugin.

`labcsms`: a plain ws:// lab CSMS per test, log in tmp_path. `labcsms_factory(**kw)`: start any
number of variants (wss, auth, no subprotocol, ...; keywords of labcsms.LabCSMSProcess).
`lab_pki`: a CA plus a server certificate for 127.0.0.1/localhost (host_tests/certs.py).
Every server runs in its own process group and is killed at teardown, also when the test fails.

Schema conformance: the lab CSMS validates every message a charger sends (JSON schemas of the
`ocpp` package, RFC 3339 times, frame shapes). At teardown each server started by these fixtures
is asked for its violations; any violation fails the test that caused it, unless the test is
marked `@pytest.mark.allow_violations` (every kind) or `allow_violations("kind", ...)`.
"""

import pytest

from certs import make_server_pki
from labcsms import LabCSMSError, LabCSMSProcess


def check_violations(request, servers):
    """Fail the test if a running lab CSMS recorded a violation the test does not allow."""
    marker = request.node.get_closest_marker("allow_violations")
    if marker is not None and not marker.args:
        return
    allowed = set(marker.args) if marker is not None else set()
    found = []
    for csms in servers:
        if csms.proc is None or csms.proc.poll() is not None:
            continue  # stopped by the test itself
        try:
            found += [v for v in csms.violations() if v["kind"] not in allowed]
        except (OSError, LabCSMSError):
            continue  # shutting down: nothing to ask
    if found:
        pytest.fail("the charger broke OCPP 1.6 (lab CSMS violations):\n" + "\n".join(
            "  {cp} {kind}: {detail}".format(**v)[:400] for v in found[:20]), pytrace=False)


@pytest.fixture
def labcsms(tmp_path, request):
    with LabCSMSProcess(tmp_path / "labcsms.jsonl") as csms:
        yield csms
        check_violations(request, [csms])


@pytest.fixture
def labcsms_factory(tmp_path, request):
    started = []

    def start(**kwargs):
        kwargs.setdefault("log_path", tmp_path / "labcsms-{}.jsonl".format(len(started)))
        csms = LabCSMSProcess(**kwargs)
        started.append(csms)  # before start(): a server that fails half-way is still stopped
        return csms.start()

    try:
        yield start
        check_violations(request, started)
    finally:
        for csms in started:
            csms.stop()


@pytest.fixture
def lab_pki(tmp_path):
    return make_server_pki(tmp_path / "pki")
