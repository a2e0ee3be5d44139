# Frozen-bytecode manifest for an ESP32 MicroPython build with this firmware inside.
#
# Bytecode loaded from the filesystem lives in the heap (about 224 K on a 32-bit heap for the
# whole firmware, `make bench`); frozen into the firmware image it runs from flash and the heap
# keeps only data. Build MicroPython with (see README "Memory"):
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/abs/path/firmware/manifest.py
# boot.py and main.py stay on the filesystem (MicroPython runs them by name).
include("$(PORT_DIR)/boards/manifest.py")

for _pkg in ("charger", "drivers", "evse", "net", "ocpp16", "provision", "store", "update"):
    package(_pkg, base_path="../lib", opt=1)
for _mod in ("clock.py", "log.py"):
    module(_mod, base_path="../lib", opt=1)
package(
    "boards",
    files=("__init__.py", "esp32_common.py", "esp32_parts.py", "esp32_devkitc.py", "esp32_s3.py"),
    base_path="..",
    opt=1,
)
