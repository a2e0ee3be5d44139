"""Persistent storage: the only code that writes files (architecture.md).

`Store` keeps small JSON records atomically (write new, flush/fsync, rename) with a CRC32 and a
previous good copy; `TxQueue` (store.queue) keeps transaction messages on flash, one file each.
"""

from store.files import Store  # noqa: F401
