"""ICC v2 profiles written by hand for the colour tests (no profile files are committed
and Pillow can only create sRGB-like ones): Display P3 and Adobe RGB (1998) matrix/TRC
profiles, and a CMYK printer profile of a press model (see assets/README.md)."""

from __future__ import annotations

import struct

# D50-adapted colorant XYZ (as Apple's Display P3 and Adobe's own profiles store them).
DISPLAY_P3 = ((0.5151, 0.2412, -0.0011), (0.2919, 0.6922, 0.0419), (0.1572, 0.0666, 0.7841))
ADOBE_RGB = ((0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446))
D50 = (0.9642, 1.0, 0.8249)
SRGB_TRC = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)  # parametric curve type 3
ADOBE_GAMMA = 563 / 256  # 2.19921875, as a u8Fixed8 'curv'


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def _desc(text: str) -> bytes:
    ascii_ = text.encode() + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_)) + ascii_ + b"\0" * 4 + b"\0" * 4 + b"\0" * 3 + b"\0" * 67


def _trc(trc: tuple | float) -> bytes:
    if isinstance(trc, tuple):  # 'para' function 3 (LittleCMS reads it in any version)
        return b"para\0\0\0\0" + struct.pack(">H", 3) + b"\0\0" + b"".join(_s15(v) for v in trc)
    return b"curv\0\0\0\0" + struct.pack(">I", 1) + struct.pack(">H", round(trc * 256)) + b"\0\0"


def matrix_profile(name: str, colorants=DISPLAY_P3, trc=SRGB_TRC) -> bytes:
    """An RGB display profile: three colorants, one tone curve for all channels, D50 white."""
    tags = [(b"desc", _desc(name)), (b"wtpt", _xyz(*D50)), (b"cprt", b"text\0\0\0\0public domain\0")]
    tags += [(sig, _xyz(*c)) for sig, c in zip((b"rXYZ", b"gXYZ", b"bXYZ"), colorants)]
    tags += [(sig, _trc(trc)) for sig in (b"rTRC", b"gTRC", b"bTRC")]
    return _profile(b"mntrRGB XYZ ", tags)


def _profile(kind: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """A v2 profile: the 128-byte header (``kind``: class, colour space and PCS
    signatures), the tag table and the tags (4-byte aligned)."""
    table_len = 4 + 12 * len(tags)
    offset = 128 + table_len
    table, data = [], b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table.append(struct.pack(">4sII", sig, offset + len(data), len(body)))
        data += body
    size = 128 + table_len + len(data)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + kind + b"\0" * 12
              + b"acsp" + b"APPL" + b"\0" * 4 + b"\0" * 8 + b"\0" * 8 + struct.pack(">I", 0)
              + _s15(D50[0]) + _s15(D50[1]) + _s15(D50[2]) + b"\0" * 4 + b"\0" * 16 + b"\0" * 28)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(table) + data


P3_PROFILE = matrix_profile("Display P3 (test)")
ADOBE_PROFILE = matrix_profile("Adobe RGB (test)", ADOBE_RGB, ADOBE_GAMMA)


# ----------------------------------------------------------------------------- CMYK

def _cmyk_to_lab(c, m, y, k):
    """A press-like model (no real press): inks that absorb mostly their own band with some
    cross-talk, black, multiplied (subtractive), then XYZ (sRGB primaries, D50) -> CIELAB."""
    import numpy as np

    ink = np.array([[0.92, 0.28, 0.12], [0.10, 0.90, 0.30], [0.02, 0.08, 0.88]])  # rows C, M, Y; columns R, G, B bands
    cmy = np.stack([c, m, y], -1)
    lin = np.prod(1 - cmy[..., :, None] * ink, axis=-2) * (1 - 0.9 * k[..., None]) * 0.97 + 0.008
    to_xyz = np.array([[0.4361, 0.3851, 0.1431], [0.2225, 0.7169, 0.0606], [0.0139, 0.0971, 0.7141]])  # sRGB, D50
    xyz = lin @ to_xyz.T / np.array(D50)
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def cmyk_profile(name: str = "CMYK press model (test)", points: int = 11) -> bytes:
    """A v2 CMYK output profile with an A2B0 ``lut16`` (4 inputs -> Lab): a dot-gain input
    curve per ink (256 entries) and a ``points``^4 grid of :func:`_cmyk_to_lab` (LittleCMS
    interpolates it as it does a press profile's). Only A2B0 (CMYK -> PCS) is written:
    what a CMYK -> sRGB transform reads."""
    import numpy as np

    t = np.linspace(0, 1, 256)
    curve = 1 - (1 - t) ** 1.5  # dot gain: more ink than asked for in the mid-tones
    g = np.linspace(0, 1, points)
    c, m, y, k = np.meshgrid(g, g, g, g, indexing="ij")
    lab = _cmyk_to_lab(c, m, y, k).reshape(-1, 3)
    enc = np.stack([lab[:, 0] * 65280 / 100, (lab[:, 1] + 128) * 256, (lab[:, 2] + 128) * 256], -1)
    clut = np.clip(np.rint(enc), 0, 65535).astype(">u2")
    identity = struct.pack(">9i", 65536, 0, 0, 0, 65536, 0, 0, 0, 65536)
    body = (b"mft2\0\0\0\0" + struct.pack(">BBBB", 4, 3, points, 0) + identity + struct.pack(">HH", 256, 2)
            + np.tile(np.rint(curve * 65535).astype(">u2"), 4).tobytes() + clut.tobytes()
            + np.tile(np.array([0, 65535], ">u2"), 3).tobytes())
    tags = [(b"desc", _desc(name)), (b"wtpt", _xyz(*D50)), (b"cprt", b"text\0\0\0\0public domain\0"), (b"A2B0", body)]
    return _profile(b"prtrCMYKLab ", tags)


CMYK_PROFILE = cmyk_profile()
