"""Deprecated location kept only for notebooks/01_quickstart and 03_effects (outside the ops
room): use ``from gpuimg.ops import launch_stats, reset_launch_stats``. Remove once the
notebooks are updated."""

from ._engine.batch import launch_stats, reset_launch_stats

__all__ = ["launch_stats", "reset_launch_stats"]
