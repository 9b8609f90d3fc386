"""Notebook display (gpuimg.display, gpuimg._pictures): Image/ImageBatch pictures, device-made thumbnails, gpuimg.show().

Reference: Pillow decodes the PNGs we write and makes the box-filtered thumbnails
(``PIL.Image.reduce``, a mean over factor x factor blocks) the pictures are checked against.
"""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest
from conftest import load_asset

import gpuimg
from gpuimg import _pictures, display
from gpuimg.image import THUMBNAIL_SIZE, Image, ImageBatch

PILImage = pytest.importorskip("PIL.Image")


def _on(device: str, pixels: np.ndarray) -> Image:
    return Image.from_array(pixels).to(device)


def _decode_png(data: bytes) -> np.ndarray:
    with PILImage.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def _pillow_thumbnail(pixels: np.ndarray, max_size: int) -> np.ndarray:
    """Pillow's box reduction by the same integer factor (the outside reference)."""
    factor = -(-max(pixels.shape[:2]) // max_size)
    h, w = pixels.shape[0] // factor * factor, pixels.shape[1] // factor * factor
    im = PILImage.fromarray(np.ascontiguousarray(pixels[:h, :w]))
    return np.asarray(im.reduce(factor))


def test_image_repr_png_is_the_thumbnail(device):
    photo = load_asset("astronaut.jpg")  # 512x512 -> factor 2 -> 256x256
    shown = _decode_png(_on(device, photo)._repr_png_())
    expected = _pillow_thumbnail(photo, THUMBNAIL_SIZE)
    assert shown.shape == expected.shape == (256, 256, 3)
    # Rounding of the mean may differ by one level (half-way cases).
    assert np.abs(shown.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("name, mode", [("camera_gray.png", "L"), ("coffee_rgba.png", "RGBA")])
def test_gray_and_rgba_images_show_as_rgb(device, name, mode):
    pixels = load_asset(name, mode)
    shown = _decode_png(_pictures.encode_png(_pictures.as_rgb(_on(device, pixels).thumbnail(64))))
    reference = np.asarray(PILImage.fromarray(pixels.squeeze()).convert("RGB")) if mode == "L" else None
    if reference is not None:
        assert np.abs(shown.astype(int) - _pillow_thumbnail(reference, 64)).max() <= 1
    else:  # RGBA over a checkerboard: the fully transparent corner shows it, the opaque centre does not
        c = _pictures.CHECKER
        assert shown.shape[2] == 3
        assert (shown[0, 0] == 255).all() and (shown[0, c] == 204).all() and (shown[c, c] == 255).all()
        centre = _pillow_thumbnail(pixels, 64)[shown.shape[0] // 2, shown.shape[1] // 2]
        assert centre[3] == 255 and np.abs(shown[shown.shape[0] // 2, shown.shape[1] // 2].astype(int) - centre[:3]).max() <= 1


def test_only_the_thumbnail_crosses_to_the_host(device, monkeypatch):
    big = np.tile(load_asset("rocket.jpg"), (5, 5, 1))  # 2135x3200
    img = _on(device, big)

    def forbidden(*args, **kwargs):
        raise AssertionError("the full image was copied to the host for display")

    monkeypatch.setattr(Image, "numpy", forbidden)
    monkeypatch.setattr(ImageBatch, "numpy", forbidden)
    thumb = img.thumbnail()
    assert isinstance(thumb, np.ndarray)
    assert max(thumb.shape[:2]) <= THUMBNAIL_SIZE
    assert thumb.nbytes < big.nbytes / 100  # 200 KB of 20 MB
    batch = ImageBatch.from_images([img, img], device=device)
    assert _decode_png(batch._repr_png_()).shape[1] < 1000


def test_thumbnail_same_on_gpu_and_cpu(gpu):
    photo = load_asset("coffee.jpg")
    np.testing.assert_array_equal(_on("cuda", photo).thumbnail(100), _on("cpu", photo).thumbnail(100))


def test_batch_repr_png_is_a_captioned_grid(device):
    names = ["astronaut.jpg", "chelsea.jpg", "coffee.jpg"]
    photos = [load_asset(n) for n in names]
    batch = ImageBatch.from_images(photos, device=device)
    grid = _decode_png(batch._repr_png_())
    cell, gap = _pictures.GRID_CELL, _pictures.GRID_GAP
    step_x = cell + gap  # captions ("2: 600x400", 10 chars) fit in a cell
    assert grid.shape == (cell + _pictures._CAPTION_H + gap, 3 * step_x + gap, 3)
    for i, photo in enumerate(photos):
        expected = _pillow_thumbnail(photo, cell)
        h, w = expected.shape[:2]
        tile = grid[gap : gap + h, gap + i * step_x : gap + i * step_x + w]
        assert np.abs(tile.astype(int) - expected).max() <= 1, names[i]
    caption_rows = grid[gap + cell : gap + cell + _pictures._CAPTION_H]
    assert (caption_rows < 128).any(), "captions are drawn"


def test_caption_text_is_drawn_with_the_bitmap_font():
    canvas = np.full((20, 100, 3), 255, np.uint8)
    _pictures._draw_text(canvas, "1", 0, 0)
    expected = np.array([[b == "1" for b in row] for row in _pictures._GLYPHS["1"]]).repeat(2, 0).repeat(2, 1)
    np.testing.assert_array_equal(canvas[:10, :6, 0] < 128, expected)
    assert (canvas[10:] == 255).all() and (canvas[:, 8:] == 255).all()


def test_large_batch_grid_says_how_many_are_left_out():
    tiny = [np.full((8, 8, 3), i, np.uint8) for i in range(_pictures.GRID_MAX_IMAGES + 5)]
    batch = ImageBatch.from_images(tiny, device="cpu")
    grid = display.batch_grid(batch, columns=10, cell=16)
    cells = _pictures.GRID_MAX_IMAGES + 1
    assert grid.shape[0] == -(-cells // 10) * (16 + _pictures._CAPTION_H) + _pictures.GRID_GAP


def _image_list(device):
    photo = _on(device, load_asset("chelsea.jpg"))
    batch = ImageBatch.from_images([load_asset("coffee.jpg"), load_asset("camera_gray.png", "L")], device=device)
    return [photo, batch, load_asset("rocket.jpg")]  # an Image, a batch of two, a NumPy array


def test_show_without_matplotlib_publishes_html(device, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib...` raise ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    published = []
    monkeypatch.setattr(display, "_publish", published.append)
    gpuimg.show(_image_list(device), titles=["cat", "coffee", "camera <gray>", "rocket"], columns=2)
    (grid,) = published
    page = grid._repr_html_()
    assert "repeat(2, auto)" in page
    assert re.findall(r"<figcaption[^>]*>([^<]*)</figcaption>", page) == ["cat", "coffee", "camera &lt;gray&gt;", "rocket"]
    pngs = [_decode_png(__import__("base64").b64decode(d)) for d in re.findall(r"base64,([^\"]+)", page)]
    sources = [load_asset("chelsea.jpg"), load_asset("coffee.jpg"), load_asset("camera_gray.png"), load_asset("rocket.jpg")]
    assert [p.shape for p in pngs] == [_pillow_thumbnail(s, display.SHOW_SIZE).shape for s in sources]
    assert "cat" in repr(grid)


def test_show_prints_a_summary_outside_ipython(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    gpuimg.show(load_asset("chelsea.jpg"))
    assert "0: 451x300" in capsys.readouterr().out


def test_show_with_matplotlib_draws_one_titled_panel_per_image(device):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    gpuimg.show(_image_list(device), columns=3)
    fig = plt.gcf()
    try:
        titled = [ax for ax in fig.axes if ax.get_title()]
        assert [ax.get_title() for ax in titled] == ["0: 451x300", "1: 600x400", "2: 512x512", "3: 640x427"]
        assert len(fig.axes) == 6  # 2 rows x 3 columns, the empty ones hidden
        first = np.asarray(titled[0].images[0].get_array())
        np.testing.assert_array_equal(first, load_asset("chelsea.jpg"))  # 451 px <= SHOW_SIZE: not reduced
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(images=[], columns=None), TypeError, "non-empty list"),
        (dict(images=["a.jpg"], columns=None), TypeError, r"images\[0\]"),
        (dict(images=np.zeros((4, 4, 3), np.uint8), columns=0), ValueError, "columns"),
        (dict(images=np.zeros((4, 4, 3), np.uint8), titles=["a", "b"]), ValueError, "one title per picture"),
        (dict(images=np.zeros((4, 4, 3), np.uint8), size=0), ValueError, "size"),
        (dict(images=[np.zeros((4, 4, 3), np.uint8)] * 65), ValueError, "at most 64"),
    ],
)
def test_show_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        gpuimg.show(**kwargs)


def test_image_never_imports_display():
    # display.py builds on image.py; the other way round would be an import circle.
    import subprocess

    code = "import sys, gpuimg.image; assert 'gpuimg.display' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
    source = (__import__("pathlib").Path(gpuimg.image.__file__)).read_text()
    assert "display" not in "".join(line for line in source.splitlines() if "import" in line)
