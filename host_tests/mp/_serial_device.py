"""A provisioning device on stdin/stdout for host_tests/test_provision_serial.py (not a test).

Runs ProvService over provision.usb.SerialLink with the fakes of _provkit, in a fresh store
under argv[1]; prints console noise the host must skip; exits once a commit asked to restart.
"""

import asyncio
import sys

import _provkit as K
from provision.service import ProvService
from provision.usb import SerialLink

kit = K.Kit(root=sys.argv[1])
link = SerialLink()
svc = ProvService(kit.store, kit.board, kit.charger, link, stream=True, sync=True)


async def main():
    link.start(svc)
    svc.start()
    sys.stdout.write("I boot: console noise the host skips\r\n")
    while not kit.charger.restarts:
        await asyncio.sleep_ms(20)
    await asyncio.sleep_ms(100)
    link.stop()
    print("stored", kit.store.load("provisioning"))


asyncio.run(main())
