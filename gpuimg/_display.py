"""Pictures of images for notebooks: thumbnails made on the device, grids of thumbnails."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .image import ImageBatch

GRID_CELL = 160  # longest side of each thumbnail in a batch grid
GRID_GAP = 4


def batch_grid(batch: ImageBatch, columns: int = 8, cell: int = GRID_CELL) -> np.ndarray:
    """An (H, W, 3) uint8 host picture of the batch's thumbnails laid out in a grid."""
    thumbs = [_as_rgb(img.thumbnail(cell)) for img in batch]
    columns = max(1, min(columns, len(thumbs)))
    rows = -(-len(thumbs) // columns)
    canvas = np.full((rows * (cell + GRID_GAP) + GRID_GAP, columns * (cell + GRID_GAP) + GRID_GAP, 3), 255, np.uint8)
    for i, thumb in enumerate(thumbs):
        top = GRID_GAP + (i // columns) * (cell + GRID_GAP)
        left = GRID_GAP + (i % columns) * (cell + GRID_GAP)
        h, w = thumb.shape[:2]
        canvas[top : top + h, left : left + w] = thumb
    return canvas


def _as_rgb(pixels: np.ndarray) -> np.ndarray:
    """Gray becomes RGB; RGBA is composited over white, as a viewer would show it."""
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if pixels.shape[2] == 4:
        alpha = pixels[:, :, 3:4].astype(np.float32) / 255.0
        return (pixels[:, :, :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    return pixels
