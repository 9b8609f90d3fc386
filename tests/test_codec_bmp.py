"""gpuimg.codec.bmp (16/32-bit and bitfields BMPs) against Pillow, on files built here.

Pillow writes only 1/8/24-bit and 32-bit BI_RGB BMPs, so every variant is built byte by
byte with struct (:func:`_bmp`). Where Pillow decodes a variant the result must match it
pixel for pixel; masks Pillow refuses are checked against a per-pixel reference
(:func:`_reference`) that applies Pillow's own scaling ``v * 255 // (2**n - 1)``.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest

import gpuimg
from gpuimg.codec import bmp
from gpuimg.errors import DecodeError

PIL = pytest.importorskip("PIL")
from PIL import Image as PILImage  # noqa: E402

RGB555 = (0x7C00, 0x03E0, 0x001F)
RGB565 = (0xF800, 0x07E0, 0x001F)
BGRX = (0xFF0000, 0xFF00, 0xFF)
BGRA = (0xFF0000, 0xFF00, 0xFF, 0xFF000000)
# The 32-bit mask layouts Pillow 13 decodes (BmpImagePlugin SUPPORTED), alpha last.
PILLOW_32 = [
    (0xFF0000, 0xFF00, 0xFF, 0x0),
    (0xFF000000, 0xFF0000, 0xFF00, 0x0),
    (0xFF000000, 0xFF00, 0xFF, 0x0),
    (0xFF000000, 0xFF0000, 0xFF00, 0xFF),
    (0xFF, 0xFF00, 0xFF0000, 0xFF000000),
    (0xFF0000, 0xFF00, 0xFF, 0xFF000000),
    (0xFF000000, 0xFF00, 0xFF, 0xFF0000),
]
# Masks Pillow refuses, after bmpsuite's q/ files (name: bits, masks r, g, b, a).
ODD_MASKS = {
    "rgb16-231": (16, (0x0030, 0x000E, 0x0001, 0)),
    "rgb16-3103": (16, (0xE000, 0x1FF8, 0x0007, 0)),
    "rgba16-4444": (16, (0x0F00, 0x00F0, 0x000F, 0xF000)),
    "rgba16-1924": (16, (0x0800, 0x07FC, 0x0003, 0xF000)),
    "rgb16-bgr565": (16, (0x001F, 0x07E0, 0xF800, 0)),
    "rgb24-rgb": (24, (0x0000FF, 0x00FF00, 0xFF0000, 0)),
    "rgb24-444": (24, (0x000F00, 0x0000F0, 0x00000F, 0)),
    "rgb32-111110": (32, (0xFFE00000, 0x001FFC00, 0x000003FF, 0)),
    "rgba32-1010102": (32, (0x3FF00000, 0x000FFC00, 0x000003FF, 0xC0000000)),
    "rgba32-81284": (32, (0xFF000000, 0x00FFF000, 0x00000FF0, 0x0000000F)),
    "rgba32-61754": (32, (0xFC000000, 0x03FFFE00, 0x000001F0, 0x0000000F)),
    "rgb32-one-bit": (32, (0x1, 0x2, 0x4, 0)),
    "rgb32-no-green": (32, (0xFF0000, 0x0, 0xFF, 0)),
    "rgba32-abgr-wide": (32, (0x000003FF, 0x000FFC00, 0x3FF00000, 0xC0000000)),
}


def _bmp(
    pixels: np.ndarray,
    bits: int,
    compression: int = 0,
    masks: tuple[int, ...] | None = None,
    hsize: int = 40,
    *,
    top_down: bool = False,
    offset: int | None = None,
    gap: bytes = b"",
) -> bytes:
    """A BMP file of the (H, W) pixel integers ``pixels``, top row first.

    ``masks`` go after a 40-byte header (BI_BITFIELDS: 3, BI_ALPHABITFIELDS: 4) or
    inside a longer one (V2: 3, V3+: 4). ``gap``: bytes between masks and pixels.
    """
    h, w = pixels.shape
    nbytes = bits // 8
    stride = (w * bits + 31) // 32 * 4
    stored = pixels if top_down else pixels[::-1]
    raw = stored.astype("<u4").view(np.uint8).reshape(h, w, 4)[:, :, :nbytes].reshape(h, w * nbytes)
    body = np.zeros((h, stride), np.uint8)
    body[:, : w * nbytes] = raw
    info = struct.pack("<IiiHHIIiiII", hsize, w, -h if top_down else h, 1, bits, compression, h * stride, 2835, 2835, 0, 0)
    extra = b""
    if masks is not None:
        if hsize == 40:
            count = 4 if compression == 6 else 3
            extra = struct.pack(f"<{count}I", *(tuple(masks) + (0,))[:count])
        else:
            count = 3 if hsize == 52 else 4
            info += struct.pack(f"<{count}I", *(tuple(masks) + (0,))[:count])
    info = info.ljust(hsize, b"\0")
    pos = 14 + len(info) + len(extra) + len(gap)
    file_head = b"BM" + struct.pack("<IHHI", pos + body.nbytes, 0, 0, pos if offset is None else offset)
    return file_head + info + extra + gap + body.tobytes()


def _pil(data: bytes, mode: str) -> np.ndarray:
    with PILImage.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert(mode))


def _random(h: int, w: int, bits: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pix = rng.integers(0, 1 << bits, size=(h, w), dtype=np.uint64)
    pix[0, 0] = (1 << bits) - 1  # white and black are always in
    pix[-1, -1] = 0
    return pix.astype(np.uint32)


def _reference(pixels: np.ndarray, masks: tuple[int, ...]) -> np.ndarray:
    """Per pixel, in plain Python: each mask's bits scaled as Pillow scales 5/6-bit ones."""
    used = [m for k, m in enumerate(masks) if k < 3 or m]
    out = np.zeros((*pixels.shape, len(used)), np.uint8)
    for (y, x), p in np.ndenumerate(pixels):
        for c, m in enumerate(used):
            if m:
                shift = (m & -m).bit_length() - 1
                top = m >> shift
                out[y, x, c] = ((int(p) & m) >> shift) * 255 // top
    return out


def _check(data: bytes, expected: np.ndarray) -> None:
    assert bmp.needs_own_decoder(data)
    head = bmp.header(data)
    got = bmp.decode(data, "test.bmp")
    assert got.dtype == np.uint8 and got.shape == expected.shape
    assert (head.height, head.width, head.channels) == got.shape
    np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------------- against Pillow
SIZES = [(1, 1), (2, 3), (3, 5), (4, 1), (5, 7), (16, 33)]


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("top_down", [False, True])
@pytest.mark.parametrize("hsize", [40, 108, 124])
def test_16bit_bi_rgb_matches_pillow(hw, top_down, hsize):
    pix = _random(*hw, 16)
    data = _bmp(pix, 16, 0, None if hsize == 40 else RGB565, hsize, top_down=top_down)  # BI_RGB ignores masks
    _check(data, _pil(data, "RGB"))


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("masks", [RGB555, RGB565], ids=["555", "565"])
@pytest.mark.parametrize("hsize", [40, 52, 56, 108, 124])
def test_16bit_bitfields_match_pillow(hw, masks, hsize):
    pix = _random(*hw, 16, seed=hsize)
    data = _bmp(pix, 16, 3, masks, hsize, top_down=hw[0] % 2 == 1)
    _check(data, _pil(data, "RGB"))


def test_16bit_white_stays_255_and_scaling_is_pillows():
    """Every 5- and 6-bit value, as Pillow expands it (v * 255 // max: truncating)."""
    v = np.arange(64, dtype=np.uint32)
    pix = ((v % 32) << 11 | v << 5 | (v % 32))[None]
    got = bmp.decode(_bmp(pix, 16, 3, RGB565), "ramp.bmp")
    np.testing.assert_array_equal(got, _pil(_bmp(pix, 16, 3, RGB565), "RGB"))
    assert got[0, 63].tolist() == [255, 255, 255]
    np.testing.assert_array_equal(got[0, :, 1], v * 255 // 63)
    assert got[0, 4, 1] == 16  # 4 * 255 / 63 = 16.19 and 2 * 255 / 31 = 16.45: truncated, not rounded
    assert got[0, 2, 0] == 16


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("hsize", [40, 56, 108, 124])
def test_32bit_bi_rgb_is_rgb_like_pillow(hw, hsize):
    """The fourth byte of 32-bit BI_RGB is not alpha (bmpsuite q/rgb32fakealpha)."""
    pix = _random(*hw, 32, seed=hw[1])
    data = _bmp(pix, 32, 0, BGRA if hsize > 40 else None, hsize, top_down=hw[1] % 2 == 0)
    expected = _pil(data, "RGB")
    _check(data, expected)
    assert bmp.header(data).has_alpha is False


@pytest.mark.parametrize("masks", PILLOW_32, ids=lambda m: "-".join(f"{v:x}" for v in m))
@pytest.mark.parametrize("hsize", [40, 52, 56, 108, 124])
@pytest.mark.parametrize("top_down", [False, True])
def test_32bit_bitfields_match_pillow(masks, hsize, top_down):
    """Alpha where the header holds a non-zero alpha mask (56+ bytes); 40/52 hold none."""
    pix = _random(5, 3, 32, seed=hsize)
    data = _bmp(pix, 32, 3, masks, hsize, top_down=top_down)
    held = (*masks[:3], masks[3] if hsize >= 56 else 0)
    if held not in PILLOW_32:  # RGBA order without its alpha mask: Pillow refuses the layout
        _check(data, _reference(pix, held))
        return
    mode = "RGBA" if held[3] else "RGB"
    assert PILImage.open(io.BytesIO(data)).mode == mode
    _check(data, _pil(data, mode))


def test_32bit_zero_masks_read_as_bgra_like_pillow():
    pix = _random(3, 5, 32)
    for hsize in (40, 124):
        data = _bmp(pix, 32, 3, (0, 0, 0, 0), hsize)
        _check(data, _pil(data, "RGBA"))


def test_24bit_bitfields_match_pillow():
    pix = _random(3, 5, 24)
    data = _bmp(pix, 24, 3, BGRX)
    _check(data, _pil(data, "RGB"))


def test_v2_v3_headers_like_bmpsuite_rgb32h52_rgba32h56():
    pix = _random(4, 6, 32)
    data = _bmp(pix, 32, 3, BGRX, 52)  # q/rgb32h52.bmp
    _check(data, _pil(data, "RGB"))
    data = _bmp(pix, 32, 3, BGRA, 56)  # q/rgba32h56.bmp
    _check(data, _pil(data, "RGBA"))


def test_16bit_alpha_mask_keeps_alpha_colours_match_pillow():
    """q/rgba16-1555: Pillow drops the alpha mask of 16-bit files; its colours must match."""
    pix = _random(4, 5, 16)
    data = _bmp(pix, 16, 3, (*RGB555, 0x8000), 124)
    got = bmp.decode(data, "rgba16-1555.bmp")
    assert got.shape == (4, 5, 4)
    np.testing.assert_array_equal(got[..., :3], _pil(data, "RGB"))
    np.testing.assert_array_equal(got[..., 3], np.where(pix >= 0x8000, 255, 0))


def test_alphabitfields_matches_pillow_bitfields():
    """BI_ALPHABITFIELDS (Pillow refuses it) decodes as the same masks under BI_BITFIELDS."""
    pix = _random(3, 4, 32)
    for masks in PILLOW_32:
        data = _bmp(pix, 32, 6, masks, 40)  # q/rgba32abf.bmp: four masks after a 40-byte header
        same = _bmp(pix, 32, 3, masks, 124)
        _check(data, _pil(same, "RGBA" if masks[3] else "RGB"))


def test_32bit_masks_of_16bit_width_match_pillow_16bit():
    """The scaling does not depend on the pixel size: 5-bit masks in a 32-bit pixel."""
    pix = _random(3, 7, 16)
    wide = (pix << 16) | 0xABCD  # the same bits moved up, junk below
    data = _bmp(wide.astype(np.uint32), 32, 3, tuple(m << 16 for m in RGB565), 40)
    _check(data, _pil(_bmp(pix, 16, 3, RGB565), "RGB"))


@pytest.mark.parametrize("name", list(ODD_MASKS))
def test_odd_masks_scale_like_pillow(name):
    bits, masks = ODD_MASKS[name]
    pix = _random(3, 5, bits, seed=len(name))
    for hsize, compression in ((124, 3), (40, 6)):
        data = _bmp(pix, bits, compression, masks, hsize, top_down=compression == 6)
        _check(data, _reference(pix, masks))


def test_every_value_of_odd_masks():
    """All 2**12 values of a 4-4-4 and the extremes of 10/11/17-bit channels."""
    v = np.arange(4096, dtype=np.uint32).reshape(64, 64)
    masks = (0x0F00, 0x00F0, 0x000F, 0)
    got = bmp.decode(_bmp(v, 16, 3, masks, 124), "444.bmp")
    np.testing.assert_array_equal(got, _reference(v, masks))
    assert set(np.unique(got).tolist()) == {k * 17 for k in range(16)}
    top = np.array([[0xFFFFFFFF, 0]], np.uint32)
    for _, m in (ODD_MASKS["rgb32-111110"], ODD_MASKS["rgba32-61754"]):
        got = bmp.decode(_bmp(top, 32, 3, m, 124), "wide.bmp")
        assert (got[0, 0] == 255).all() and (got[0, 1] == 0).all()


def test_gpuimg_encoder_rgba_bmp_keeps_alpha():
    """gpuimg's encoder writes RGBA as a V5 BI_BITFIELDS BGRA file: it decodes with alpha."""
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, size=(7, 5, 4), dtype=np.uint8)
    data = bytes(gpuimg.Encoder("cpu").encode(gpuimg.Image.from_array(arr, device="cpu"), "bmp"))
    head = bmp.header(data)
    assert (head.compression, head.masks, head.has_alpha) == (3, BGRA, True)
    _check(data, arr)
    np.testing.assert_array_equal(_pil(data, "RGBA"), arr)


def test_pillow_rgba_bmp_is_rgb_as_pillow_reads_it():
    """Pillow writes RGBA as 32-bit BI_RGB and reads it back as RGB: so does this module."""
    arr = np.random.default_rng(2).integers(0, 256, size=(3, 4, 4), dtype=np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, "BMP")
    _check(buf.getvalue(), arr[..., :3])


# ---------------------------------------------------------------------- layout details
def test_buffers_offsets_and_missing_last_padding():
    pix = _random(3, 3, 16)  # 6 bytes a row, 2 of padding
    data = _bmp(pix, 16, 3, RGB565, 40, gap=b"\xee" * 10)  # a colour table or junk before the pixels
    expected = _pil(data, "RGB")
    for form in (data, bytearray(data), memoryview(data), np.frombuffer(data, np.uint8)):
        assert bmp.needs_own_decoder(form)
        np.testing.assert_array_equal(bmp.decode(form, "buf.bmp"), expected)
    np.testing.assert_array_equal(bmp.decode(data[:-2], "nopad.bmp"), expected)
    zero = _bmp(pix, 16, 3, RGB565, 40, offset=0)  # offset 0: pixels right after the masks
    np.testing.assert_array_equal(bmp.decode(zero, "zero.bmp"), expected)


def test_large_image_paths_are_vectorised():
    """Several conversion chunks (256K pixels each) and both top-down and bottom-up rows."""
    pix = _random(1100, 1000, 32)
    for masks in (BGRA, ODD_MASKS["rgba32-1010102"][1]):
        data = _bmp(pix, 32, 3, masks, 124, top_down=masks == BGRA)
        got = bmp.decode(data, "big.bmp")
        if masks == BGRA:
            np.testing.assert_array_equal(got, _pil(data, "RGBA"))
        else:
            np.testing.assert_array_equal(got[[0, 549, 1099]], _reference(pix[[0, 549, 1099]], masks))


# ---------------------------------------------------------------------- not owned
def _pil_bytes(mode: str, fmt: str = "BMP", **kwargs) -> bytes:
    buf = io.BytesIO()
    PILImage.new(mode, (3, 2), 7 if mode in ("1", "L", "P") else (1, 2, 3)).save(buf, fmt, **kwargs)
    return buf.getvalue()


def _with(data: bytes, at: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


def test_variants_left_to_nvimagecodec():
    rgb24 = _pil_bytes("RGB")
    others = {
        "24-bit": rgb24,
        "8-bit": _pil_bytes("P"),
        "gray 8-bit": _pil_bytes("L"),
        "1-bit": _pil_bytes("1"),
        "RLE8": _with(_pil_bytes("P"), 30, "<I", 1),
        "BI_JPEG": _with(rgb24, 30, "<I", 4),
        "BI_PNG": _with(rgb24, 30, "<I", 5),
        "OS/2 v1": b"BM" + struct.pack("<IHHI", 32, 0, 0, 26) + struct.pack("<IHHHH", 12, 1, 1, 1, 32) + bytes(4),
        "OS/2 v2": _with(_with(rgb24, 14, "<I", 64), 28, "<H", 32),
        "64-bit": _with(rgb24, 28, "<H", 64),
        "PNG": _pil_bytes("RGB", "PNG"),
        "short": _bmp(_random(2, 2, 32), 32)[:33],
        "empty": b"",
    }
    for name, data in others.items():
        assert not bmp.needs_own_decoder(data), name
        assert bmp.header(data) is None, name
        with pytest.raises(DecodeError, match="other.bmp"):
            bmp.decode(data, "other.bmp")
    assert not bmp.needs_own_decoder(None) and not bmp.needs_own_decoder(12)


# ---------------------------------------------------------------------- errors
def _bad(data: bytes, reason: str) -> None:
    assert bmp.needs_own_decoder(data)
    with pytest.raises(DecodeError, match=rf"cannot decode bad\.bmp: .*{reason}") as info:
        bmp.decode(data, "bad.bmp")
    assert info.value.source == "bad.bmp"


def test_truncated_data_is_an_error():
    data = _bmp(_random(3, 3, 16), 16, 3, RGB565)
    _bad(data[:-3], "truncated")  # a pixel of the last stored row missing
    _bad(data[:70], "pixel data is truncated")
    _bad(data[:40], "header is truncated|masks are truncated")
    _bad(data[:58], "masks are truncated")
    _bad(_with(data, 10, "<I", len(data)), "truncated")  # pixels said to start at the end
    _bad(_bmp(_random(2, 2, 32), 32)[:34], "header is truncated")


@pytest.mark.parametrize(
    ("bits", "masks", "reason"),
    [
        (16, (0xF000, 0x0F00, 0x00A0), "not one run of bits"),
        (16, (0xF800, 0x0FE0, 0x001F), "overlaps"),
        (16, (0x1F0000, 0x07E0, 0x001F), "reaches past the 16-bit pixel"),
        (24, (0xFF000000, 0xFF00, 0xFF), "reaches past the 24-bit pixel"),
        (16, (0, 0, 0), "all zero"),
        (32, (0, 0, 0, 0xFF000000), "all zero"),
        (32, (0xFF0000, 0xFF00, 0xFF, 0x80FF0000), "alpha mask .* overlaps|not one run"),
    ],
)
def test_bad_masks_are_errors(bits, masks, reason):
    data = _bmp(_random(2, 2, bits), bits, 3, masks, 124)
    _bad(data, reason)
    if bits != 24 and masks[3:] in ((), (0,)):
        with pytest.raises(OSError):  # Pillow refuses them too
            _pil(data, "RGB")


def test_bad_sizes_are_errors():
    data = _bmp(_random(2, 2, 32), 32, 3, BGRA, 124)
    _bad(_with(data, 18, "<i", 0), "impossible size 0x2")
    _bad(_with(data, 18, "<i", -2), "impossible size -2x2")
    _bad(_with(data, 22, "<i", 0), "impossible size 2x0")
    _bad(_with(data, 22, "<i", -(2**31)), "impossible size")
    huge = _with(_with(data, 18, "<i", 1 << 16), 22, "<i", -(1 << 15))  # 2**31 pixels: not allocated
    _bad(huge, "claims 65536x32768 pixels")
    _bad(_with(_with(data, 18, "<i", 1 << 15), 22, "<i", 1 << 14), "truncated")  # 2 GiB, not huge: truncated
    _bad(_with(data, 28, "<H", 8), "16, 24 or 32 bits per pixel, not 8")
    assert bmp.header(_with(data, 18, "<i", 5), "x.bmp").width == 5  # header() needs no pixels
    with pytest.raises(DecodeError, match="x.bmp"):
        bmp.header(_with(data, 18, "<i", 0), "x.bmp")
