"""Metadata into encoded files: each container's embed (:mod:`gpuimg.codec.containers`)
and what an output keeps (:func:`gpuimg.meta.for_output`), under the names first published here."""

from ..meta.metadata import for_output
from .containers import embed, stores_metadata
from .containers.jpeg import ICC_SEGMENT_BYTES

__all__ = ["embed", "stores_metadata", "for_output", "ICC_SEGMENT_BYTES"]
