"""TIFF-structured tag directories: :mod:`gpuimg.meta.tiff_ifd`, under the name first published here."""

from ..meta.tiff_ifd import MAX_ENTRIES, POINTER_TAGS, TYPE_SIZES, Entry, IfdError, byte_order, read_ifd, write_ifds

__all__ = ["Entry", "IfdError", "byte_order", "read_ifd", "write_ifds", "TYPE_SIZES", "POINTER_TAGS", "MAX_ENTRIES"]
