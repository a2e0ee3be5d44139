"""Provisioning over USB serial: the console's stdin/stdout carry the frames between log lines.

The same frames as BLE and the simulator's TCP port, each preceded by the sync marker and a
u16 length (provisioning.md section 3), so the host (tools/provision.py --serial) skips the
firmware's log output, and the charger skips whatever else arrives on its console. Ctrl-C
(0x03) would interrupt the firmware, so keyboard interrupts are off while the link runs.
Run it with ProvService(..., stream=True, sync=True); one connection (id 0) that never ends.
"""

import asyncio
import sys
from micropython import const

import log

_READ = const(256)


class SerialLink:
    def __init__(self, inp=None, out=None):
        self.inp = inp
        self.out = out
        self.service = None
        self._task = None

    def start(self, service):
        import micropython

        self.service = service
        self.inp = self.inp or sys.stdin.buffer
        self.out = self.out or sys.stdout.buffer
        micropython.kbd_intr(-1)  # binary frames may hold 0x03
        service.open(0)
        self._task = asyncio.create_task(self._read())

    async def _read(self):
        # A console read(n) blocks until n bytes came: wait for one byte through asyncio, then
        # take what poll() says is already there, up to _READ bytes.
        import select

        reader = asyncio.StreamReader(self.inp)
        poll = select.poll()
        poll.register(self.inp, select.POLLIN)
        buf = bytearray(_READ)
        mv = memoryview(buf)
        while True:
            first = await reader.read(1)
            if not first:
                log.warn("usb", "console input closed")
                self.service.closed(0)
                return
            buf[0] = first[0]
            n = 1
            while n < _READ and poll.poll(0):
                b = self.inp.read(1)
                if not b:
                    break
                buf[n] = b[0]
                n += 1
            self.service.data(0, mv[:n])
            if 0 not in self.service.sessions:  # the session ended: the next one starts clean
                self.service.open(0)

    def send(self, conn, data):
        self.out.write(data)
        flush = getattr(self.out, "flush", None)
        if flush is not None:
            flush()

    def close(self, conn):
        pass  # a console cannot hang up; a new session starts with the next frames

    def stop(self):
        import micropython

        if self._task is not None:
            self._task.cancel()
        micropython.kbd_intr(3)
