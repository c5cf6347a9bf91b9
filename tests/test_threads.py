"""Threads of the CPU path: the limits users already set are honoured (thread_limit,
GPU_HISTEQ_NUM_THREADS, OMP_NUM_THREADS, torch's threads, DataLoader workers, threadpoolctl), and
one pool of threads is kept from call to call instead of threads started per call."""

import multiprocessing
import threading

import numpy as np
import pytest

import gpu_histeq
from gpu_histeq import _cpu, _planes, equalize_hist


@pytest.fixture
def cores(monkeypatch):
    """Four cores, no thread setting in the environment (torch's limit aside)."""
    for name in ("GPU_HISTEQ_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_planes.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    torch = __import__("sys").modules.get("torch")
    if torch is not None:  # a test before may have imported torch: no cap from it here
        saved = torch.get_num_threads()
        torch.set_num_threads(4)
        yield 4
        torch.set_num_threads(saved)
    else:
        yield 4


def started_threads(function):
    """``(result, threads started)`` of `function()`: Thread.start calls during it."""
    starts = []
    original = threading.Thread.start

    def counted(self):
        starts.append(self.name)
        original(self)

    threading.Thread.start = counted
    try:
        return function(), len(starts)
    finally:
        threading.Thread.start = original


def test_thread_limit_caps_and_nests(cores):
    assert _planes.thread_count() == 4
    with gpu_histeq.thread_limit(2):
        assert _planes.thread_count() == 2
        with gpu_histeq.thread_limit(3):  # the innermost limit holds
            assert _planes.thread_count() == 3
        with gpu_histeq.thread_limit(1):
            assert _planes.thread_count() == 1
        assert _planes.thread_count() == 2
    assert _planes.thread_count() == 4
    with gpu_histeq.thread_limit(16):  # a limit, not a count: never more than the cores
        assert _planes.thread_count() == 4


@pytest.mark.parametrize("limit", [0, -1, 1.5, "2", True, None])
def test_thread_limit_refuses_what_is_not_a_positive_integer(limit):
    with pytest.raises(ValueError, match=r"`limit` must be a positive integer, got"):
        with gpu_histeq.thread_limit(limit):
            pass


def test_environment_settings(cores, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert _planes.thread_count() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2,1")  # nested OpenMP levels: the first one
    assert _planes.thread_count() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "many")  # as OpenMP does, an unusable value is ignored
    assert _planes.thread_count() == 4
    monkeypatch.setenv("GPU_HISTEQ_NUM_THREADS", "6")  # gpu_histeq's own setting is used as given
    assert _planes.thread_count() == 6
    with gpu_histeq.thread_limit(5):
        assert _planes.thread_count() == 5
    monkeypatch.setenv("GPU_HISTEQ_NUM_THREADS", "0")
    with pytest.raises(ValueError, match="GPU_HISTEQ_NUM_THREADS must be a positive integer"):
        equalize_hist(np.zeros((8, 8), np.uint8))  # the one-call path checks it too


def test_torch_threads_cap_ours(cores):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    assert _planes.thread_count() == 1
    torch.set_num_threads(3)
    assert _planes.thread_count() == 3


def _in_worker(index):
    """What a DataLoader worker sees: thread count, threads started by a call that has several
    blocks, and the result's agreement with the one-thread call."""
    import torch
    images = np.random.default_rng(index).integers(0, 256, (3, 512, 512), dtype=np.uint8)
    result, started = started_threads(lambda: equalize_hist(images))
    with gpu_histeq.thread_limit(1):
        same = bool((result == equalize_hist(images)).all())
    return torch.tensor([_planes.thread_count(), started, same])


class _Samples:
    def __len__(self):
        return 3

    def __getitem__(self, index):
        return _in_worker(index)


def test_dataloader_workers_run_one_thread(cores):
    pytest.importorskip("torch")
    from torch.utils.data import DataLoader
    assert len(_planes.plane_blocks(np, 3, 512 * 512, 1)) > 1  # so a call could use threads
    loader = DataLoader(_Samples(), batch_size=3, num_workers=1,
                        multiprocessing_context="fork")
    (batch,) = list(loader)
    assert batch.tolist() == [[1, 0, 1]] * 3


def test_the_pool_is_reused_and_every_block_runs_once(cores):
    blocks = list(range(40))
    with gpu_histeq.thread_limit(3):
        first, started = started_threads(
            lambda: _planes.map_blocks(np, lambda b: (b * b, threading.get_ident()), blocks))
        assert [value for value, _ in first] == [b * b for b in blocks]
        # the pool has at least the two helpers this call asked for; later calls start none
        for _ in range(5):
            again, started = started_threads(lambda: _planes.map_blocks(
                np, lambda b: (b + 1, threading.get_ident()), blocks))
            assert started == 0
            assert [value for value, _ in again] == [b + 1 for b in blocks]
    assert _planes._POOL.size >= 2
    helpers = {t.ident for t in threading.enumerate() if t.name == "gpu_histeq"}
    assert len(helpers) == _planes._POOL.size


def test_one_thread_runs_every_block_in_the_caller(cores):
    caller = threading.get_ident()
    with gpu_histeq.thread_limit(1):
        (result, started) = started_threads(
            lambda: _planes.map_blocks(np, lambda b: threading.get_ident(), list(range(9))))
    assert result == [caller] * 9 and started == 0


def test_calls_from_several_threads_share_the_pool(cores, monkeypatch):
    images = np.random.default_rng(3).integers(0, 256, (64, 40, 40), dtype=np.uint8)
    monkeypatch.setattr(_planes, "CHUNK_PIXELS", 8 * 40 * 40)  # eight blocks per call
    with gpu_histeq.thread_limit(1):
        expected = equalize_hist(images)
    results = [None] * 6

    def call(index):
        results[index] = equalize_hist(images)

    with gpu_histeq.thread_limit(2):
        callers = [threading.Thread(target=call, args=(i,)) for i in range(6)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
    for result in results:
        np.testing.assert_array_equal(result, expected)


def _child(queue):
    queue.put(_planes.map_blocks(np, lambda b: b * 3, list(range(8))))


def test_a_forked_child_gets_a_pool_of_its_own(cores):
    with gpu_histeq.thread_limit(2):
        _planes.map_blocks(np, lambda b: b, list(range(8)))  # the parent's pool exists
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_child, args=(queue,))
        child.start()
        result = queue.get(timeout=60)
        child.join(timeout=60)
    assert result == [b * 3 for b in range(8)] and child.exitcode == 0


def test_threadpoolctl_limits_our_threads(cores):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _cpu.BUILT:
        pytest.skip("threadpoolctl finds gpu_histeq by its compiled library")
    ours = [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "gpu_histeq"]
    assert len(ours) == 1 and ours[0]["num_threads"] == 4
    with threadpoolctl.threadpool_limits(1):
        assert _planes.thread_count() == 1
        assert started_threads(lambda: _planes.map_blocks(np, lambda b: b, list(range(9))))[1] == 0
    assert _planes.thread_count() == 4
    with threadpoolctl.threadpool_limits({"gpu_histeq": 2}):
        assert _planes.thread_count() == 2
    assert _planes.thread_count() == 4
