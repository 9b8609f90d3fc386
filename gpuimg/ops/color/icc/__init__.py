"""Colour management: an embedded ICC profile's transform to sRGB, applied as a lookup table.

The transform is built ONCE per profile on the host by LittleCMS (through Pillow's
``ImageCms``: the optional extra ``gpuimg[color]``), sampled into a table, cached by the
profile's hash (the 32 latest, within 256 MB; :func:`table_builds` counts the builds), and
applied to every pixel in ONE kernel launch per Image or ImageBatch (one table per image
of a batch, all in one upload; RGB, RGBA and CMYK images mixed). The NumPy twins are
the CPU path and the oracles of the kernel.

- RGB (:class:`ProfileTable`): a 52^3 grid (every 5th level: grid points are exact 8-bit
  inputs, so the table holds exactly what LittleCMS makes of them) interpolated
  tetrahedrally, plus exact blocks for the cells where that is off by more than a level:
  every 8-bit colour within 1 level of LittleCMS. Building one takes about 0.55 s on 2
  cores (LittleCMS on all 16.7 M colours as one image on a few threads, 0.3 s; the exact
  integer check of every cell, 0.3 s).
- CMYK (:class:`CmykTable`, CMYK JPEGs decoded to their inks by
  ``gpuimg.read(..., mode="cmyk")``): an 86^3 x 16 grid (C, M, Y every 3rd level, K every
  17th) interpolated tetrahedrally in C, M, Y on the two K slices around the pixel's K and
  linearly in K; about 0.35 s to build. Without a profile: Pillow's ``convert("RGB")``.

Rendering intent: relative colorimetric by default (what browsers use for photos; the
same as perceptual for matrix/TRC profiles such as Display P3 and Adobe RGB), without
black-point compensation: ``intent="perceptual"`` selects the other. The result matches
``ImageCms.profileToProfile`` with the same intent within 1-2 levels.

Example:
    >>> import numpy as np, gpuimg
    >>> img = gpuimg.Image.from_array(np.full((2, 2, 3), 120, np.uint8))
    >>> out = convert_colorspace(img, profile=srgb_profile())  # sRGB -> sRGB: identity
    >>> int(abs(out.numpy().astype(int) - 120).max()) <= 1
    True

Modules: :mod:`.engine` (LittleCMS through ImageCms), :mod:`.tables` (the tables and their
cache), :mod:`.numpy_twin` (the CPU path), :mod:`.kernel` (the CUDA source and launch),
:mod:`.op` (:func:`convert_colorspace`).
"""

from .engine import ColorEngineMissingError, srgb_profile
from .numpy_twin import apply_cmyk_numpy, apply_lut_numpy
from .op import convert_colorspace, rgb_profile
from .tables import GRID, INTENTS, CmykTable, ProfileTable, cmyk_lut, profile_lut, table_builds

__all__ = ["convert_colorspace", "srgb_profile", "rgb_profile", "profile_lut", "ProfileTable", "apply_lut_numpy", "GRID", "INTENTS",
           "cmyk_lut", "CmykTable", "apply_cmyk_numpy", "table_builds", "ColorEngineMissingError"]
