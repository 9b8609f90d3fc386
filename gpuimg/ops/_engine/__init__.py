"""The ops package's private engine (only ``gpuimg.ops`` may import it).

- :mod:`.cache`: THE keyed, bounded cache every op's reusable work goes through
  (:func:`~gpuimg.ops.cache_stats` counts them all).
- :mod:`.args`: argument checks every op shares (source, channels, per-sample values,
  ranges, border names).
- :mod:`.batch`: the calling convention (``out=`` prepared, in-place detection), any
  source as a batch view, launch counting and grid sizing.
- :mod:`.kernels`: THE CUDA prelude, the per-dtype ``extern "C"`` entry generator, the
  per-device compile cache (kept in :mod:`.cache`), and the tuning :class:`KernelConfig`.
- :mod:`.params`: THE upload of small parameter tables.
"""
