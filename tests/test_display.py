"""Notebook display (gpuimg.display, gpuimg._pictures): Image/ImageBatch pictures, device-made thumbnails, gpuimg.show().

PNGs come from gpuimg's own Encoder (nvImageCodec), captions are HTML. Reference: Pillow decodes the PNGs we write and makes the box-filtered thumbnails
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


def _html_pngs(page: str) -> list[np.ndarray]:
    return [_decode_png(__import__("base64").b64decode(d)) for d in re.findall(r"base64,([^\"]+)", page)]


def _captions(page: str) -> list[str]:
    return re.findall(r"<figcaption[^>]*>([^<]*)</figcaption>", page)


def test_image_png_is_the_thumbnail(device):
    photo = load_asset("astronaut.jpg")  # 512x512 -> factor 2 -> 256x256
    shown = _decode_png(display.image_png(_on(device, photo)))
    expected = _pillow_thumbnail(photo, THUMBNAIL_SIZE)
    assert shown.shape == expected.shape == (256, 256, 3)
    # Rounding of the mean may differ by one level (half-way cases).
    assert np.abs(shown.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("name, mode", [("camera_gray.png", "L"), ("coffee_rgba.png", "RGBA")])
def test_gray_and_rgba_images_show_as_rgb(device, name, mode):
    pixels = load_asset(name, mode)
    shown = _decode_png(display._png(_pictures.as_rgb(_on(device, pixels).thumbnail(64))))
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
    assert all(max(p.shape[:2]) <= display.GRID_CELL for p in _html_pngs(display.batch_html(batch)))


def test_thumbnail_same_on_gpu_and_cpu(gpu):
    photo = load_asset("coffee.jpg")
    np.testing.assert_array_equal(_on("cuda", photo).thumbnail(100), _on("cpu", photo).thumbnail(100))


def test_batch_html_is_a_grid_captioned_height_by_width(device):
    names = ["astronaut.jpg", "chelsea.jpg", "coffee.jpg"]
    photos = [load_asset(n) for n in names]
    page = display.batch_html(ImageBatch.from_images(photos, device=device))
    assert _captions(page) == ["0: 512x512", "1: 300x451", "2: 400x600"]  # HxW, as everywhere
    assert f"repeat({len(photos)}, auto)" in page
    for name, photo, shown in zip(names, photos, _html_pngs(page)):
        assert np.abs(shown.astype(int) - _pillow_thumbnail(photo, display.GRID_CELL)).max() <= 1, name


def test_large_batch_grid_says_how_many_are_left_out():
    tiny = [np.full((8, 8, 3), i, np.uint8) for i in range(display.GRID_MAX_IMAGES + 5)]
    page = display.batch_html(ImageBatch.from_images(tiny, device="cpu"), columns=10, cell=16)
    captions = _captions(page)
    assert len(_html_pngs(page)) == display.GRID_MAX_IMAGES and captions[-1] == "+5 more"
    assert captions[-2] == f"{display.GRID_MAX_IMAGES - 1}: 8x8" and "repeat(10, auto)" in page
    assert _captions(display.batch_html(ImageBatch.empty([], device="cpu"))) == ["(no images)"]


def test_the_png_writer_is_gpuimgs_encoder():
    # No hand-written PNG writer or bitmap font is left: pictures go through gpuimg.codec.
    assert not hasattr(_pictures, "encode_png") and not hasattr(_pictures, "_GLYPHS")
    pixels = np.random.default_rng(0).integers(0, 256, (9, 13, 4), dtype=np.uint8)
    with PILImage.open(io.BytesIO(display._png(pixels))) as im:
        np.testing.assert_array_equal(np.asarray(im), pixels)


def test_ipython_shows_images_and_batches_through_display():
    shell_module = pytest.importorskip("IPython.core.interactiveshell", reason="IPython is not installed")
    shell = shell_module.InteractiveShell.instance()
    display.register(shell)
    img = Image.from_array(load_asset("chelsea.jpg"))
    data, _ = shell.display_formatter.format(img)
    assert data["image/png"] == display.image_png(img)
    data, _ = shell.display_formatter.format(ImageBatch.from_images([img, img]))
    assert _captions(data["text/html"]) == ["0: 300x451", "1: 300x451"]


def test_importing_gpuimg_in_ipython_registers_the_pictures():
    pytest.importorskip("IPython", reason="IPython is not installed")
    import subprocess

    code = ("from IPython.core.interactiveshell import InteractiveShell; shell = InteractiveShell.instance(); "
            "import gpuimg, numpy as np; img = gpuimg.Image.from_array(np.zeros((4, 4, 3), np.uint8)); "
            "print(sorted(shell.display_formatter.format(img)[0]))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "image/png" in out


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
    assert _captions(page) == ["cat", "coffee", "camera &lt;gray&gt;", "rocket"]
    pngs = _html_pngs(page)
    sources = [load_asset("chelsea.jpg"), load_asset("coffee.jpg"), load_asset("camera_gray.png"), load_asset("rocket.jpg")]
    assert [p.shape for p in pngs] == [_pillow_thumbnail(s, display.SHOW_SIZE).shape for s in sources]
    assert "cat" in repr(grid)


def test_show_prints_a_summary_outside_ipython(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    gpuimg.show(load_asset("chelsea.jpg"))
    assert "0: 300x451" in capsys.readouterr().out


def test_show_with_matplotlib_draws_one_titled_panel_per_image(device):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    gpuimg.show(_image_list(device), columns=3)
    fig = plt.gcf()
    try:
        titled = [ax for ax in fig.axes if ax.get_title()]
        assert [ax.get_title() for ax in titled] == ["0: 300x451", "1: 400x600", "2: 512x512", "3: 427x640"]
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
