"""BLE provisioning as a boot mode of its own on the ESP32: never BLE and TLS at the same time.

provisioning.md section 7: BLE plus mbedTLS does not fit in the ESP32's RAM. `RadioMode` decides
at boot: provisioning mode when the charger is unprovisioned or the last boot left the
`.prov_boot` mark (the service button was pressed while the CSMS link ran). In that mode the
charger's CSMS connection is held (`charger.hold_csms`, so no TLS starts), the BLE link
advertises, and when the window runs out unused the charger restarts into normal mode; a
commit or reset restarts it too (ProvService). In normal mode the radio stays off, and a
button press writes the mark and restarts. The simulator needs none of this (no radio): its
board runs ProvService beside the CSMS link. `link_factory()` builds the BLE link
(provision.ble.BLELink on the device, a fake in tests).
"""

import asyncio
from micropython import const

import log
from provision import storage
from provision.service import ProvService

BOOT_MARK = ".prov_boot"  # a dot name: kept by a factory reset (the window it asked for)
_POLL_MS = const(250)


class RadioMode:
    def __init__(self, store, board, charger, link_factory, firmware_version=None):
        self.store = store
        self.board = board
        self.charger = charger
        self.link_factory = link_factory
        self.firmware_version = firmware_version
        self.service = None
        self.link = None
        self.provisioning = False

    def boot(self):
        """Call once at boot, before the CSMS link starts. True: provisioning mode."""
        rec = storage.load(self.store)
        unprovisioned = not (rec.get("url") and rec.get("cp_id"))
        marked = self.store.load(BOOT_MARK) is not None
        if marked:
            self.store.delete(BOOT_MARK)  # one-shot: a crash loop cannot keep the radio on
        if not (unprovisioned or marked):
            return False
        self.provisioning = True
        self.charger.hold_csms = "provisioning over BLE"
        if marked:
            self.board.open_window(60000)
        self.link = self.link_factory()
        self.service = ProvService(self.store, self.board, self.charger, self.link, stream=False,
                                   frame_size=20, firmware_version=self.firmware_version)
        self.link.allowed = self.service.prov.window_open
        self.link.start(self.service)
        self.service.start()
        log.info("provision", "boot mode: BLE provisioning (%s)",
                 "unprovisioned" if unprovisioned else "service button")
        return True

    async def run(self):
        """Task: leave provisioning mode when its window closes; enter it on a button press."""
        while True:
            await asyncio.sleep_ms(_POLL_MS)
            if self.step():
                return

    def step(self):
        """One poll; True once a restart was requested."""
        if self.provisioning:
            prov = self.service.prov
            if not prov.window_open() and not prov.sessions and self.service.pending is None:
                self.link.stop()
                self.charger.request_restart("provisioning window closed")
                return True
            return False
        if self.board.provisioning_window():
            try:
                self.store.save(BOOT_MARK, {"v": 1})
            except OSError as e:
                log.error("provision", "cannot enter provisioning mode: %s", e)
                return False
            self.charger.request_restart("service button: provisioning mode")
            return True
        return False
