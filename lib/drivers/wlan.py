"""Wi-Fi station link for the ESP32 boards: `net.link.SocketLink` that asks the WLAN.

`WlanLink(network)` takes the `network` module (passed in, so tests use a fake) and creates the
STA interface on first use. `connect_wifi(ssid, password)` starts a connection (non-blocking:
the ESP-IDF driver associates in the background); `keep()` is an asyncio task that re-issues
the connect when the station has been down for `_RETRY_MS`, because the driver gives up after
its own retry budget. Credentials come from the provisioning record and are never logged.
"""

import asyncio
from micropython import const

import log
from net.link import SocketLink

_RETRY_MS = const(30000)
_CHECK_MS = const(5000)


class WlanLink(SocketLink):
    def __init__(self, network, hostname=None):
        self.network = network
        self.hostname = hostname
        self.ssid = None
        self._password = None
        self._wlan = None

    def wlan(self):
        if self._wlan is None:
            self._wlan = self.network.WLAN(self.network.STA_IF)
        return self._wlan

    def isconnected(self):
        return bool(self.wlan().isconnected())

    def connect_wifi(self, ssid, password):
        """Start joining `ssid` (returns at once). False without an SSID."""
        if not ssid:
            return False
        self.ssid = ssid
        self._password = password or ""
        w = self.wlan()
        w.active(True)
        if self.hostname:
            try:
                self.network.hostname(self.hostname)
            except (AttributeError, ValueError, OSError):  # older firmware: keep the default
                pass
        try:
            w.connect(ssid, self._password)
        except OSError as e:  # e.g. "Wifi Internal Error" while a connect is running
            log.warn("wifi", "connect to %s failed: %s", ssid, e)
            return False
        log.info("wifi", "joining %s", ssid)
        return True

    async def keep(self, sleep_ms=None):
        """Task: re-issue the connect while the station stays down (runs until cancelled)."""
        sleep = sleep_ms or asyncio.sleep_ms
        down_ms = 0
        while True:
            await sleep(_CHECK_MS)
            if self.ssid is None or self.isconnected():
                down_ms = 0
                continue
            down_ms += _CHECK_MS
            if down_ms >= _RETRY_MS:
                down_ms = 0
                try:
                    self.wlan().disconnect()
                except OSError:
                    pass
                self.connect_wifi(self.ssid, self._password)
