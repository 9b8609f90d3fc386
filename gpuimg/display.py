"""Pictures of images for notebooks: thumbnails made on the device, captioned grids, show().

Only thumbnails cross to the host: each is averaged down on the device first
(:meth:`gpuimg.Image.thumbnail`), so showing a batch of 4K images moves kilobytes. PNGs
are encoded by gpuimg's own Encoder (nvImageCodec's PNG encoder, on the CPU); captions
are HTML text.

- :func:`image_png`: what a notebook shows for an Image (its thumbnail as PNG).
- :func:`batch_html`: what a notebook shows for an ImageBatch: a grid of thumbnails, each
  captioned with its index and size (height x width).
- :func:`show`: images side by side with titles, through matplotlib where it is
  installed, else as HTML (PNG thumbnails with captions) in IPython, else as text.
- :func:`register`: makes IPython show Images and ImageBatches so (``import gpuimg`` calls
  it inside IPython/Jupyter); image.py knows nothing of pictures beyond its thumbnail, and
  nothing below imports this module.

Example:
    >>> import gpuimg, numpy as np
    >>> batch = gpuimg.ImageBatch.from_images([np.zeros((30, 40, 3), np.uint8)] * 2)
    >>> batch_html(batch).count("<figcaption")
    2
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ArgumentError, ArgumentTypeError, check_int
from ._pictures import as_rgb
from .image import Image, ImageBatch

__all__ = ["show", "image_png", "batch_html", "register", "SHOW_SIZE", "GRID_CELL", "GRID_COLUMNS", "GRID_MAX_IMAGES"]

SHOW_SIZE = 512  # longest side of each picture in show()
GRID_CELL = 160  # longest side of each thumbnail in a batch grid
GRID_COLUMNS = 8
GRID_MAX_IMAGES = 64  # a batch grid shows the first 64 images and says how many more there are


# ----------------------------------------------------------------- notebook pictures
def _png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a host (H, W, C) uint8 picture, by this thread's CPU Encoder."""
    from .codec import encode  # imported on first picture: `import gpuimg` in a notebook stays light

    return encode(Image.from_array(np.ascontiguousarray(pixels), device="cpu"), "png")


def image_png(img: Image) -> bytes:
    """The PNG a notebook shows for ``img``: its thumbnail (made on its device; gray,
    RGB or RGBA as it is).

    Example:
        >>> import numpy as np
        >>> image_png(Image.from_array(np.zeros((600, 900, 3), np.uint8)))[:4]
        b'\\x89PNG'
    """
    return _png(img.thumbnail())


def batch_html(batch: ImageBatch | Sequence[Image], columns: int = GRID_COLUMNS, cell: int = GRID_CELL) -> str:
    """The HTML a notebook shows for ``batch``: thumbnails of at most ``cell`` pixels,
    captioned "index: HxW", ``columns`` a row; at most :data:`GRID_MAX_IMAGES` are drawn
    and a last caption says how many were left out.

    Example:
        >>> import numpy as np
        >>> b = ImageBatch.from_images([np.zeros((20, 30, 3), np.uint8)] * 70)
        >>> import re; re.findall(r"<figcaption[^>]*>([^<]*)<", batch_html(b))[-2:]
        ['63: 20x30', '+6 more']
    """
    shown = min(len(batch), GRID_MAX_IMAGES)
    panels = [as_rgb(batch[i].thumbnail(cell)) for i in range(shown)]
    titles = [f"{i}: {batch[i].height}x{batch[i].width}" for i in range(shown)]
    more = f"+{len(batch) - shown} more" if len(batch) > shown else ("(no images)" if not shown else None)
    return _HtmlGrid(panels, titles, _columns(columns, max(1, shown)), more)._repr_html_()


def register(shell: Any) -> None:
    """Make the IPython ``shell`` show an Image as :func:`image_png` and an ImageBatch as
    :func:`batch_html` (called by ``import gpuimg`` inside IPython/Jupyter).

    Example:
        >>> from IPython.core.interactiveshell import InteractiveShell  # doctest: +SKIP
        >>> register(InteractiveShell.instance())  # doctest: +SKIP
    """
    formatters = shell.display_formatter.formatters
    formatters["image/png"].for_type(Image, image_png)
    formatters["text/html"].for_type(ImageBatch, batch_html)


# ---------------------------------------------------------------------------- show()
def show(
    images: Any,
    columns: int | None = None,
    titles: Sequence[str] | None = None,
    size: int = SHOW_SIZE,
) -> None:
    """Show images side by side with titles (e.g. before / after an op).

    ``images``: an Image, an ImageBatch (one panel per image), an (H, W[, C]) NumPy or
    CuPy array, or a list of these. ``columns``: panels per row (default: all in one row,
    up to 4). ``titles``: one per panel (default: the index and size, height x width). Only thumbnails of
    at most ``size`` pixels on the longer side are copied to the host. Uses matplotlib
    where it is installed (one figure, shown with ``plt.show()``), otherwise HTML with
    PNG thumbnails in IPython/Jupyter, otherwise prints a text summary.

    Example (the last line is skipped here: it draws a figure, which needs a notebook or
    a window to be seen):
        >>> import gpuimg, numpy as np
        >>> photo = gpuimg.Image.from_array(np.zeros((300, 451, 3), np.uint8))
        >>> gpuimg.show([photo, gpuimg.invert(photo)], titles=["photo", "inverted"])  # doctest: +SKIP
    """
    panels, sizes = _panels(images, size)
    labels = _titles(titles, sizes)
    columns = _columns(columns, len(panels))
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # matplotlib is optional: HTML works in every notebook front end
        _publish(_HtmlGrid(panels, labels, columns))
        return
    _figure(plt, panels, labels, columns)
    plt.show()  # inline backend: displays and closes; Agg (scripts, CI): keeps it for savefig


def _panels(images: Any, size: int) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Host RGB thumbnails of everything ``images`` holds (made on its device), and the
    (height, width) of each full image."""
    if not isinstance(size, int | np.integer) or isinstance(size, bool) or size < 1:
        raise ArgumentError(f"size must be a positive int (pixels of the longer side), got {size!r}")
    if isinstance(images, Image | ImageBatch) or hasattr(images, "shape"):
        images = [images]
    if not isinstance(images, Sequence) or isinstance(images, str) or not images:
        raise ArgumentTypeError(
            f"images must be an Image, an ImageBatch, an array or a non-empty list of them, got {type(images).__name__}"
        )
    flat: list[Image] = []
    for i, item in enumerate(images):
        if isinstance(item, ImageBatch):
            flat.extend(item)
        elif isinstance(item, Image):
            flat.append(item)
        elif hasattr(item, "shape"):
            flat.append(Image.from_array(item))
        else:
            raise ArgumentTypeError(f"images[{i}] is a {type(item).__name__}; give an Image, an ImageBatch or an array")
    if len(flat) > GRID_MAX_IMAGES:  # each panel is a device-to-host copy and a subplot
        raise ArgumentError(
            f"show() draws at most {GRID_MAX_IMAGES} pictures, got {len(flat)}; pass a part, e.g. "
            f"batch.images[:{GRID_MAX_IMAGES}], or display the batch itself (a grid of small thumbnails)"
        )
    return [as_rgb(img.thumbnail(size)) for img in flat], [(img.height, img.width) for img in flat]


def _titles(titles: Sequence[str] | None, sizes: list[tuple[int, int]]) -> list[str]:
    if titles is None:
        return [f"{i}: {h}x{w}" for i, (h, w) in enumerate(sizes)]
    if isinstance(titles, str) or len(titles) != len(sizes):
        got = repr(titles) if isinstance(titles, str) else f"{len(titles)} titles"
        raise ArgumentError(f"titles must be a list with one title per picture ({len(sizes)}), got {got}")
    return [str(t) for t in titles]


def _columns(columns: int | None, count: int) -> int:
    if columns is None:
        return min(count, 4)
    check_int(columns, "columns", low=1)
    return min(int(columns), count)


def _figure(plt: Any, panels: list[np.ndarray], titles: list[str], columns: int) -> Any:
    """A matplotlib figure of the panels, one axis each, titled, without ticks."""
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, panel, title in zip(axes.flat, panels, titles):
        ax.imshow(panel, interpolation="lanczos" if max(panel.shape[:2]) > 64 else "nearest")
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


class _HtmlGrid:
    """Panels as an HTML grid of captioned PNGs (what show() displays without matplotlib,
    and a batch in a notebook); ``more``: a last caption without a picture."""

    def __init__(self, panels: list[np.ndarray], titles: list[str], columns: int, more: str | None = None):
        self.panels, self.titles, self.columns, self.more = panels, titles, columns, more

    def _repr_html_(self) -> str:
        caption = '<figcaption style="font:12px sans-serif">{}</figcaption>'
        figures = []
        for panel, title in zip(self.panels, self.titles):
            data = base64.b64encode(_png(panel)).decode("ascii")
            figures.append(
                '<figure style="margin:0;text-align:center">'
                f'<img src="data:image/png;base64,{data}" width="{panel.shape[1]}" height="{panel.shape[0]}">'
                f"{caption.format(html.escape(title))}</figure>"
            )
        if self.more is not None:
            figures.append(f'<figure style="margin:0;align-self:center">{caption.format(html.escape(self.more))}</figure>')
        style = f"display:grid;grid-template-columns:repeat({self.columns}, auto);gap:8px;justify-content:start"
        return f'<div style="{style}">{"".join(figures)}</div>'

    def __repr__(self) -> str:
        return "\n".join(f"[{t}] {p.shape[0]}x{p.shape[1]} thumbnail" for p, t in zip(self.panels, self.titles))


def _publish(grid: _HtmlGrid) -> None:
    """Display in IPython/Jupyter when running there, else print the text summary."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(grid)
    else:
        print(repr(grid))
