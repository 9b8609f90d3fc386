"""CPU codecs on a pool of isolated children (gpuimg.codec.isolation).

A large decode call spreads its CPU-codec items over several children, each contained
on its own: the pixels equal one child's, a poison file fails only itself and restarts
only the child that met it, a small call uses one child, and prestart fills the pool.
"""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from conftest import load_asset
from test_decode_robustness import _png_with_text

from gpuimg.codec import Decoder, isolation
from gpuimg.codec.isolation import pool
from gpuimg.device import usable_cores

PIL = pytest.importorskip("PIL")
from PIL import Image as PILImage  # noqa: E402

pytestmark = pytest.mark.skipif(not isolation.supported(), reason="isolated children need Linux memfd")


def _encoded(arr: np.ndarray, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, fmt, **options)
    return buf.getvalue()


def _mixed() -> list[bytes]:
    """PNG, lossless WebP and TIFF files of different sizes and contents."""
    photos = [load_asset("chelsea.png"), load_asset("coffee.png")]
    files = []
    for k in range(9):
        arr = np.ascontiguousarray(photos[k % 2][: 40 + 13 * k, : 50 + 7 * k])
        fmt, opts = [("PNG", {}), ("WEBP", {"lossless": True}), ("TIFF", {})][k % 3]
        files.append(_encoded(arr, fmt, **opts))
    return files


@pytest.fixture
def fresh_pool(monkeypatch):
    """An empty pool (children of earlier tests stopped), emptied again after the test;
    children started here have the self-test hooks on (a marker in a file crashes or
    hangs the child that decodes it, as a hostile file would)."""
    pool._stop_all()
    monkeypatch.setenv("GPUIMG_ISOLATION_SELFTEST", "1")
    yield
    pool._stop_all()


@pytest.fixture
def calls(monkeypatch):
    """(child pid, decoded item count) of every call a child serves."""
    seen: list[tuple[int, int]] = []
    real = pool._Child.call

    def spy(self, items, config):
        seen.append((self.proc.pid, len(items)))
        return real(self, items, config)

    monkeypatch.setattr(pool._Child, "call", spy)
    return seen


def _wait_idle(n: int, threads: int = 0) -> None:
    deadline = time.monotonic() + 120
    while sum(c.threads == threads for c in pool._idle) < n:
        assert time.monotonic() < deadline, "the pool did not fill"
        time.sleep(0.05)


def test_two_children_decode_what_one_does(fresh_pool, calls):
    files = _mixed()
    one = Decoder("cpu", isolation=isolation.Isolation(children=1, split_bytes=1)).decode_batch(files).raise_errors()
    assert len({pid for pid, _ in calls}) == 1
    isolation.prestart(0, isolation.Isolation(children=2), children=None)
    _wait_idle(2)
    calls.clear()
    two = Decoder("cpu", isolation=isolation.Isolation(children=2, split_bytes=1)).decode_batch(files).raise_errors()
    assert len({pid for pid, _ in calls}) == 2 and sum(n for _, n in calls) == len(files)
    for a, b in zip(one.images, two.images):
        assert np.array_equal(a.numpy(), b.numpy())
    with PILImage.open(io.BytesIO(files[1])) as im:
        assert np.array_equal(two.images[1].numpy(), np.asarray(im.convert("RGB")))


@pytest.mark.parametrize("kind", ["crash", "hang"])
def test_a_poison_file_in_one_share_fails_only_itself(fresh_pool, calls, kind):
    arr = load_asset("chelsea.png")[:40, :60]
    good = _png_with_text(arr, b"fine")
    files = [good] * 7
    files[3] = _png_with_text(arr, b"gpuimg-selftest-" + kind.encode())
    config = isolation.Isolation(children=2, split_bytes=1, timeout_s=1.0)
    isolation.prestart(0, config, children=None)
    _wait_idle(2)
    first = {c.proc.pid for c in pool._idle}
    res = Decoder("cpu", isolation=config).decode_batch(files)
    assert res.indices == [0, 1, 2, 4, 5, 6] and [e.index for e in res.errors] == [3]
    assert {"crash": "SIGSEGV", "hang": "did not finish within"}[kind] in str(res.errors[0].error)
    assert all(np.array_equal(img.numpy(), arr) for img in res.images)
    # The share without the poison file took one call on its first child; only the
    # other share was bisected, on restarted children.
    by_pid: dict[int, int] = {}
    for pid, n in calls:
        by_pid.setdefault(pid, 0)
        by_pid[pid] += 1
    untouched = [pid for pid in first if by_pid.get(pid) == 1]
    assert len(untouched) == 1 and len(by_pid) > 2


def test_children_one_never_spreads(fresh_pool, calls):
    isolation.prestart(0, isolation.Isolation(children=3), children=None)
    _wait_idle(3)
    calls.clear()
    Decoder("cpu", isolation=isolation.Isolation(children=1, split_bytes=1)).decode_batch(_mixed()).raise_errors()
    assert len(calls) == 1
    calls.clear()
    Decoder("cpu", isolation=isolation.Isolation(children=3, split_bytes=1)).decode_batch(_mixed()).raise_errors()
    assert len({pid for pid, _ in calls}) == 3


def test_a_small_call_starts_one_child(fresh_pool, calls):
    dec = Decoder("cpu", isolation=isolation.Isolation(children=4))
    dec.decode_batch(_mixed()[:2]).raise_errors()  # a few KB: far below split_bytes
    assert pool._count.get(0) == 1 and len(calls) == 1
    assert not [t for t in threading.enumerate() if t.name == "gpuimg-isolation-grow"]


def test_a_large_call_grows_the_pool_for_the_next(fresh_pool, calls):
    config = isolation.Isolation(children=2, split_bytes=1)
    files = _mixed()
    Decoder("cpu", isolation=config).decode_batch(files).raise_errors()
    _wait_idle(2)  # the second child started in the background
    calls.clear()
    Decoder("cpu", isolation=config).decode_batch(files).raise_errors()
    assert len({pid for pid, _ in calls}) == 2


def test_each_child_holds_only_its_share(fresh_pool):
    config = isolation.Isolation(children=2, split_bytes=1)
    isolation.prestart(0, config, children=None)
    _wait_idle(2)
    arr = np.zeros((512, 512, 3), np.uint8)
    files = [_encoded(arr, "PNG")] * 8
    Decoder("cpu", isolation=config).decode_batch(files).raise_errors()
    whole = 8 * arr.nbytes
    capacities = [c.capacity for c in pool._idle]
    assert len(capacities) == 2 and all(0 < cap < whole * 3 // 4 for cap in capacities)


def test_pixels_are_delivered_on_the_calling_thread(fresh_pool):
    config = isolation.Isolation(children=2, split_bytes=1)
    isolation.prestart(0, config, children=None)
    _wait_idle(2)
    arr = load_asset("chelsea.png")[:30, :40]
    item = isolation.IsolatedItem(_encoded(arr, "PNG"), 30, 40, 3, np.dtype(np.uint8), "I_RGB", "SRGB", False, "x.png")
    where: set[int] = set()
    got: dict[int, np.ndarray] = {}

    def deliver(k: int, px: np.ndarray) -> None:
        where.add(threading.get_ident())
        got[k] = px.copy()

    assert isolation.decode([item] * 6, deliver, config) == [None] * 6
    assert where == {threading.get_ident()} and sorted(got) == list(range(6))
    assert all(np.array_equal(px, arr) for px in got.values())


def test_split_balances_decoded_bytes():
    def item(h: int) -> isolation.IsolatedItem:
        return isolation.IsolatedItem(b"", h, 100, 3, np.dtype(np.uint8), "I_RGB", "SRGB", False, "x")

    items = [item(400), item(100), item(100), item(100), item(100)]
    assert pool._split(items, 2) == [[0], [1, 2, 3, 4]]
    assert pool._split(items[:1], 3) == [[0]]


def test_children_settings():
    assert isolation.Isolation(children=1).pool_size() == 1
    assert isolation.Isolation().pool_size() == usable_cores()
    assert isolation.Isolation().pool_size(threads=usable_cores()) == 1
    assert isolation.Isolation(children=8, split_bytes=10).children_for(3, 1000) == 3
    for bad in ({"children": 0}, {"children": 1.5}, {"split_bytes": 0}):
        with pytest.raises(ValueError, match="Isolation"):
            isolation.Isolation(**bad)


@pytest.mark.parametrize("codec, options", [("png", {}), ("webp", {"quality": 90}), ("tiff", {}), ("bmp", {})])
def test_a_cpu_encode_batch_split_over_threads_gives_the_same_files(codec, options):
    from gpuimg import Image
    from gpuimg.codec import Encoder

    photos = [load_asset("chelsea.png"), load_asset("coffee.png")]
    imgs = [Image.from_array(np.ascontiguousarray(photos[k % 2][: 200 + 10 * k, : 300 - 5 * k])) for k in range(7)]
    one = Encoder("cpu", cpu_threads=1).encode_batch(imgs, codec, **options)
    split = Encoder("cpu", cpu_threads=3)
    for _ in range(2):  # the second batch reuses the helper encoders and their streams
        assert split.encode_batch(imgs, codec, **options) == one
    assert len(split._helpers) == 2
    back = Decoder("cpu").decode_batch(one[:2]).raise_errors()
    if codec != "webp":
        assert np.array_equal(back.images[1].numpy(), imgs[1].numpy())


def test_encoder_cpu_threads_setting():
    from gpuimg.codec import Encoder

    assert Encoder("cpu").cpu_threads == usable_cores()
    with pytest.raises(ValueError, match="cpu_threads"):
        Encoder("cpu", cpu_threads=0)
