"""The :data:`step` namespace: checked builders of fusable steps, one per pointwise op."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import ArgumentError, check_choice
from .._engine.args import check_range
from ._base import PointwiseStep
from .steps import (
    COLOR_MODES,
    _GRAY_WEIGHTS,
    _Brightness,
    _Contrast,
    _Convert,
    _Equalize,
    _Gamma,
    _Hue,
    _Invert,
    _Opacity,
    _Otsu,
    _Saturation,
    _Threshold,
)

__all__ = ["step"]

# ----------------------------------------------------------------------------- step builders


class _StepBuilders:
    """Builders of fusable steps: ``color.chain(color.step.brightness(1.2), ...)``.

    Each takes the same parameters as the op of the same meaning (a scalar or one value per
    image) and checks them the same way.

    Example:
        >>> from gpuimg.ops import color
        >>> color.step.gamma(0.8).kind
        'gamma'
    """

    @staticmethod
    def brightness(factor: float | Sequence[float]) -> PointwiseStep:
        check_range(factor, "factor", 0.0, np.inf)
        return _Brightness("brightness", (factor,))

    @staticmethod
    def contrast(factor: float | Sequence[float]) -> PointwiseStep:
        check_range(factor, "factor", 0.0, np.inf)
        return _Contrast("contrast", (factor,), stat="gray_sum")

    @staticmethod
    def saturation(factor: float | Sequence[float]) -> PointwiseStep:
        check_range(factor, "factor", 0.0, np.inf)
        return _Saturation("saturation", (factor,))

    @staticmethod
    def hue(factor: float | Sequence[float]) -> PointwiseStep:
        check_range(factor, "factor", -0.5, 0.5)
        return _Hue("hue", (factor,))

    @staticmethod
    def gamma(gamma: float | Sequence[float], gain: float | Sequence[float] = 1.0) -> PointwiseStep:
        check_range(gamma, "gamma", 0.0, np.inf)
        check_range(gain, "gain", 0.0, np.inf)
        return _Gamma("gamma", (gamma, gain))

    @staticmethod
    def invert() -> PointwiseStep:
        return _Invert("invert")

    @staticmethod
    def opacity(factor: float | Sequence[float]) -> PointwiseStep:
        check_range(factor, "opacity", 0.0, 1.0)
        return _Opacity("opacity", (factor,))

    @staticmethod
    def threshold(value: float | Sequence[float] | str, maxval: float = 255) -> PointwiseStep:
        check_range(maxval, "maxval", 0, 255)
        level = float(np.rint(maxval))
        if isinstance(value, str):
            if value != "otsu":
                raise ArgumentError(f"value={value!r} is not a threshold; give a number in [0, 255] or 'otsu'")
            return _Otsu("otsu", (level,), stat="gray")
        check_range(value, "value", -np.inf, np.inf)
        return _Threshold("threshold", (np.floor(np.asarray(value, np.float64)), level))

    @staticmethod
    def equalize() -> PointwiseStep:
        return _Equalize("equalize", stat="channels")

    @staticmethod
    def convert(mode: str, src_mode: str | None = None, weights: str = "bt601") -> PointwiseStep:
        return _convert_step(mode, src_mode, weights, channels=None)

    @staticmethod
    def to_gray(weights: str = "bt601", src_mode: str = "rgb") -> PointwiseStep:
        return _convert_step("gray", src_mode, weights, channels=None)


step = _StepBuilders()


def _check_mode(mode: Any, name: str) -> str:
    check_choice(mode, name, COLOR_MODES, "a colour mode")
    return mode


def _convert_step(mode: str, src_mode: str | None, weights: str, channels: int | None) -> PointwiseStep:
    _check_mode(mode, "mode")
    check_choice(weights, "weights", tuple(_GRAY_WEIGHTS))
    if src_mode is None:
        src_mode = {1: "gray", 3: "rgb", 4: "rgba"}[channels or 3]
    _check_mode(src_mode, "src_mode")
    return _Convert("convert", src_mode=src_mode, dst_mode=mode, weights=weights)
