"""What :meth:`~gpuimg.codec.Decoder.decode_batch` returns: the decoded items and the failed ones.

Example:
    >>> BatchError(3, "a.png", DecodeError("a.png", "junk")).index
    3
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple

from ..errors import DecodeError, GpuImgError
from ..image import Image, ImageBatch
from . import sources

__all__ = ["BatchResult", "BatchError", "item_error"]


class BatchError(NamedTuple):
    """One failed item of a batch: its position in the input, the source, the error.

    Example:
        >>> from gpuimg.codec import Decoder
        >>> err = Decoder("cpu").decode_batch([b"junk"]).errors[0]
        >>> err.index, err.source, type(err.error).__name__
        (0, b'junk', 'DecodeError')
    """

    index: int
    source: Any
    error: GpuImgError


@dataclass
class BatchResult:
    """What :meth:`Decoder.decode_batch` returns.

    ``images``: an ImageBatch holding ONLY the decoded items, in input order (slot ``k``
    came from input ``indices[k]``, i.e. ``sources[k]``: the objects the caller passed,
    a :class:`ParsedSource` where one was passed). ``errors``: one
    :class:`BatchError` ``(index, source, error)`` per failed item, where ``error`` is a
    :class:`~gpuimg.DecodeError`, :class:`~gpuimg.UnsupportedFormatError` or
    :class:`~gpuimg.ImageTooLargeError` (a missing file is a DecodeError whose
    ``__cause__`` is the FileNotFoundError). Iterating yields the good Images.

    Example:
        >>> from pathlib import Path
        >>> import gpuimg
        >>> from gpuimg.codec import Decoder
        >>> assets = Path(gpuimg.__file__).parent.parent / "assets"
        >>> res = Decoder("cpu").decode_batch([assets / "rocket.jpg", "missing.jpg"])
        >>> len(res), res.indices, res.errors[0].index
        (1, [0], 1)
    """

    images: ImageBatch
    indices: list[int] = field(default_factory=list)
    sources: list[Any] = field(default_factory=list)
    errors: list[BatchError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every item decoded."""
        return not self.errors

    def raise_errors(self) -> BatchResult:
        """Raise the first failed item's error; return self when every item decoded.

        Example:
            >>> from gpuimg.codec import Decoder
            >>> Decoder("cpu").decode_batch([b"junk"]).raise_errors()  # doctest: +IGNORE_EXCEPTION_DETAIL
            Traceback (most recent call last):
            gpuimg.errors.DecodeError: cannot decode <bytes of 4 bytes>
        """
        if self.errors:
            raise self.errors[0].error
        return self

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[Image]:
        return iter(self.images)

    def __getitem__(self, k: int) -> Image:
        return self.images[k]


def item_error(src: Any, exc: Exception) -> GpuImgError:
    """``exc`` raised while reading or planning ``src`` as the item's error: a gpuimg error
    as it is, anything else (a missing file, a read error) a DecodeError caused by it.

    Example:
        >>> item_error(b"x", FileNotFoundError(2, "No such file")).reason
        'it cannot be read (No such file)'
    """
    if isinstance(exc, GpuImgError):
        return exc
    err = DecodeError(sources._label(src), f"it cannot be read ({exc.strerror or exc})" if isinstance(exc, OSError) else str(exc))
    err.__cause__ = exc
    return err
