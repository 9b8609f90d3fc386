"""One view of encoded data as bytes, for the header walkers (private)."""

from __future__ import annotations

from typing import Any


def byte_view(data: Any) -> Any:
    """``data`` (bytes, bytearray, memoryview, uint8 array) as something ``len``,
    ``struct.unpack_from``, slicing and ``np.frombuffer`` read as bytes, without copying.

    Example:
        >>> import numpy as np
        >>> bytes(byte_view(np.frombuffer(b"abc", np.uint8))[1:])
        b'bc'
    """
    if isinstance(data, bytes):
        return data
    view = memoryview(data)
    if view.ndim == 1 and view.format in ("B", "b", "c") and view.c_contiguous:
        return view if view.format == "B" else view.cast("B")
    if view.c_contiguous:
        return view.cast("B")
    return view.tobytes()  # a strided view: copy once rather than refuse
