"""Image operations, one package per family: geometry, filters, color, compose.

Every op follows one calling convention: ``op(src, ..., *, out=None, stream=None)`` with an
Image or ImageBatch in; ``out=src`` works in place where the shape allows; a given ``out``
is reused without allocation (its logical shape is set, growing only when needed).
Importing this package imports every family, so :mod:`.registry` lists every op.

Example:
    >>> from gpuimg import ops
    >>> "resize" in ops.registry.available_ops()
    True
    >>> ops.cache_stats()["resample:plans"]["max_items"]
    64
    >>> with ops.kernel_config(simd_median=False) as cfg:
    ...     cfg.simd_median
    False
"""

from . import registry
from ._engine.batch import launch_stats, reset_launch_stats
from ._engine.cache import cache, cache_stats, clear_caches
from ._engine.kernels import KernelConfig, kernel_config
from . import color, compose, filters, geometry  # noqa: E402  (fills the registry)

__all__ = ["color", "compose", "filters", "geometry", "registry", "launch_stats", "reset_launch_stats", "cache", "cache_stats", "clear_caches", "KernelConfig", "kernel_config"]
