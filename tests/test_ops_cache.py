"""The ops' one keyed, bounded cache: bounds, counts, threads, and ops unchanged through it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import gpuimg
from gpuimg import ops
from gpuimg.errors import ArgumentError
from gpuimg.ops._engine.cache import Cache, cache, memoized, nbytes

RNG = np.random.default_rng(7)


def test_items_bound_evicts_least_recent():
    c = Cache("test:items", max_items=2)
    for k in "abc":
        c.get_or_make(k, lambda k=k: k.upper())
    assert "a" not in c and "b" in c and "c" in c
    c.get("b")  # b is now the most recent: d pushes c out
    c.get_or_make("d", lambda: "D")
    assert sorted(k for k in "abcd" if k in c) == ["b", "d"]
    s = c.stats()
    assert (s["hits"], s["misses"], s["evictions"], s["items"]) == (1, 4, 2, 2)


def test_bytes_bound_keeps_the_newest():
    c = Cache("test:bytes", max_bytes=100)
    c.get_or_make(1, lambda: np.zeros(60, np.uint8))
    c.get_or_make(2, lambda: np.zeros(60, np.uint8))
    assert 1 not in c and c.stats()["bytes"] == 60
    big = c.get_or_make(3, lambda: np.zeros(500, np.uint8))  # larger than the bound: still kept
    assert big.size == 500 and len(c) == 1 and c.stats()["bytes"] == 500
    c.clear()
    assert len(c) == 0 and c.stats()["bytes"] == 0 and c.stats()["misses"] == 3


def test_nbytes_and_bounds_checked():
    assert nbytes((np.zeros(3, np.float32), [np.zeros(2, np.uint16)], None)) == 16
    with pytest.raises(ArgumentError, match="needs a bound"):
        Cache("test:unbounded")
    with pytest.raises(ArgumentError, match=">= 1"):
        Cache("test:zero", max_items=0)


def test_a_failed_make_stores_nothing():
    c = Cache("test:raise", max_items=4)

    def boom():
        raise ValueError("no")

    with pytest.raises(ValueError):
        c.get_or_make("k", boom)
    assert "k" not in c and c.get_or_make("k", lambda: 1) == 1


def test_threads_see_one_value_per_key():
    c = Cache("test:threads", max_items=8)
    made, seen = [], []
    start = threading.Barrier(8)

    def worker():
        start.wait()
        for i in range(200):
            v = c.get_or_make(i % 16, lambda i=i: made.append(i) or object())
            seen.append((i % 16, v))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = c.stats()
    assert s["items"] <= 8 and s["hits"] + s["misses"] == 8 * 200
    assert s["items"] + s["evictions"] <= len(made)


def test_memoized_counts_and_named_registry():
    calls = []

    @memoized("test:memo", max_items=2)
    def square(x, power=2):
        calls.append(x)
        return x**power

    assert [square(2), square(2), square(3), square(2, power=3)] == [4, 4, 9, 8]
    assert calls == [2, 3, 2]
    assert cache("test:memo") is cache("test:memo", max_items=99)  # made once, by name
    s = ops.cache_stats()["test:memo"]
    assert (s["hits"], s["misses"], s["evictions"]) == (1, 3, 1)
    with pytest.raises(TypeError):
        square([1])  # unhashable: refused as lru_cache refuses it


def test_every_op_cache_is_bounded_and_named():
    stats = ops.cache_stats()
    for name in ("kernels:functions", "kernels:modules", "resample:plans", "resample:blobs", "separable:weights",
                 "remap:blobs", "pointwise:plans", "color:profile-tables", "color:table-blobs"):
        assert name in stats, name
    assert all(s["max_items"] or s["max_bytes"] for s in stats.values())


def test_ops_give_the_same_results_through_a_cleared_cache():
    img = gpuimg.Image.from_array(RNG.integers(0, 256, (37, 45, 3), np.uint8))
    batch = gpuimg.ImageBatch.from_images([img, gpuimg.Image.from_array(RNG.integers(0, 256, (20, 31, 3), np.uint8))])

    def run():
        return [
            ops.geometry.resize(img, (19, 23), method="lanczos").numpy(),
            ops.geometry.resize(batch, (16, 16)).numpy()[0],
            ops.geometry.pad(img, 3, mode="reflect").numpy(),
            ops.filters.gaussian_blur(img, 1.3).numpy(),
            ops.filters.median_blur(img, 5).numpy(),
            ops.color.adjust_contrast(img, 0.8).numpy(),
            np.asarray(ops.color.to_tensor(img, mean=(0.5,), std=(0.25,))),
        ]

    first, hot = run(), run()
    ops.clear_caches()
    cold = run()
    for a, b, c in zip(first, hot, cold):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert ops.cache_stats()["resample:plans"]["hits"] >= 2


# ----------------------------------------------------------------------------- OpInfo facts


def test_opinfo_says_what_a_step_does_to_metadata_and_colour():
    from gpuimg.ops import registry
    from gpuimg.pipeline.process import colour_intent
    from gpuimg.pipeline.steps import Step

    conv, thumb, blur = (registry.get_op(n) for n in ("convert_colorspace", "fit_thumbnail", "gaussian_blur"))
    assert conv.sets_metadata and thumb.sets_metadata and not blur.sets_metadata
    assert conv.intent_of({}) == "relative" and conv.intent_of({"intent": "perceptual"}) == "perceptual"
    assert thumb.intent_of({}) == "relative" and thumb.intent_of({"to_srgb": False}) is None
    assert blur.colour_intent is None and blur.intent_of({"sigma": 2}) is None
    assert not hasattr(conv.fn, "sets_metadata") and not hasattr(thumb.fn, "colour_intent")
    # a step given as the op itself (a callable) learns the same from the registry
    assert Step(ops.color.convert_colorspace, "cpu").op is conv and Step(lambda b: b, "cpu").op is None
    assert colour_intent([Step(("fit_thumbnail", {"size": 8}), "cpu")]) == "relative"
    assert colour_intent([Step(("fit_thumbnail", {"size": 8, "to_srgb": False}), "cpu")]) is None


def test_renamed_names_keep_their_former_aliases():
    from gpuimg.ops import color
    from gpuimg.ops.color import fusion
    from gpuimg.pipeline.steps import Step as PipelineStep

    assert color.MODES is color.COLOR_MODES == ("gray", "rgb", "bgr", "rgba")
    assert fusion.Step is color.Step is color.PointwiseStep and color.PointwiseStep is not PipelineStep
