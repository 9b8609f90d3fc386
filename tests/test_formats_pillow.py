"""The formats nvImageCodec lacks (GIF, ICO/CUR, TGA, PSD), decoded with Pillow in the
isolated child: pixels equal Pillow's on every device, batch equals single, the pipeline
and the folder scan pick them up, hostile variants fail cleanly naming the file."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

import gpuimg
from gpuimg.codec import formats
from gpuimg.errors import DecodeError, GpuImgError, UnsupportedFormatError

RNG = np.random.default_rng(31)
RGB = RNG.integers(0, 256, (30, 40, 3), np.uint8)
RGBA = np.dstack([RGB, RNG.integers(0, 256, (30, 40, 1), np.uint8)])


def _save(im: PILImage.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _psd(pixels: np.ndarray) -> bytes:
    """A minimal PSD (Pillow cannot write one): header, empty sections, raw planar composite."""
    h, w, c = pixels.shape
    head = b"8BPS" + struct.pack(">H6xHIIHH", 1, c, h, w, 8, 3 if c >= 3 else 1)
    body = struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0)  # colour data, resources, layers; raw
    return head + body + b"".join(pixels[..., k].tobytes() for k in range(c))


def _animated_gif() -> bytes:
    frames = [PILImage.fromarray(RGB), PILImage.fromarray(255 - RGB), PILImage.fromarray(RGB[::-1].copy())]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _palette_gif() -> bytes:
    return _save(PILImage.fromarray(RGB).quantize(17), "GIF", transparency=3)


FILES = {
    "gif-palette-transparent": ("gif", _palette_gif),
    "gif-animated": ("gif", _animated_gif),
    "gif-gray": ("gif", lambda: _save(PILImage.fromarray(RGB[..., 0]), "GIF")),
    "ico-sizes": ("ico", lambda: _save(PILImage.fromarray(RGBA[:, :30]).resize((48, 48)), "ICO", sizes=[(16, 16), (32, 32), (48, 48)])),
    "ico-bmp": ("ico", lambda: _save(PILImage.fromarray(RGBA[:, :30]).resize((32, 32)), "ICO", sizes=[(16, 16), (32, 32)], bitmap_format="bmp")),
    "tga-rgb": ("tga", lambda: _save(PILImage.fromarray(RGB), "TGA")),
    "tga-rgba": ("tga", lambda: _save(PILImage.fromarray(RGBA), "TGA")),
    "tga-rle": ("tga", lambda: _save(PILImage.fromarray(RGBA), "TGA", compression="tga_rle")),
    "tga-gray-rle": ("tga", lambda: _save(PILImage.fromarray(RGB[..., 1]), "TGA", compression="tga_rle")),
    "tga-palette": ("tga", lambda: _save(PILImage.fromarray(RGB).quantize(40), "TGA")),
    "psd-rgb": ("psd", lambda: _psd(RGB)),
    "psd-rgba": ("psd", lambda: _psd(RGBA)),
    "psd-gray": ("psd", lambda: _psd(RGB[..., :1])),
}
SUFFIX = {"gif": ".gif", "ico": ".ico", "tga": ".tga", "psd": ".psd"}
MODES = {"rgb": "RGB", "bgr": "RGB", "rgba": "RGBA", "gray": "L"}


def _reference(data: bytes, mode: str, channels: int) -> np.ndarray:
    """Pillow's pixels of ``data`` in gpuimg's ``mode`` (EXIF orientation applied)."""
    im = ImageOps.exif_transpose(PILImage.open(io.BytesIO(data)))
    pil_mode = MODES.get(mode) or {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    px = np.asarray(im.convert(pil_mode)).reshape(im.size[1], im.size[0], -1)
    return px[..., ::-1] if mode == "bgr" else px


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("mode", ["rgb", "bgr", "rgba", "gray", "unchanged"])
def test_read_equals_pillow(device, name, mode):
    codec, make = FILES[name]
    data = make()
    assert formats.sniff(data[:16]) is not None or codec == "tga"
    img = gpuimg.read(data, device=device, mode=mode)
    assert np.array_equal(img.numpy() if hasattr(img, "numpy") else np.asarray(img.to("cpu").array),
                          _reference(data, mode, img.channels))


@pytest.mark.parametrize("name", sorted(FILES))
def test_info_names_the_format(name):
    codec, make = FILES[name]
    info = gpuimg.info(make())
    assert info.codec == codec
    ref = PILImage.open(io.BytesIO(make()))
    assert (info.width, info.height) == ref.size


def test_first_frame_and_largest_icon():
    gif = _animated_gif()
    ours = np.asarray(gpuimg.read(gif, device="cpu").array)
    anim = PILImage.open(io.BytesIO(gif))
    assert anim.n_frames == 3 and np.array_equal(ours, np.asarray(anim.convert("RGB")))  # frame 0
    anim.seek(1)
    assert not np.array_equal(ours, np.asarray(anim.convert("RGB")))
    ico = FILES["ico-sizes"][1]()
    assert gpuimg.info(ico).width == 48  # Pillow's pick: the largest entry
    assert gpuimg.read(ico, device="cpu", mode="unchanged").shape == (48, 48, 4)
    assert gpuimg.read(_palette_gif(), device="cpu", mode="unchanged").shape == (30, 40, 4)  # tRNS-like alpha kept


def test_batch_equals_single(device, tmp_path):
    datas = [make() for _, make in FILES.values()]
    paths = []
    for (name, (codec, _)), data in zip(FILES.items(), datas):
        path = tmp_path / f"{name}{SUFFIX[codec]}"
        path.write_bytes(data)
        paths.append(path)
    for mode in ("rgb", "unchanged"):
        result = gpuimg.Decoder(device).decode_batch(paths + [b"junk"], mode=mode)
        assert [e.index for e in result.errors] == [len(paths)]
        for path, img in zip(paths, result.images):
            single = gpuimg.read(path, device=device, mode=mode)
            assert np.array_equal(np.asarray(img.to("cpu").array), np.asarray(single.to("cpu").array)), path.name


def test_isolation_off_decodes_the_same():
    for _, make in FILES.values():
        data = make()
        here = gpuimg.Decoder("cpu", isolation=False).decode(data, mode="rgba")
        assert np.array_equal(np.asarray(here.array), np.asarray(gpuimg.read(data, device="cpu", mode="rgba").array))


def test_pipeline_and_folder_scan(device, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name, (codec, make) in FILES.items():
        (src / f"{name}{SUFFIX[codec]}").write_bytes(make())
    for pattern in ("*.gif", "*.ico", "*.cur", "*.tga", "*.psd"):
        assert pattern in formats.image_patterns()
    summary = gpuimg.Pipeline([], device=device).run(src, out, format="png")
    written = sorted(out.rglob("*.png"))
    assert len(written) == len(FILES), summary
    for path in written:
        codec = FILES[path.stem][0]
        data = (src / f"{path.stem}{SUFFIX[codec]}").read_bytes()
        assert np.array_equal(np.asarray(PILImage.open(path).convert("RGB")), _reference(data, "rgb", 3)), path.name


def test_cannot_encode_them():
    img = gpuimg.Image.from_array(RGB)
    with pytest.raises(UnsupportedFormatError, match="cannot be encoded"):
        gpuimg.Encoder("cpu").encode(img, "gif")


def test_without_pillow_names_the_extra(monkeypatch):
    from gpuimg.codec import pillow

    monkeypatch.setattr(pillow.importlib.util, "find_spec", lambda name: None)
    pillow.missing.cache_clear()
    try:
        with pytest.raises(UnsupportedFormatError, match=r"GIF .*Pillow.*gpuimg\[formats\]"):
            gpuimg.read(_palette_gif(), device="cpu")
    finally:
        pillow.missing.cache_clear()


def test_unsupported_ones_still_say_so():
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    with pytest.raises(UnsupportedFormatError, match="HEIC"):
        gpuimg.read(heic, device="cpu")


def _hostile(data: bytes, rng: np.random.Generator) -> bytes:
    kind = rng.integers(0, 3)
    if kind == 0:
        return data[: int(rng.integers(1, len(data)))]
    buf = bytearray(data)
    if kind == 1:
        for _ in range(int(rng.integers(1, 8))):
            pos = int(rng.integers(0, len(buf)))
            buf[pos] ^= 1 << int(rng.integers(0, 8))
        return bytes(buf)
    # huge declared dimensions, where each format keeps them
    pos = {b"GIF": 6, b"8BP": 14}.get(bytes(buf[:3]))
    if pos is not None:
        buf[pos : pos + 4] = b"\xff\xff\xff\xff"
    elif buf[2:4] == b"\x01\x00":  # ICO directory entry 0: 0 = 256; the offset far away
        buf[18:22] = b"\xff\xff\xff\x7f"
    else:
        buf[12:16] = b"\xff\xff\xff\xff"  # TGA
    return bytes(buf)


def test_hostile_variants_fail_cleanly(tmp_path):
    """Truncations, bit flips and huge sizes: an image equal to Pillow's, or a gpuimg
    error naming the file; never a crash of this process, a hang or another exception."""
    rng = np.random.default_rng(7)
    decoder = gpuimg.Decoder("cpu")
    count = failed = 0
    for name, (codec, make) in FILES.items():
        data = make()
        for k in range(25):
            bad = _hostile(data, rng)
            path = tmp_path / f"{name}-{k}{SUFFIX[codec]}"
            path.write_bytes(bad)
            count += 1
            try:
                decoder.decode(path)
            except GpuImgError as exc:
                failed += 1
                assert str(path) in str(exc), exc
    assert count == 25 * len(FILES) and failed > count // 3
