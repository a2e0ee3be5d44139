"""update.ota against a fake esp32.Partition: block streaming, image checks, read-back, boot.

The real esp32 module exists only on the chip; the fake (host_tests/mp/_fwkit.py) keeps each
partition in a bytearray and records set_boot() and mark_app_valid_cancel_rollback().
"""
# mp-heapsize: 512K
# (the fake flash partitions live in this heap; the writer itself needs one 4 KB block)

from update import CorruptError, RefusedError
from update import ota
from update.install import Download
from _fwkit import FakeEsp32, esp_image, sha, store
from _check import raises


def write(esp, image, step):
    w = ota.ImageWriter(esp)
    for i in range(0, len(image), step):
        w.feed(image[i : i + step])
    return w, w.finish()


def test_image_streams_into_the_next_partition_in_any_chunking():
    image = esp_image(9000, version=b"v1.23.0-ota")
    for step in (1, 31, 32, 33, 1000, 4096, 9000):
        esp = FakeEsp32()
        w, res = write(esp, image, step)
        label, size, digest, version = res
        assert (label, size, version) == ("ota_1", 9000, "v1.23.0-ota"), res
        assert digest == sha(image)
        assert bytes(esp.spare.data[:9000]) == image
        assert bytes(esp.spare.data[9000:12288]) == b"\xff" * 3288  # last block padded
        assert esp.spare.writes == 3  # 4096-byte blocks only
        assert esp.booted is None  # nothing activated by writing
        w.activate()
        assert esp.booted == "ota_1"


def test_image_checks_refuse_what_would_not_boot_here():
    cases = [
        (esp_image(digest=False), RefusedError, "no appended SHA-256"),
        (esp_image(desc=False), RefusedError, "not an application image"),
        (esp_image(chip=9), RefusedError, "another chip"),
        (esp_image(40000), RefusedError, "larger than"),
    ]
    for image, exc, text in cases:
        raises(exc, lambda: write(FakeEsp32(), image, 1000), text)
    bad = bytearray(esp_image())
    bad[1] = 0
    raises(CorruptError, lambda: write(FakeEsp32(), bytes(bad), 1000), "segments")
    raises(CorruptError, lambda: write(FakeEsp32(), esp_image()[:100], 1000), "too short")


def test_a_flipped_byte_fails_the_appended_digest():
    bad = bytearray(esp_image(9000))
    bad[5000] ^= 1
    raises(CorruptError, lambda: write(FakeEsp32(), bytes(bad), 700), "digest mismatch")


def test_flash_that_does_not_keep_the_data_fails_the_read_back():
    esp = FakeEsp32()
    orig = esp.spare.writeblocks

    def flaky(n, buf):
        orig(n, buf)
        if n == 1:
            esp.spare.data[4096 + 10] ^= 0xFF

    esp.spare.writeblocks = flaky
    raises(CorruptError, lambda: write(esp, esp_image(9000), 512), "read-back")


def test_flash_write_errors_propagate():
    esp = FakeEsp32()
    esp.spare.fail_write_at = 1
    raises(OSError, lambda: write(esp, esp_image(9000), 512))


def test_no_ota_partition_is_refused():
    esp = FakeEsp32()
    esp.running.next = None
    raises(RefusedError, lambda: ota.ImageWriter(esp), "no OTA partition")


def test_verify_staged_after_a_restart():
    esp = FakeEsp32()
    _, (label, size, digest, _) = write(esp, esp_image(9000), 4096)
    assert ota.verify_staged(esp, label, size, digest) is not None
    assert ota.verify_staged(esp, "ota_0", size, digest) is None
    esp.spare.data[100] ^= 1
    assert ota.verify_staged(esp, label, size, digest) is None


def test_running_label_and_mark_valid():
    esp = FakeEsp32()
    assert ota.running_label(esp) == "ota_0"
    assert ota.mark_valid(esp) is True and esp.valid == 1


def test_full_image_download_through_the_sink():
    esp = FakeEsp32()
    d = Download(store(), None, esp32=esp)
    image = esp_image(9000)
    for i in range(0, len(image), 777):
        d.feed(image[i : i + 777])
    res = d.finish()
    assert res["kind"] == "image" and res["partition"] == "ota_1"
    assert res["size"] == 9000 and res["sha256"] == sha(image)


def test_no_esp32_module_on_the_unix_port():
    raises(RefusedError, ota.load_esp32, "need an ESP32")
