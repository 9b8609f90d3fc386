"""The codecs' containment: CPU codecs in supervised child processes, GPU decodes proven written.

- :mod:`~gpuimg.codec.isolation.pool`: :class:`Isolation` (the settings), the pool of
  child processes and :func:`decode`, which spreads a call over them and bisects a batch
  after a crash or hang until the poison file fails alone;
- :mod:`~gpuimg.codec.isolation.child`: the child process itself
  (``python -m gpuimg.codec.isolation.child``), nvImageCodec's CPU backends under an
  address-space limit, with a canary over each target;
- :mod:`~gpuimg.codec.isolation.canary`: the same proof for GPU decodes (a decode that
  leaves part of its target unwritten is an error, not an image).

Example:
    >>> Isolation(enabled=False).active
    False
"""

from .pool import (
    IsolatedItem,
    Isolation,
    IsolationUnavailable,
    child_threads,
    decode,
    prestart,
    supported,
    unwritten_reason,
)

__all__ = ["Isolation", "IsolatedItem", "IsolationUnavailable", "decode", "prestart", "supported", "child_threads",
           "unwritten_reason"]  # fmt: skip
