import pytest

import gpuimg
from gpuimg.memory import GROWTH_FACTOR, Buffer, scratch


def test_buffer_growth_policy_is_amortised(device):
    buf = Buffer(1000, device)
    assert gpuimg.memory_stats()["allocations"] == 1
    assert not buf.ensure(buf.capacity)  # fits: nothing happens
    grew = buf.ensure(buf.capacity + 1)  # just over: grows by the factor, not by one byte
    assert grew and buf.capacity >= int(1024 * GROWTH_FACTOR)
    stats = gpuimg.memory_stats()
    assert stats["allocations"] == 2 and stats["growths"] == 1
    # a stream of slowly growing requests causes only logarithmically many growths
    for n in range(buf.capacity, 50 * buf.capacity, 997):
        buf.ensure(n)
    assert gpuimg.memory_stats()["growths"] < 15


def test_bytes_reserved_follows_live_buffers(device):
    before = gpuimg.memory_stats()["bytes_reserved"]
    buf = Buffer(4096, device)
    assert gpuimg.memory_stats()["bytes_reserved"] == before + buf.capacity
    del buf
    assert gpuimg.memory_stats()["bytes_reserved"] == before


def test_reset_keeps_reserved(device):
    buf = Buffer(2048, device)
    gpuimg.reset_memory_stats()
    stats = gpuimg.memory_stats(device)
    assert stats["allocations"] == 0 and stats["bytes_reserved"] >= buf.capacity


def test_scratch_is_reused_per_name(device):
    a = scratch("test-a", 100, device)
    gpuimg.reset_memory_stats()
    assert scratch("test-a", 50, device) is a
    assert gpuimg.memory_stats()["allocations"] == 0
    assert scratch("test-b", 50, device) is not a


def test_bad_sizes():
    with pytest.raises(ValueError, match="nbytes"):
        Buffer(-1, "cpu")


def test_release_inside_a_stats_call_does_not_deadlock():
    """The GC may run a buffer's release finalizer while the stats lock is held (an
    ImageBatch is a reference cycle, freed only by the collector) in the same thread."""
    import gc
    import threading

    from gpuimg import ImageBatch
    from gpuimg import memory

    def hold_lock_and_collect():
        ImageBatch.empty([(8, 8)] * 2, device="cpu")  # unreachable cycle, waits for the GC
        with memory._lock:
            gc.collect()  # runs the release finalizer, which takes the lock again

    worker = threading.Thread(target=hold_lock_and_collect, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "releasing a buffer inside a stats call deadlocked"


def test_allocation_failure_is_a_clear_gpuimg_error(device):
    """An impossible size names the bytes, the device and what it was for, and stays a
    MemoryError (the pipeline splits a batch on any MemoryError)."""
    # 300 TB: more than a 47-bit address space can map, so it fails even where the host
    # overcommits memory (a 3 TB NumPy array "succeeds" there, lazily)
    with pytest.raises(gpuimg.OutOfMemoryError, match=r"10000000x10000000x3 uint8 image") as info:
        gpuimg.Image.empty(10**7, 10**7, device=device)
    assert isinstance(info.value, MemoryError) and isinstance(info.value, gpuimg.GpuImgError)
    assert "300,000,000,000,000 bytes" in str(info.value)
    with pytest.raises(gpuimg.OutOfMemoryError, match="a batch of 2 images"):
        gpuimg.ImageBatch.empty([(10**7, 10**7), (2, 2)], device=device)
    grown = gpuimg.Image.empty(4, 4, device=device)
    with pytest.raises(gpuimg.OutOfMemoryError, match="4x4x3 uint8 image"):  # growth names the first purpose
        grown.set_shape(10**7, 10**7)
    assert grown.shape == (4, 4, 3)  # a failed growth leaves a usable image of the old shape
    grown.array[...] = 5
    assert (grown.numpy() == 5).all() and grown.capacity >= 48


def test_recent_allocations_name_the_buffer_that_grew(device):
    gpuimg.reset_memory_stats()
    buf = Buffer(1000, device, purpose="the test's arena")
    assert not buf.ensure(900)  # fits: nothing allocated
    assert buf.ensure(5000)
    got = [(a.device, a.purpose, a.growth) for a in gpuimg.recent_allocations(device)]
    assert got == [(device, "the test's arena", False), (device, "the test's arena", True)]
    assert gpuimg.recent_allocations(device)[-1].nbytes == buf.capacity >= 5000
    assert len(gpuimg.recent_allocations(device)) == gpuimg.memory_stats(device)["allocations"]
    gpuimg.reset_memory_stats()
    assert gpuimg.recent_allocations(device) == []
