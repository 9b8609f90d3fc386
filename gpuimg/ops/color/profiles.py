"""The colour-management ops' former home, kept so that its import path works: everything
lives in :mod:`gpuimg.ops.color.icc` (engine, tables, NumPy twins, kernel, the op).

Example:
    >>> from gpuimg.ops.color.profiles import convert_colorspace
    >>> from gpuimg.ops.color import icc
    >>> convert_colorspace is icc.convert_colorspace
    True
"""

from .icc import (
    GRID,
    INTENTS,
    CmykTable,
    ColorEngineMissingError,
    ProfileTable,
    apply_cmyk_numpy,
    apply_lut_numpy,
    cmyk_lut,
    convert_colorspace,
    profile_lut,
    rgb_profile,
    srgb_profile,
    table_builds,
)

__all__ = ["convert_colorspace", "srgb_profile", "rgb_profile", "profile_lut", "ProfileTable", "apply_lut_numpy", "GRID", "INTENTS",
           "cmyk_lut", "CmykTable", "apply_cmyk_numpy", "table_builds", "ColorEngineMissingError"]
