"""THE cache of the ops: one keyed, bounded store that every op's reusable work goes through.

Ops keep what they made once and reuse it on the next call with the same key: compiled
kernels, resample plans, packed parameter blobs, colour tables. Each such store is a
named :class:`Cache` made by :func:`cache`, so one eviction rule holds for all of them
and :func:`cache_stats` counts them in one place:

- a bound in bytes (``max_bytes``, for values whose size is known: NumPy arrays and
  tuples of them are measured by :func:`nbytes`) and/or in items (``max_items``, for
  values whose size is not known: kernels, plans); past either bound the least recently
  used entries go, but the newest always stays (a value larger than the whole bound is
  still returned and kept until the next one arrives);
- ``make`` runs outside the lock (a colour table takes half a second; other threads keep
  reading meanwhile); two threads missing the same key at once may both make it, and
  the first one stored wins, so every caller sees one value per key.

Example:
    >>> c = cache("doctest:squares", max_items=2)
    >>> [c.get_or_make(k, lambda k=k: k * k) for k in (2, 3, 2, 4)]
    [4, 9, 4, 16]
    >>> s = cache_stats()["doctest:squares"]
    >>> s["hits"], s["misses"], s["evictions"], s["items"]
    (1, 3, 1, 2)
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import numpy as np

from ...errors import ArgumentError

__all__ = ["Cache", "cache", "memoized", "cache_stats", "clear_caches", "nbytes"]

T = TypeVar("T")


def nbytes(value: Any) -> int:
    """Bytes of the arrays in ``value`` (an array, or a tuple/list of arrays and other
    values, nested); 0 for what holds no array.

    Example:
        >>> nbytes((np.zeros(4, np.uint8), (np.zeros(2, np.float32), "x")))
        12
    """
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, tuple | list):
        return sum(nbytes(v) for v in value)
    return 0


class Cache:
    """One named store: ``key -> value``, LRU within ``max_items`` and ``max_bytes``.

    ``size``: how a value's bytes are measured (default :func:`nbytes`); only used when
    ``max_bytes`` is set. Made through :func:`cache`, which registers it by name.

    Example:
        >>> c = Cache("doctest:bytes", max_bytes=8)
        >>> _ = c.get_or_make("a", lambda: np.zeros(6, np.uint8))
        >>> _ = c.get_or_make("b", lambda: np.zeros(6, np.uint8))  # 12 bytes > 8: "a" goes
        >>> "a" in c, "b" in c, c.stats()["bytes"]
        (False, True, 6)
    """

    def __init__(self, name: str, *, max_items: int | None = None, max_bytes: int | None = None,
                 size: Callable[[Any], int] = nbytes):
        if max_items is None and max_bytes is None:
            raise ArgumentError(f"cache {name!r} needs a bound: max_items, max_bytes or both")
        if (max_items is not None and max_items < 1) or (max_bytes is not None and max_bytes < 1):
            raise ArgumentError(f"cache {name!r}: bounds must be >= 1, got max_items={max_items}, max_bytes={max_bytes}")
        self.name, self.max_items, self.max_bytes, self._size = name, max_items, max_bytes, size
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = self.hits = self.misses = self.evictions = 0

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value under ``key`` (counted as a hit, and made the most recent), else
        ``default`` (counted as a miss)."""
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                self.misses += 1
                return default
            self._items.move_to_end(key)
            self.hits += 1
            return hit[0]

    def get_or_make(self, key: Hashable, make: Callable[[], T]) -> T:
        """The value under ``key``; on a miss ``make()`` (outside the lock) is stored and
        returned. A ``make`` that raises stores nothing."""
        missing = object()
        value = self.get(key, missing)
        if value is not missing:
            return value
        return self.put(key, make())

    def put(self, key: Hashable, value: T) -> T:
        """Store ``value`` under ``key`` unless another thread stored one first (that one
        is returned: one value per key), then evict past the bounds."""
        size = self._size(value) if self.max_bytes is not None else 0
        with self._lock:
            held = self._items.get(key)
            if held is not None:
                self._items.move_to_end(key)
                return held[0]
            self._items[key] = (value, size)
            self._bytes += size
            while len(self._items) > 1 and self._over():
                _, (_, gone) = self._items.popitem(last=False)
                self._bytes -= gone
                self.evictions += 1
        return value

    def _over(self) -> bool:
        return ((self.max_items is not None and len(self._items) > self.max_items)
                or (self.max_bytes is not None and self._bytes > self.max_bytes))

    def peek(self, key: Hashable, default: Any = None) -> Any:
        """The value under ``key`` or ``default``, neither counted nor made recent (a
        second look by a caller that already counted its miss)."""
        with self._lock:
            hit = self._items.get(key)
            return default if hit is None else hit[0]

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        """Drop every entry (the counts stay: they tell the whole run)."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def stats(self) -> dict[str, int | None]:
        """hits, misses, evictions, items and bytes held, and the two bounds."""
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "evictions": self.evictions, "items": len(self._items),
                    "bytes": self._bytes, "max_items": self.max_items, "max_bytes": self.max_bytes}


_caches: dict[str, Cache] = {}
_registry_lock = threading.Lock()


def cache(name: str, *, max_items: int | None = None, max_bytes: int | None = None,
          size: Callable[[Any], int] = nbytes) -> Cache:
    """The :class:`Cache` called ``name``, made on first use with these bounds (a module
    makes its caches at import; asking again by name returns the same one).

    Example:
        >>> cache("doctest:same", max_items=1) is cache("doctest:same", max_items=1)
        True
    """
    with _registry_lock:
        found = _caches.get(name)
        if found is None:
            found = _caches[name] = Cache(name, max_items=max_items, max_bytes=max_bytes, size=size)
        return found


def memoized(name: str, *, max_items: int | None = None, max_bytes: int | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """A pure function of hashable arguments, its results kept in the cache ``name``
    (keyed by the positional and keyword arguments as given, as ``functools.lru_cache``
    does; an unhashable argument raises TypeError before the function runs).

    Example:
        >>> @memoized("doctest:double", max_items=4)
        ... def double(x):
        ...     return 2 * x
        >>> double(3), double(3), cache_stats()["doctest:double"]["hits"]
        (6, 6, 1)
    """

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        store = cache(name, max_items=max_items, max_bytes=max_bytes)

        @functools.wraps(fn)
        def cached(*args: Any, **kwargs: Any) -> T:
            key = (args, tuple(sorted(kwargs.items()))) if kwargs else args
            return store.get_or_make(key, lambda: fn(*args, **kwargs))

        return cached

    return wrap


def cache_stats() -> dict[str, dict[str, int | None]]:
    """Every named cache's counts (see :meth:`Cache.stats`), name -> counts.

    Example:
        >>> import gpuimg.ops
        >>> "resample:plans" in gpuimg.ops.cache_stats()
        True
    """
    with _registry_lock:
        caches = list(_caches.values())
    return {c.name: c.stats() for c in caches}


def clear_caches() -> None:
    """Empty every named cache (what is in use stays valid: entries are only dropped)."""
    with _registry_lock:
        caches = list(_caches.values())
    for c in caches:
        c.clear()
