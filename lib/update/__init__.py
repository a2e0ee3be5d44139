"""Firmware updates: application bundles, full ESP32 images, app-dir selection and rollback.

A rare feature (architecture.md): nothing here is imported at boot except `update.apps`, which
main.py uses to choose the application directory. Modules: `bundle` (sans-I/O bundle parser),
`apps` (active app record, trial boots, rollback), `ota` (full image into an esp32.Partition),
`install` (download sinks that stage either kind), `manager` (the UpdateFirmware job),
`diagnostics` (the GetDiagnostics upload). The two error families decide what the CSMS is told.
"""


class CorruptError(ValueError):
    """The downloaded bytes are not a valid image (hash, size, truncation, syntax): worth a
    retry; after the last attempt the charger reports DownloadFailed."""


class RefusedError(ValueError):
    """A well-formed image this charger cannot install (wrong kind, chip, .mpy version, no
    space, already running): no retry, the charger reports InstallationFailed."""
