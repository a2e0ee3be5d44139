"""Provision a charger: Wi-Fi, CSMS URL (or a provider preset), Charge Point ID, credentials, CA.

    provision.py --sim 127.0.0.1:7701 --secret HEX --url wss://csms/ocpp --id CP1 \\
        --password P --ca ca.pem
    provision.py --ble EVSE-1A2B --secret HEX --preset monta --id CP1 --password P --ca ca.pem
    provision.py --sim 127.0.0.1:7701 --status          # INFO, no secret needed
    provision.py --scan                                  # BLE chargers in their window

The same protocol (lib/provision, provisioning.md) over `--ble NAME_OR_ADDRESS` (bleak),
`--serial PORT` (pyserial) and `--sim HOST:PORT` (the simulator's --provision-port).
Authenticates with the per-device secret (the service-button window must be open, or the
charger unprovisioned), sets the given fields, commits (the charger stores them atomically
and restarts) and exits 0; any refusal prints the reason and exits 1 (usage errors 2, link
errors 3). Secrets given here are sent once and never printed.
"""

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provclient as P  # noqa: E402
from provclient import C  # noqa: E402

PRESETS = Path(__file__).resolve().parent / "web" / "presets.json"
EXIT_REFUSED, EXIT_USAGE, EXIT_LINK = 1, 2, 3
BAR = 30
STATE_NAMES = C.STATE_NAMES


class UsageError(Exception):
    pass


def load_presets(path=PRESETS):
    with open(path) as f:
        return json.load(f)["presets"]


def preset_url(name, assigned, presets=None):
    """(url, profile) of preset `name` with its {placeholders} filled. Raises UsageError."""
    presets = presets if presets is not None else load_presets()
    for p in presets:
        if p["name"] == name:
            values = dict(p.get("vars") or {})
            values.update(assigned)
            url = p["url"]
            for key, value in values.items():
                if "{" + key + "}" in url:
                    if not value:
                        raise UsageError("preset {} needs --preset-var {}=...".format(name, key))
                    url = url.replace("{" + key + "}", value)
            if "{" in url:
                raise UsageError("preset {}: unfilled placeholder in {}".format(name, url))
            return url, p.get("profile")
    raise UsageError("unknown preset {!r} (see --list-presets)".format(name))


def password_bytes(text):
    """The AuthorizationKey as it goes on the wire: 32..40 hex digits are a binary key."""
    hexdigits = "0123456789abcdefABCDEF"
    if 32 <= len(text) <= 40 and len(text) % 2 == 0 and all(c in hexdigits for c in text):
        return bytes.fromhex(text)
    return text.encode()


def _host_port(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT")
    return host, int(port)


def _var(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected NAME=VALUE")
    return key, value


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Provision an EV charger over BLE, USB serial or the simulator's "
        "provisioning port (one protocol: provisioning.md).")
    link = p.add_mutually_exclusive_group()
    link.add_argument("--sim", type=_host_port, metavar="HOST:PORT",
                      help="the simulator's --provision-port")
    link.add_argument("--serial", metavar="PORT", help="a board on USB serial")
    link.add_argument("--ble", metavar="NAME_OR_ADDRESS", help="a board over BLE (bleak)")
    link.add_argument("--scan", action="store_true", help="list BLE chargers in their window")
    link.add_argument("--list-presets", action="store_true", help="list provider presets")
    p.add_argument("--secret", help="the per-device secret (hex, from the label)")
    p.add_argument("--status", action="store_true",
                   help="print status as JSON (with --secret: every non-secret field)")
    p.add_argument("--identify", action="store_true", help="blink the charger's LED")
    p.add_argument("--restart", action="store_true", help="restart the charger")
    p.add_argument("--factory-reset", action="store_true",
                   help="wipe provisioning and stored state (not the device secret)")
    p.add_argument("--url", help="CSMS URL ws://... or wss://... (the ID is appended)")
    p.add_argument("--preset", help="fill --url (and --profile) from a provider preset")
    p.add_argument("--preset-var", type=_var, action="append", default=[], metavar="NAME=VALUE",
                   help="a value for a {NAME} placeholder of the preset (repeatable)")
    p.add_argument("--id", help="Charge Point ID")
    p.add_argument("--password", help="AuthorizationKey (Basic auth, profiles 1-2); 32-40 hex "
                   "digits are sent as the binary key")
    p.add_argument("--profile", type=int, choices=(0, 1, 2, 3), help="security profile")
    p.add_argument("--ca", help="CSMS CA certificate, PEM or DER")
    p.add_argument("--client-cert", help="client certificate for profile 3, PEM or DER")
    p.add_argument("--client-key", help="client private key for profile 3, PEM or DER")
    p.add_argument("--wifi-ssid", help="Wi-Fi network name")
    p.add_argument("--wifi-password", help="Wi-Fi password (empty for an open network)")
    p.add_argument("--frame-size", type=int, help="frame size in bytes (BLE default 20)")
    args = p.parse_args(argv)
    if not (args.sim or args.serial or args.ble or args.scan or args.list_presets):
        p.error("one of --sim, --serial, --ble, --scan, --list-presets is required")
    if args.frame_size is not None and not C.MIN_FRAME <= args.frame_size <= C.MAX_FRAME:
        p.error("--frame-size must be {}..{}".format(C.MIN_FRAME, C.MAX_FRAME))
    return args


def _read(path, what):
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UsageError("{}: {}".format(what, e))


def collect_fields(args):
    """([(tag, bytes)] small fields, [(tag, bytes, label)] large ones). Raises UsageError."""
    small, large = [], []
    url, profile = args.url, args.profile
    if args.preset:
        if url:
            raise UsageError("--preset and --url both given")
        url, preset_profile = preset_url(args.preset, dict(args.preset_var))
        if profile is None:
            profile = preset_profile
    if args.wifi_ssid is not None:
        small.append((C.T_WIFI_SSID, args.wifi_ssid.encode()))
    if args.wifi_password is not None:
        small.append((C.T_WIFI_PASSWORD, args.wifi_password.encode()))
    if url is not None:
        small.append((C.T_URL, url.encode()))
    if args.id is not None:
        small.append((C.T_CP_ID, args.id.encode()))
    if profile is not None:
        small.append((C.T_PROFILE, bytes((profile,))))
    if args.password is not None:
        small.append((C.T_AUTH_KEY, password_bytes(args.password)))
    for tag, path, label in ((C.T_CA, args.ca, "CA certificate"),
                             (C.T_CLIENT_CERT, args.client_cert, "client certificate"),
                             (C.T_CLIENT_KEY, args.client_key, "client key")):
        if path:
            large.append((tag, _read(path, label), label))
    return small, large


def progress_bar(label, out=sys.stderr):
    def show(done, total):
        filled = BAR * done // total if total else BAR
        out.write("\r{} [{}{}] {:3d}% {}/{} B".format(
            label, "#" * filled, "-" * (BAR - filled), 100 * done // max(total, 1), done, total))
        if done >= total:
            out.write("\n")
        out.flush()

    return show


def info_json(recs):
    def text(tag):
        v = recs.get(tag)
        return v.decode("utf-8", "replace") if v is not None else None

    state = C.as_int(recs.get(C.T_STATE, b"\x00"))
    return {
        "device_id": text(C.T_DEVICE_ID), "firmware": text(C.T_FIRMWARE),
        "protocol": C.as_int(recs.get(C.T_VERSION, b"\x00")),
        "state": STATE_NAMES[state] if state < len(STATE_NAMES) else state,
        "lockout_seconds": C.as_int(recs.get(C.T_SECONDS, b"")),
        "connection": text(C.T_CONN_STATUS), "last_error": text(C.T_LAST_ERROR),
        "max_frame": C.as_int(recs.get(C.T_MAX_FRAME, b"")),
        "max_message": C.as_int(recs.get(C.T_MAX_MESSAGE, b"")),
    }


def status_json(recs):
    def text(tag):
        v = recs.get(tag)
        return v.decode("utf-8", "replace") if v is not None else None

    bits = C.as_int(recs.get(C.T_SECRETS_SET, b""))
    profile = recs.get(C.T_PROFILE)
    return {
        "device_id": text(C.T_DEVICE_ID), "firmware": text(C.T_FIRMWARE),
        "connection": text(C.T_CONN_STATUS), "last_error": text(C.T_LAST_ERROR),
        "wifi_ssid": text(C.T_WIFI_SSID), "url": text(C.T_URL),
        "charge_point_id": text(C.T_CP_ID),
        "security_profile": profile[0] if profile else None,
        "ca_sha256": recs[C.T_CA_SHA256].hex() if C.T_CA_SHA256 in recs else None,
        "client_cert_sha256": (recs[C.T_CLIENT_CERT_SHA256].hex()
                               if C.T_CLIENT_CERT_SHA256 in recs else None),
        "secrets_set": [name for bit, name in ((1, "wifi_password"), (2, "authorization_key"),
                                               (4, "client_key")) if bits & bit],
    }


def make_transport(args):
    if args.sim:
        return P.StreamTransport(*args.sim)
    if args.serial:
        return P.SerialTransport(args.serial)
    return P.BLETransport(args.ble, args.frame_size)


async def run(args, out=sys.stdout, err=sys.stderr):
    if args.list_presets:
        for p in load_presets():
            out.write("{:10} {:45} profile {}  {}\n".format(p["name"], p["url"], p["profile"],
                                                            p["title"]))
        return 0
    if args.scan:
        for name, addr in await P.scan():
            out.write("{}  {}\n".format(addr, name))
        return 0
    small, large = collect_fields(args)
    actions = small or large or args.identify or args.restart or args.factory_reset
    secret = None
    if args.secret is not None:
        try:
            secret = bytes.fromhex(args.secret)
        except ValueError:
            raise UsageError("--secret must be hex")
    if actions and secret is None:
        raise UsageError("--secret is required to change anything")
    if not actions and not args.status:
        raise UsageError("nothing to do: give fields to set, --status, --identify, --restart "
                         "or --factory-reset")
    t = make_transport(args)
    if args.frame_size:
        t.frame_size = args.frame_size
    await t.connect()
    client = P.ProvClient(t)
    try:
        if secret is None:  # --status alone: the plaintext INFO
            out.write(json.dumps(info_json(await client.info()), indent=2) + "\n")
            return 0
        await client.login(secret)
        if args.identify:
            await client.call(C.OP_IDENTIFY)
            err.write("identify: the charger's LED blinks\n")
        if small:
            await client.call(C.OP_SET, small)
        for tag, data, label in large:
            await client.call(C.OP_SET, [(tag, data)], progress=progress_bar(label, err))
        if small or large:
            _, recs = await client.call(C.OP_COMMIT)
            profile = recs.get(C.T_PROFILE, b"?")
            err.write("committed (security profile {}); the charger restarts\n".format(
                profile[0] if profile != b"?" else "?"))
        elif args.status:
            _, recs = await client.call(C.OP_GET_STATUS)
            out.write(json.dumps(status_json(recs), indent=2) + "\n")
        if args.factory_reset:
            await client.call(C.OP_FACTORY_RESET)
            err.write("factory reset: the charger wipes its settings and restarts\n")
        elif args.restart and not (small or large):
            await client.call(C.OP_RESTART)
            err.write("the charger restarts\n")
        return 0
    finally:
        await t.close()


def main(argv=None):
    args = parse_args(argv)
    try:
        return asyncio.run(run(args))
    except UsageError as e:
        sys.stderr.write("provision: {}\n".format(e))
        return EXIT_USAGE
    except P.Refused as e:
        sys.stderr.write("provision: refused: {}\n".format(e))
        return EXIT_REFUSED
    except (P.TransportError, C.ProtocolError) as e:
        sys.stderr.write("provision: link error: {}\n".format(e))
        return EXIT_LINK


if __name__ == "__main__":
    sys.exit(main())
