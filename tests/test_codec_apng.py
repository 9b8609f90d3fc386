"""gpuimg.codec.apng.default_image against Pillow's frame 0, on APNGs Pillow writes here.

Pillow's frame 0 (``Image.open(f)`` without a seek) is the default image, the IDAT one,
both when it is the first animation frame (``default_image=False``) and when it is not
part of the animation (``default_image=True``, ``info["default_image"]``).
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest

import gpuimg
from gpuimg.codec.apng import default_image

PIL = pytest.importorskip("PIL")
from PIL import Image as PILImage  # noqa: E402
from PIL import PngImagePlugin  # noqa: E402

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _frames(mode: str, n: int = 3, size: tuple[int, int] = (7, 5)) -> list[PILImage.Image]:
    """``n`` different frames (each differs everywhere from the others)."""
    rng = np.random.default_rng(len(mode))
    base = rng.integers(0, 200, size=(size[1], size[0], 4), dtype=np.uint8)
    frames = []
    for k in range(n):
        arr = base + np.uint8(20 * k)
        im = PILImage.fromarray(arr, "RGBA")
        frames.append(im.convert(mode) if mode != "P" else im.convert("RGB").quantize(16))
    return frames


def _apng(mode: str, default: bool, n: int = 3, text: bool = True) -> bytes:
    frames = _frames(mode, n + 1)
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("Comment", "kept")
    buf = io.BytesIO()
    frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:], default_image=default, pnginfo=info, duration=40)
    return buf.getvalue()


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(kind, whole chunk bytes) of a well-formed PNG, in order."""
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append((data[pos + 4 : pos + 8], data[pos : pos + 12 + length]))
        pos += 12 + length
    return out


def _chunk(kind: bytes, body: bytes = b"") -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _pil_frame0(data: bytes, mode: str = "RGBA") -> np.ndarray:
    with PILImage.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert(mode))


@pytest.mark.parametrize("mode", ["RGBA", "RGB", "L", "P"])
@pytest.mark.parametrize("default", [False, True], ids=["idat-is-frame-0", "idat-not-in-animation"])
def test_default_image_is_pillows_frame_0(mode, default):
    data = _apng(mode, default)
    with PILImage.open(io.BytesIO(data)) as im:
        assert im.is_animated and im.info.get("default_image", False) is default
    still = default_image(data)
    assert still is not None and still.startswith(SIGNATURE)
    frame0 = _pil_frame0(data)
    with PILImage.open(io.BytesIO(still)) as im:
        assert not getattr(im, "is_animated", False)
        np.testing.assert_array_equal(np.asarray(im.convert("RGBA")), frame0)
    # nvImageCodec (through gpuimg) now shows the default image too.
    got = gpuimg.Decoder("cpu").decode(still, mode="rgba").numpy()
    np.testing.assert_array_equal(got, frame0)


def test_chunks_are_copied_byte_exact_in_order():
    data = _apng("RGBA", True)
    still = default_image(data)
    kept = [whole for kind, whole in _chunks(data) if kind not in (b"acTL", b"fcTL", b"fdAT")]
    assert still == SIGNATURE + b"".join(kept)
    kinds = [kind for kind, _ in _chunks(still)]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"tEXt" in kinds and b"IDAT" in kinds
    assert {b"acTL", b"fcTL", b"fdAT"}.isdisjoint(kinds)


def test_frames_differ_so_the_test_can_tell_them_apart():
    data = _apng("RGB", False)
    with PILImage.open(io.BytesIO(data)) as im:
        first = np.asarray(im.convert("RGB"))
        im.seek(1)
        second = np.asarray(im.convert("RGB"))
    assert (first != second).all()


def test_chunks_after_the_animation_and_after_iend():
    data = _apng("RGB", False)
    iend = data.rindex(b"IEND") - 4
    late = _chunk(b"tEXt", b"Late\x00text")
    data = data[:iend] + late + data[iend:] + b"trailing junk"
    still = default_image(data)
    assert still.endswith(late + _chunk(b"IEND"))  # the late chunk kept, the junk after IEND dropped
    np.testing.assert_array_equal(_pil_frame0(still), _pil_frame0(data))


@pytest.mark.parametrize("form", [bytes, bytearray, memoryview, lambda d: np.frombuffer(d, np.uint8)])
def test_any_byte_buffer(form):
    data = _apng("RGBA", False)
    assert default_image(form(data)) == default_image(data)


def test_not_animated_gives_none():
    plain = io.BytesIO()
    _frames("RGB", 1)[0].save(plain, "PNG")
    plain = plain.getvalue()
    assert default_image(plain) is None
    # One frame saved with save_all and no default image is written as a still PNG.
    assert default_image(_apng("RGB", False, n=0)) is None
    for other in (b"", b"\x89PNG", b"GIF89a....", b"\xff\xd8\xff\xe0" + bytes(100), SIGNATURE):
        assert default_image(other) is None
    assert default_image(None) is None and default_image(3) is None
    # acTL after IDAT is not an APNG (the specification puts it before): ignored.
    iend = plain.rindex(b"IEND") - 4
    late = plain[:iend] + _chunk(b"acTL", struct.pack(">II", 1, 0)) + plain[iend:]
    assert default_image(late) is None


def test_still_png_reads_only_up_to_idat():
    """Garbage after the first IDAT chunk's header is never looked at."""
    plain = io.BytesIO()
    _frames("RGB", 1)[0].save(plain, "PNG")
    plain = plain.getvalue()
    idat = plain.index(b"IDAT") - 4
    assert default_image(plain[: idat + 8]) is None  # cut right after the IDAT header
    huge = plain[:idat] + struct.pack(">I", 2**31 - 1) + b"IDAT" + b"\xff" * 64  # claims 2 GiB of data
    assert default_image(huge) is None


def test_malformed_apng_gives_none():
    data = _apng("RGBA", False)
    chunks = _chunks(data)
    fdat = data.index(b"fdAT") - 4
    assert default_image(data[: fdat + 20]) is None  # cut inside an fdAT chunk
    assert default_image(data[: fdat + 6]) is None  # cut inside a chunk header
    bad = bytearray(data)
    struct.pack_into(">I", bad, fdat, 0xFFFFFFF0)  # a length past the end (and the limit)
    assert default_image(bytes(bad)) is None
    no_idat = SIGNATURE + b"".join(whole for kind, whole in chunks if kind != b"IDAT")
    assert default_image(no_idat) is None
    # Cut exactly after a chunk, before IEND: the kept chunks come back, without IEND.
    iend = data.rindex(b"IEND") - 4
    assert default_image(data[:iend]) == default_image(data)[:-12]
