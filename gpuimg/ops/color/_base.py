"""The :class:`PointwiseStep` base of every fusable pointwise op, and what steps share (private).

A step is a small piece of CUDA working on one pixel plus its NumPy twin; see
:mod:`gpuimg.ops.color.fusion` for how a chain of them becomes one kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._engine.args import per_sample

BINS = 256


# ----------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class PointwiseStep:
    """One pointwise operation: CUDA snippet, NumPy twin, parameters and channel effect.

    Subclasses set ``kind`` (part of the kernel cache key), ``values`` (parameter values, each
    a scalar or one per image) and implement ``cuda``/``numpy``. ``stat`` is None,
    "gray_sum" (sum of torchvision's floored gray level), "gray" (its histogram) or
    "channels" (one histogram per channel).
    """

    kind: str
    values: tuple[Any, ...] = ()
    stat: str | None = None

    # -- what subclasses override
    def out_channels(self, channels: int) -> int:
        return channels

    def check(self, channels: int) -> None:
        """Raise ValueError when the step cannot run on ``channels`` channels."""

    def cuda(self, channels: int, p: str, sh: str) -> str:  # pragma: no cover - abstract
        """CUDA statements over ``float v[4]``; ``p`` names the params, ``sh`` the step's shared array."""
        raise NotImplementedError

    def prologue(self, channels: int, p: str, hist: str, sh: str) -> str:
        """Per-block setup run before the pixel loop (e.g. a LUT in shared memory ``sh``)."""
        return ""

    def shared_floats(self, channels: int) -> int:
        return 0

    def numpy(self, v: np.ndarray, p: np.ndarray, hist: np.ndarray | None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    # -- shared plumbing
    def key(self, channels: int) -> tuple[Any, ...]:
        """What the generated code depends on (not the parameter values)."""
        return (self.kind, channels)

    def param_rows(self, count: int) -> np.ndarray:
        """Parameters as (count, len(values)) float32: one row per image."""
        if not self.values:
            return np.zeros((count, 0), np.float32)
        cols = [per_sample(v, count, f"{self.kind} parameter") for v in self.values]
        return np.stack(cols, axis=1).astype(np.float32)

    def stat_bins(self, channels: int) -> int:
        """u32 slots of the statistic: a 64-bit sum takes 2, a histogram 256 per channel."""
        if self.stat is None:
            return 0
        if self.stat == "gray_sum":
            return 2
        return BINS * (channels if self.stat == "channels" else 1)


# The former name (the pipeline has its own Step: one configured stage of a run).
Step = PointwiseStep


def gray_tv_numpy(v: np.ndarray) -> np.ndarray:
    """torchvision's floored float gray level, in float32 like the CUDA ``tv_gray``."""
    f = np.float32
    return np.floor(v[..., 0] * f(0.2989) + v[..., 1] * f(0.587) + v[..., 2] * f(0.114))
