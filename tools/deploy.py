"""Build the firmware as .mpy files and copy it to an ESP32 with mpremote.

    python tools/deploy.py build                      # build/device/: the board's filesystem image
    python tools/deploy.py deploy --port /dev/ttyUSB0 --board esp32_devkitc [--dry-run]

`build` compiles every module of lib/ and boards/ with mpy-cross (bytecode loads faster and needs
no compiler RAM on the board) and prints the size per package; boot.py and main.py stay source
(MicroPython runs them by name). `deploy` copies the image with mpremote (which prints each file
as it goes), writes /board.txt naming the board module, and resets the board.
"""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "device"
VENV_BIN = ROOT / ".venv" / "bin"


def tool(name):
    p = VENV_BIN / name
    return str(p) if p.exists() else name


def compile_tree(src_root, rel, out_root, sizes):
    for path in sorted((src_root / rel).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        r = path.relative_to(src_root)
        dest = out_root / r.with_suffix(".mpy")
        dest.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([tool("mpy-cross"), "-O1", "-s", str(r), "-o", str(dest), str(path)],
                       check=True)
        pkg = r.parts[0] if len(r.parts) > 1 else r.stem
        sizes[pkg] = sizes.get(pkg, 0) + dest.stat().st_size


def build(quiet=False):
    """Compile into build/device; returns {package: bytes of .mpy}."""
    if BUILD.exists():
        shutil.rmtree(BUILD)
    (BUILD / "lib").mkdir(parents=True)
    sizes = {}
    compile_tree(ROOT / "lib", Path("."), BUILD / "lib", sizes)
    compile_tree(ROOT, Path("boards"), BUILD, sizes)
    # The simulated board is for the Unix port only.
    (BUILD / "boards" / "sim.mpy").unlink(missing_ok=True)
    sizes.pop("sim", None)
    for name in ("boot.py", "main.py"):
        shutil.copy(ROOT / "firmware" / name, BUILD / name)
    if not quiet:
        total = 0
        print("%-12s %8s" % ("package", "bytes"))
        for pkg in sorted(sizes):
            print("%-12s %8d" % (pkg, sizes[pkg]))
            total += sizes[pkg]
        print("%-12s %8d  (.mpy, mpy-cross -O1; boot.py + main.py as source)" % ("total", total))
    return sizes


def deploy_commands(port, board):
    if not (ROOT / "boards" / (board + ".py")).exists() or board == "sim":
        raise SystemExit("no hardware board module boards/%s.py" % board)
    (BUILD / "board.txt").write_text(board + "\n")
    base = [tool("mpremote"), "connect", port]
    return [
        base + ["fs", "cp", "-r", str(BUILD / "lib"), str(BUILD / "boards"), ":"],
        base + ["fs", "cp", str(BUILD / "boot.py"), str(BUILD / "main.py"),
                str(BUILD / "board.txt"), ":", "+", "reset"],
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="compile to build/device")
    d = sub.add_parser("deploy", help="copy build/device to a board with mpremote")
    d.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    d.add_argument("--board", required=True, help="board module in boards/, e.g. esp32_devkitc")
    d.add_argument("--dry-run", action="store_true", help="print the mpremote commands only")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build()
        return 0
    if not BUILD.exists():
        build()
    cmds = deploy_commands(args.port, args.board)
    for i, c in enumerate(cmds, 1):
        print("[%d/%d] %s" % (i, len(cmds), " ".join(c)), flush=True)
        if not args.dry_run:
            subprocess.run(c, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
