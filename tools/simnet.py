"""The simulated Wi-Fi and internet: a CONNECT gateway that splices the firmware's sockets.

The firmware's link connects to the gateway port, sends one line `CONNECT <host> <port>\\n` and
gets `OK\\n` (then bytes flow both ways untouched, TLS included), `ERR offline\\n` (network cut),
`ERR dns <text>\\n`, `ERR tcp <text>\\n` or `ERR request <text>\\n`. `cut()` drops every spliced
connection at once on both sides, so the charger and the CSMS both see the link die. Used by
`tools/sim.py`; the request line is bounded (GATEWAY_LINE_MAX) and every step has a timeout.
"""

import asyncio
import socket

CONNECT_TIMEOUT_S = 10.0
GATEWAY_LINE_MAX = 1024  # longest CONNECT line
PUMP_CHUNK = 65536


def _one_line(error, default):
    text = str(error) if error is not None else ""
    return " ".join(text.split()) or default


class Gateway:
    """asyncio server handler; `is_up()` says whether the network is up, `log(text)` reports."""

    def __init__(self, is_up, log):
        self.is_up = is_up
        self.log = log
        self.splices = set()  # (firmware writer, remote writer) pairs

    async def client(self, reader, writer):
        """Serve one firmware connection: the CONNECT line, then the splice."""
        remote = None
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), CONNECT_TIMEOUT_S)
            remote = await self._connect(line, writer)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        if remote is None:
            writer.close()
            return
        r_reader, r_writer = remote
        pair = (writer, r_writer)
        self.splices.add(pair)
        try:
            await asyncio.gather(self._pump(reader, r_writer, writer),
                                 self._pump(r_reader, writer, r_writer))
        finally:
            self.splices.discard(pair)
            writer.close()
            r_writer.close()

    async def _connect(self, line, writer):
        """Answer a CONNECT line; returns the remote (reader, writer) after `OK`, else None."""
        parts = line[:GATEWAY_LINE_MAX].decode("ascii", "replace").split()
        if (len(parts) != 3 or parts[0] != "CONNECT" or not parts[2].isdigit()
                or not 0 < int(parts[2]) < 65536):
            writer.write(b"ERR request expected CONNECT <host> <port>\n")
            return None
        host, port = parts[1], int(parts[2])
        if not self.is_up():
            writer.write(b"ERR offline\n")
            return None
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as e:
            writer.write("ERR dns {}\n".format(_one_line(e, "timeout")).encode())
            return None
        error = None
        for family, _, _, _, addr in infos:
            try:
                remote = await asyncio.wait_for(
                    asyncio.open_connection(addr[0], addr[1], family=family), CONNECT_TIMEOUT_S)
                break
            except (OSError, asyncio.TimeoutError) as e:
                error = e
        else:
            writer.write("ERR tcp {}\n".format(_one_line(error, "timeout")).encode())
            return None
        if not self.is_up():  # cut while connecting
            remote[1].transport.abort()
            writer.write(b"ERR offline\n")
            return None
        self.log("gateway: connected to {}:{}".format(host, port))
        writer.write(b"OK\n")
        return remote

    async def _pump(self, src, dst, src_writer):
        # One direction; EOF is passed on as a half close, an error drops both sides.
        try:
            while True:
                data = await src.read(PUMP_CHUNK)
                if not data:
                    break
                dst.write(data)
                await dst.drain()
            if dst.can_write_eof() and not dst.is_closing():
                dst.write_eof()
        except (ConnectionError, OSError, RuntimeError):
            dst.transport.abort()
            src_writer.transport.abort()

    def cut(self):
        """Drop every spliced connection at once, on both sides."""
        for fw_writer, remote_writer in list(self.splices):
            fw_writer.transport.abort()
            remote_writer.transport.abort()
        if self.splices:
            self.log("network cut: {} connection(s) dropped".format(len(self.splices)))
        self.splices.clear()
