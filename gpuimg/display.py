"""Pictures of images for notebooks: thumbnails made on the device, captioned grids, show().

Only thumbnails cross to the host: each is averaged down on the device first
(:meth:`gpuimg.Image.thumbnail`), so showing a batch of 4K images moves kilobytes.

- :func:`batch_grid` (what ``ImageBatch._repr_png_`` shows): a grid of thumbnails, each
  captioned with its index and size (drawn with a tiny built-in bitmap font: no imaging
  library).
- :func:`show`: images side by side with titles, through matplotlib where it is
  installed, else as HTML (PNG thumbnails with captions) in IPython, else as text.

The pieces an Image needs to show itself (thumbnail, grid, PNG writer) live in
``gpuimg._pictures``, below :mod:`gpuimg.image`: this module builds on image.py, and
nothing below imports it.

Example:
    >>> import gpuimg, numpy as np
    >>> batch = gpuimg.ImageBatch.from_images([np.zeros((30, 40, 3), np.uint8)] * 2)
    >>> batch_grid(batch).shape[2]
    3
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._pictures import GRID_CELL, GRID_MAX_IMAGES, as_rgb, batch_grid, encode_png
from .image import Image, ImageBatch

__all__ = ["show", "batch_grid", "SHOW_SIZE", "GRID_CELL", "GRID_MAX_IMAGES"]

SHOW_SIZE = 512  # longest side of each picture in show()


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
    up to 4). ``titles``: one per panel (default: the index and size). Only thumbnails of
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
    (width, height) of each full image."""
    if not isinstance(size, int | np.integer) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size must be a positive int (pixels of the longer side), got {size!r}")
    if isinstance(images, Image | ImageBatch) or hasattr(images, "shape"):
        images = [images]
    if not isinstance(images, Sequence) or isinstance(images, str) or not images:
        raise TypeError(
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
            raise TypeError(f"images[{i}] is a {type(item).__name__}; give an Image, an ImageBatch or an array")
    if len(flat) > GRID_MAX_IMAGES:  # each panel is a device-to-host copy and a subplot
        raise ValueError(
            f"show() draws at most {GRID_MAX_IMAGES} pictures, got {len(flat)}; pass a part, e.g. "
            f"batch.images[:{GRID_MAX_IMAGES}], or display the batch itself (a grid of small thumbnails)"
        )
    return [as_rgb(img.thumbnail(size)) for img in flat], [(img.width, img.height) for img in flat]


def _titles(titles: Sequence[str] | None, sizes: list[tuple[int, int]]) -> list[str]:
    if titles is None:
        return [f"{i}: {w}x{h}" for i, (w, h) in enumerate(sizes)]
    if isinstance(titles, str) or len(titles) != len(sizes):
        got = repr(titles) if isinstance(titles, str) else f"{len(titles)} titles"
        raise ValueError(f"titles must be a list with one title per picture ({len(sizes)}), got {got}")
    return [str(t) for t in titles]


def _columns(columns: int | None, count: int) -> int:
    if columns is None:
        return min(count, 4)
    if not isinstance(columns, int | np.integer) or isinstance(columns, bool) or columns < 1:
        raise ValueError(f"columns must be a positive int, got {columns!r}")
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
    """Panels as an HTML grid of captioned PNGs: what show() displays without matplotlib."""

    def __init__(self, panels: list[np.ndarray], titles: list[str], columns: int):
        self.panels, self.titles, self.columns = panels, titles, columns

    def _repr_html_(self) -> str:
        figures = []
        for panel, title in zip(self.panels, self.titles):
            data = base64.b64encode(encode_png(np.ascontiguousarray(panel))).decode("ascii")
            figures.append(
                '<figure style="margin:0;text-align:center">'
                f'<img src="data:image/png;base64,{data}" width="{panel.shape[1]}" height="{panel.shape[0]}">'
                f'<figcaption style="font:12px sans-serif">{html.escape(title)}</figcaption></figure>'
            )
        style = f"display:grid;grid-template-columns:repeat({self.columns}, auto);gap:8px;justify-content:start"
        return f'<div style="{style}">{"".join(figures)}</div>'

    def __repr__(self) -> str:
        return "\n".join(f"[{t}] {p.shape[1]}x{p.shape[0]} thumbnail" for p, t in zip(self.panels, self.titles))


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
