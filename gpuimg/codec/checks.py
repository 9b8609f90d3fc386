"""Cheap structural checks of an encoded image, done BEFORE it is decoded: the names under
which they were first published. Each container's check lives in its module
(:mod:`gpuimg.codec.containers`); associated alpha in :mod:`gpuimg.codec.pixels`."""

from .containers import structure_problem
from .containers.jpeg import scan_problem as jpeg_scan_problem
from .containers.tiff import associated_alpha as tiff_associated_alpha
from .pixels import unpremultiply

__all__ = ["structure_problem", "jpeg_scan_problem", "tiff_associated_alpha", "unpremultiply"]
