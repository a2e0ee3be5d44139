"""make mpy / make deploy: the .mpy image builds, loads in MicroPython, and deploys by mpremote."""

import os
import subprocess
import sys
from pathlib import Path

import deploy

ROOT = Path(__file__).resolve().parent.parent


def test_build_compiles_every_module_and_it_imports_in_micropython():
    sizes = deploy.build(quiet=True)
    for pkg in ("charger", "ocpp16", "net", "evse", "store", "boards"):
        assert sizes.get(pkg, 0) > 0, pkg
    lib = deploy.BUILD / "lib"
    for py in (ROOT / "lib").rglob("*.py"):
        mpy = lib / py.relative_to(ROOT / "lib").with_suffix(".mpy")
        assert mpy.exists(), mpy
    assert not (deploy.BUILD / "boards" / "sim.mpy").exists()
    mp = os.environ.get("MICROPYTHON") or str(ROOT / ".venv" / "bin" / "micropython")
    env = dict(os.environ, MICROPYPATH=".frozen:%s:%s" % (lib, deploy.BUILD))
    code = "import charger.app, ocpp16.client, ocpp16.core, net.wsclient, store.queue; print('ok')"
    p = subprocess.run([mp, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                       cwd="/")
    assert p.stdout.strip() == "ok", p.stderr


def test_deploy_dry_run_prints_the_mpremote_commands(capsys):
    assert deploy.main(["deploy", "--port", "/dev/ttyUSB0", "--board", "esp32_devkitc",
                        "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "mpremote connect /dev/ttyUSB0 fs cp -r" in out.replace(deploy.tool("mpremote"),
                                                                     "mpremote")
    assert (deploy.BUILD / "board.txt").read_text().strip() == "esp32_devkitc"


def test_deploy_refuses_the_simulated_board():
    try:
        deploy.main(["deploy", "--port", "x", "--board", "sim", "--dry-run"])
    except SystemExit as e:
        assert "no hardware board" in str(e)
    else:
        raise AssertionError("sim accepted as a hardware board")
