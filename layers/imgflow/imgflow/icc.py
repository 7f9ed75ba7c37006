"""ICC profiles imgflow makes itself, for images that name their colour space without embedding one."""

from __future__ import annotations

import struct
from functools import cache


@cache
def display_p3() -> bytes:
    """Display P3 as an ICC v2 matrix/TRC profile: Apple's D50-adapted colorants and the sRGB curve.

    A HEIC or AVIF may say "Display P3" with CICP code points (an `nclx` colour box: primaries 12,
    the sRGB transfer) instead of embedding Apple's profile; littleCMS needs a profile to convert it.
    """

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)

    description = b"Display P3 (imgflow)"
    srgb_curve = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
    trc = b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(s15(value) for value in srgb_curve)
    tags = {
        b"desc": b"desc\0\0\0\0" + struct.pack(">I", len(description) + 1) + description + b"\0" + bytes(12 + 67),
        b"cprt": b"text\0\0\0\0No copyright\0",
        b"wtpt": xyz(0.964203, 1.0, 0.824905),
        b"rXYZ": xyz(0.515121, 0.241196, -0.001053),
        b"gXYZ": xyz(0.291977, 0.692245, 0.041885),
        b"bXYZ": xyz(0.157104, 0.066574, 0.784073),
        b"rTRC": trc,
        b"gTRC": trc,
        b"bTRC": trc,
    }
    table_end = 128 + 4 + 12 * len(tags)
    directory, body = b"", b""
    for signature, data in tags.items():
        directory += signature + struct.pack(">II", table_end + len(body), len(data))
        body += data + bytes(-len(data) % 4)
    header = (
        struct.pack(">I", table_end + len(body))
        + bytes(4)
        + bytes([2, 0x10, 0, 0])  # version 2.1
        + b"mntrRGB XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(28)
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + bytes(48)
    )
    return header + struct.pack(">I", len(tags)) + directory + body


def cicp(profile: bytes) -> tuple[int, int, int] | None:
    """The colour primaries, transfer and matrix that a profile's `cicp` tag (ICC.1:2022) names, if it has one.

    HDR profiles (BT.2100 PQ or HLG) carry one: their curves are beyond what littleCMS's matrix/TRC
    conversion can do, and the tag says what the values are.
    """
    if len(profile) < 132:
        return None
    count = int.from_bytes(profile[128:132], "big")
    for entry in range(132, min(132 + 12 * count, len(profile) - 11), 12):
        if profile[entry : entry + 4] == b"cicp":
            offset = int.from_bytes(profile[entry + 4 : entry + 8], "big")
            tag = profile[offset : offset + 12]
            if len(tag) == 12 and tag[:4] == b"cicp":
                return tag[8], tag[9], tag[10]
    return None
