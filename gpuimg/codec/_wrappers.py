"""Cached ``nvimgcodec.as_image`` wrappers of Image memory (private; decoder and encoder).

Re-wrapping each call costs a noticeable share of a batch decode (BENCHMARKS.md, "Codec"),
and even building per-slot keys costs host time per image, so a batch whose layout did not
change gets its previous list back from one comparison.
"""

from __future__ import annotations

import weakref
from typing import Any

from ..image import Image, ImageBatch
from . import _nvimgcodec


class _OwnerWrappers:
    """The wrappers of one owner: per view, plus the last whole list asked for a batch."""

    __slots__ = ("base", "by_view", "last_key", "last")

    def __init__(self, base: int):
        self.base = base
        self.by_view: dict[tuple, Any] = {}
        self.last_key: tuple | None = None
        self.last: list[Any] = []


class Wrappers:
    """Cached ``nvimgcodec.as_image`` wrappers of Image memory, per owner Image/ImageBatch.

    One cache per Decoder/Encoder, so per thread, and keyed by ``device`` (the
    :func:`~gpuimg.device.device_key` of that codec object): a device pointer
    means nothing on another GPU. A wrapper keeps its memory alive, so the cache is keyed
    weakly by the owner and emptied when the owner's base address changes (its buffer
    grew) or it holds more than a few entries per slot.
    """

    def __init__(self, device: tuple[str, int]) -> None:
        self.device = device
        self._owners: weakref.WeakKeyDictionary[Any, _OwnerWrappers] = weakref.WeakKeyDictionary()

    def _entry(self, owner: Any) -> _OwnerWrappers:
        base = owner.data_ptr
        entry = self._owners.get(owner)
        if entry is None or entry.base != base:
            entry = self._owners[owner] = _OwnerWrappers(base)
        return entry

    def get(self, owner: Any, img: Image, stream: int, sample_format: Any, color_spec: Any) -> Any:
        """The wrapper of ``img`` (a view of ``owner``'s memory), made once per layout."""
        cache = self._entry(owner).by_view
        key = (self.device, img.data_ptr, img.shape, img.pitch, img.dtype.str, int(sample_format), stream)
        wrapper = cache.get(key)
        if wrapper is None:
            if len(cache) > 4 * (len(owner) if isinstance(owner, ImageBatch) else 1) + 16:
                cache.clear()
            wrapper = _nvimgcodec.load().as_image(img.array, stream, sample_format=sample_format, color_spec=color_spec)
            cache[key] = wrapper
        return wrapper

    def for_slots(self, batch: ImageBatch, slots: list[int], stream: int, sample_format: Any, color_spec: Any) -> list[Any]:
        """Wrappers of ``batch``'s slots ``slots``; the same list again while nothing changed."""
        entry = self._entry(batch)
        key = (self.device, batch.table().tobytes(), tuple(slots), batch.dtype.str, int(sample_format), stream)
        if entry.last_key != key:
            entry.last = [self.get(batch, batch[i], stream, sample_format, color_spec) for i in slots]
            entry.last_key = key
        return entry.last
