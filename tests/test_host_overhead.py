"""The host's work per CuPy call: launch plans cached per configuration, validation of a call
already seen skipped, and which calls CUDA stream capture accepts. Nothing here is timed
(``benchmarks/bench_host_overhead.py`` measures); every test runs on the emulated CuPy, where
the kernels really run, and compares bit for bit with OpenCV or with the same call uncaptured.
"""

import numpy as np
import pytest

from conftest import check_steps, emulated_cupy_or_skip, to_numpy

cv2 = pytest.importorskip("cv2")


@pytest.fixture
def fake(monkeypatch):
    module = emulated_cupy_or_skip(monkeypatch)
    from gpu_histeq._cuda import _kernels
    _kernels.clear_plans()
    yield module
    _kernels.clear_plans()


def _images(shape, dtype=np.uint8, seed=0):
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(info.min, info.max, shape, endpoint=True,
                                                dtype=dtype)


def _opencv(host):
    """cv2.equalizeHist of every (H, W) plane of uint8 `host`."""
    planes = host.reshape(-1, *host.shape[-2:])
    return np.stack([cv2.equalizeHist(p) for p in planes]).reshape(host.shape)


class _Calls:
    """Counts the calls of a method (wrapped on its class, undone by monkeypatch)."""

    def __init__(self, monkeypatch, owner, name):
        self.count = 0
        original = getattr(owner, name)

        def counted(*args, **kwargs):
            self.count += 1
            return original(*args, **kwargs)
        monkeypatch.setattr(owner, name, counted)


def test_a_repeated_call_replays_its_plan_and_compiles_nothing(fake, monkeypatch):
    import gpu_histeq
    from gpu_histeq import _engine
    from gpu_histeq._cuda import _kernels
    host = _images((4, 1, 40, 48))
    with _engine.recording() as steps:
        first = gpu_histeq.equalize_hist(fake.asarray(host))  # records the plan (and compiles)
    check_steps(steps)
    assert _kernels._plans.plan_count() == 1
    builds = _Calls(monkeypatch, fake.RawModule, "__init__")
    layouts = _Calls(monkeypatch, _kernels.Planes, "one_block")
    name = "gpu_histeq_equalize_small_u8<0, unsigned char>"
    launched = fake.LAUNCHES.get(name, 0)
    for seed in (0, 1, 2):  # new arrays each call (other pointers): the plan takes them
        host = _images((4, 1, 40, 48), seed=seed)
        with _engine.recording() as steps:
            result = gpu_histeq.equalize_hist(fake.asarray(host))
        check_steps(steps)
        assert [s.outcome for s in steps] == [True]
        np.testing.assert_array_equal(to_numpy(result), _opencv(host))
    assert builds.count == 0 and layouts.count == 0  # no compile, the launcher's work skipped
    assert fake.LAUNCHES[name] == launched + 3  # one replayed launch per call
    assert _kernels._plans.plan_count() == 1
    np.testing.assert_array_equal(to_numpy(first), _opencv(_images((4, 1, 40, 48))))


def test_a_plan_follows_the_pointer_phase_and_the_tuning(fake, monkeypatch):
    """A plane that starts off a 16-byte pack (no shared-memory cache, no packed loads) is
    another configuration; so is a changed tuning constant (``SMALL_PIXELS``)."""
    import gpu_histeq
    from gpu_histeq._cuda import _kernels
    host = _images((3, 1, 40, 48))
    aligned = fake.asarray(host)
    buffer = fake.empty(host.size + 1, np.uint8)
    shifted = buffer[1:].reshape(host.shape)  # one byte past a 256-byte boundary
    shifted[...] = aligned
    assert shifted.data.ptr % 16 == 1
    for images in (aligned, shifted, aligned, shifted):
        np.testing.assert_array_equal(to_numpy(gpu_histeq.equalize_hist(images)), _opencv(host))
    assert _kernels._plans.plan_count() == 2
    monkeypatch.setattr(_kernels, "SMALL_PIXELS", 0)  # the multi-block kernels from now on
    histograms = fake.LAUNCHES.get("gpu_histeq_level_histogram<unsigned char>", 0)
    np.testing.assert_array_equal(to_numpy(gpu_histeq.equalize_hist(aligned)), _opencv(host))
    assert fake.LAUNCHES["gpu_histeq_level_histogram<unsigned char>"] == histograms + 1


def test_the_plan_cache_is_bounded_least_recently_used_first(fake, monkeypatch):
    import gpu_histeq
    from gpu_histeq._cuda import _kernels
    monkeypatch.setattr(_kernels._plans, "PLAN_CACHE_SIZE", 3)
    hosts = [_images((2, 1, 16 + k, 24), seed=k) for k in range(5)]
    for host in hosts:
        np.testing.assert_array_equal(to_numpy(gpu_histeq.equalize_hist(fake.asarray(host))),
                                      _opencv(host))
        assert _kernels._plans.plan_count() <= 3
    assert _kernels._plans.plan_count() == 3
    layouts = _Calls(monkeypatch, _kernels.Planes, "one_block")
    gpu_histeq.equalize_hist(fake.asarray(hosts[-1]))  # kept: replayed
    assert layouts.count == 0
    result = gpu_histeq.equalize_hist(fake.asarray(hosts[0]))  # dropped first: recorded again
    assert layouts.count == 1
    np.testing.assert_array_equal(to_numpy(result), _opencv(hosts[0]))


def test_a_replay_makes_the_scratch_again(fake, monkeypatch):
    """Planes over the one-block size take histograms and tables the launcher makes
    (``_kernels.scratch``): a replay makes them again, in the same order, and launches the
    same three kernels."""
    import gpu_histeq
    from emulation.counting import counting
    from gpu_histeq._cuda import _kernels
    hosts = [_images((2, 1, 300, 300), seed=seed) for seed in (0, 1)]
    gpu_histeq.equalize_hist(fake.asarray(hosts[0]))
    (plan,) = _kernels._plans.cache.values()
    assert [spec[1:] for spec in plan.scratch] == [(np.uint32, 0), (np.dtype(np.uint8), None)]
    layouts = _Calls(monkeypatch, _kernels.Planes, "multi_block")
    images = fake.asarray(hosts[1])
    with counting() as tally:
        result = gpu_histeq.equalize_hist(images)
    assert layouts.count == 0
    assert tally.kernel_launches == 3 and tally.allocations == 3  # result, histograms, tables
    assert tally.operations == {"zeros": 1} and not tally.syncs
    np.testing.assert_array_equal(to_numpy(result), _opencv(hosts[1]))


def test_a_launcher_over_views_runs_every_time(fake, monkeypatch):
    """Planes in several launch groups are views made per call: no plan is replayed."""
    import gpu_histeq
    from gpu_histeq import _planes
    from gpu_histeq._cuda import _kernels
    monkeypatch.setattr(_planes, "CHUNK_BINS", 256)  # one plane of 256 levels per group
    for seed in (0, 1):
        host = _images((3, 1, 300, 300), seed=seed)
        np.testing.assert_array_equal(to_numpy(gpu_histeq.equalize_hist(fake.asarray(host))),
                                      _opencv(host))
    assert _kernels._plans.UNPLANNED in _kernels._plans.cache.values()
    layouts = _Calls(monkeypatch, _kernels.Planes, "multi_block")
    gpu_histeq.equalize_hist(fake.asarray(host))
    assert layouts.count == 3  # each group's histogram launch laid out again


def test_a_plan_keeps_no_array_alive(fake):
    """A plan holds the launch arguments but not the call's arrays (nor their memory)."""
    import gc
    import weakref
    import gpu_histeq
    from gpu_histeq._cuda import _kernels
    images = fake.asarray(_images((3, 1, 24, 24)))
    result = gpu_histeq.equalize_hist(images)
    (plan,) = _kernels._plans.cache.values()
    assert all(args[position] is None for *_, args, _, slots in plan.steps
               for position, _ in slots)
    gone = [weakref.ref(images), weakref.ref(result)]
    del images, result
    gc.collect()
    assert [ref() for ref in gone] == [None, None]


def test_strides_are_part_of_the_plan_key(fake):
    """The CLAHE launcher declines rows that are not C-contiguous (nothing written): a view of
    the same shape, dtype and pointer phase is another configuration, never a replay."""
    from conftest import assert_declined, assert_wrote
    from gpu_histeq import _cuda
    host = _images((4, 256))
    rows = fake.asarray(host)
    result = fake.empty(rows.shape, np.uint8)
    geometry = ((16, 16), (2, 2), (8, 8), 4, np.float32(255 / 64))
    assert_wrote(_cuda.clahe(rows, *geometry, result))
    wide = fake.asarray(np.repeat(host, 2, axis=1))
    strided = wide[:, ::2]  # the same values, every other byte
    assert strided.shape == rows.shape and strided.data.ptr % 16 == rows.data.ptr % 16
    assert_declined(_cuda.clahe(strided, *geometry, result), "uncovered")
    assert_wrote(_cuda.clahe(rows, *geometry, result))


@pytest.mark.parametrize("call, error, match", [
    (dict(nbins=256.0), ValueError, "`nbins` must be a positive integer"),
    (dict(nbins=True), ValueError, "`nbins` must be a positive integer"),
    (dict(nbins=100), ValueError, "`nbins` must be the default 256"),
    (dict(axes=(True, 2)), TypeError, "`axes` must be a non-empty tuple of ints"),
    (dict(axes=(1.0, 2)), TypeError, "`axes` must be a non-empty tuple of ints"),
    (dict(axes=(1, 1)), ValueError, "`axes` must not repeat an axis"),
    (dict(method="OpenCV"), ValueError, "`method` must be one of"),
    (dict(method="skimage", nbins=0), ValueError, "`nbins` must be a positive integer"),
])
def test_a_call_already_seen_still_refuses_bad_arguments(fake, call, error, match):
    """The checks an equal call passed are skipped; arguments equal to good ones but of
    another type (``256.0``, ``True``) are not equal for the memo, and raise as before."""
    import gpu_histeq
    images = fake.asarray(_images((3, 20, 20)))
    for _ in range(2):
        gpu_histeq.equalize_hist(images)
        gpu_histeq.equalize_hist(images, axes=(1, 2))
        gpu_histeq.equalize_hist(images, method="opencv")
    with pytest.raises(error, match=match):
        gpu_histeq.equalize_hist(images, **call)


@pytest.mark.parametrize("call, error, match", [
    (dict(channel_axis=-1, luminance=1), TypeError, "`luminance` must be a bool"),
    (dict(channel_axis=-1, luminance="RGB"), ValueError, "`luminance` must be True"),
    (dict(channel_axis=True, luminance=True), TypeError, "`channel_axis` must be"),
    (dict(channel_axis=-1.0, luminance=True), TypeError, "`channel_axis` must be"),
    (dict(channel_axis=1, luminance=True), ValueError, "needs 3 \\(R, G, B\\) channels"),
    (dict(axes=(1, 2), luminance=True), ValueError, "`luminance=True` needs `channel_axis`"),
])
def test_a_colour_call_already_seen_still_refuses_bad_arguments(fake, call, error, match):
    import gpu_histeq
    host = _images((2, 20, 20, 3))
    images = fake.asarray(host)
    first = {order: to_numpy(gpu_histeq.equalize_hist(images, channel_axis=-1, luminance=order))
             for order in (True, "bgr")}
    for order in (True, "bgr"):  # the memo's answer is the checked call's
        np.testing.assert_array_equal(
            to_numpy(gpu_histeq.equalize_hist(images, channel_axis=-1, luminance=order)),
            first[order])
    flipped = to_numpy(gpu_histeq.equalize_hist(fake.asarray(host[..., ::-1].copy()),
                                                channel_axis=-1, luminance=True))
    np.testing.assert_array_equal(first["bgr"], flipped[..., ::-1])
    with pytest.raises(error, match=match):
        gpu_histeq.equalize_hist(images, **call)


def test_a_call_already_seen_still_warns_and_reads_the_thread_setting(fake, monkeypatch):
    import gpu_histeq
    colour = fake.asarray(_images((2, 16, 16, 3)))
    for _ in range(2):  # a probable colour image warns at every call
        with pytest.warns(UserWarning, match="might be colour images"):
            gpu_histeq.equalize_hist(colour)
    floats = fake.asarray(np.random.default_rng(0).random((2, 24, 24)).astype(np.float32))
    gpu_histeq.equalize_hist(floats)
    gpu_histeq.equalize_hist(floats)
    monkeypatch.setenv("GPU_HISTEQ_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="GPU_HISTEQ_NUM_THREADS"):
        gpu_histeq.equalize_hist(floats)


def test_no_step_is_reported_when_nothing_records(fake, monkeypatch):
    """The step report of the proof tests costs one empty-list test when nobody listens."""
    import gpu_histeq
    from gpu_histeq import _engine

    def refuse(*args):
        raise AssertionError("a Step was built outside recording()")
    monkeypatch.setattr(_engine, "Step", refuse)
    host = _images((2, 1, 24, 24))
    np.testing.assert_array_equal(to_numpy(gpu_histeq.equalize_hist(fake.asarray(host))),
                                  _opencv(host))


# ---------------------------------------------------------------------------------------------
# CUDA graphs: the calls that stream capture accepts (no host synchronisation, no upload)

def _capturable(cp, g):
    """``{name: call}`` of the calls documented as capturable (docs/gpu.rst, README)."""
    rng = np.random.default_rng(1)
    u8 = cp.asarray(_images((6, 1, 32, 40)))
    u8_large = cp.asarray(_images((2, 1, 300, 300)))
    u16 = cp.asarray(_images((4, 1, 32, 40), np.uint16))
    i8 = cp.asarray(_images((4, 1, 32, 40), np.int8))
    i16 = cp.asarray(_images((4, 1, 32, 40), np.int16))
    i32 = cp.asarray(_images((4, 1, 32, 40), np.int32))
    u32 = cp.asarray(_images((4, 1, 32, 40), np.uint32))
    rgb = cp.asarray(_images((3, 32, 40, 3)))
    rgb16 = cp.asarray(_images((3, 32, 40, 3), np.uint16))
    out = cp.empty(u8.shape, np.uint8)
    reference = cp.asarray(_images((32, 40), seed=5))
    per_plane = cp.asarray(_images((6, 32, 40), seed=6))
    lut = cp.asarray(rng.integers(0, 256, (6, 1, 256)).astype(np.uint8))
    lut16 = cp.asarray(rng.integers(0, 2**16, (4, 1, 2**16)).astype(np.uint16))
    ragged = [u8[0, 0], u8[1, 0, :20], u8_large[0, 0]]
    return {
        "equalize_hist uint8": lambda: g.equalize_hist(u8),
        "equalize_hist uint8 out=": lambda: g.equalize_hist(u8, out=out),
        "equalize_hist uint8 pil": lambda: g.equalize_hist(u8, method="pil"),
        "equalize_hist uint8 skimage": lambda: g.equalize_hist(u8, method="skimage"),
        "equalize_hist uint16 skimage": lambda: g.equalize_hist(u16, method="skimage"),
        "equalize_hist uint8 300x300": lambda: g.equalize_hist(u8_large),
        "equalize_hist uint16": lambda: g.equalize_hist(u16),
        "equalize_hist int8": lambda: g.equalize_hist(i8),
        "equalize_hist int16": lambda: g.equalize_hist(i16),
        "equalize_hist int32": lambda: g.equalize_hist(i32),
        "equalize_hist uint32": lambda: g.equalize_hist(u32),
        "equalize_hist luminance uint8": lambda: g.equalize_hist(rgb, channel_axis=-1,
                                                                 luminance=True),
        "equalize_hist luminance uint16": lambda: g.equalize_hist(rgb16, channel_axis=-1,
                                                                  luminance=True),
        "clahe uint8": lambda: g.clahe(u8, 2.0, (4, 4)),
        "clahe uint16": lambda: g.clahe(u16, 2.0, (2, 2)),
        "clahe luminance uint8": lambda: g.clahe(rgb, 2.0, (4, 4), channel_axis=-1,
                                                 luminance=True),
        "clahe luminance uint16": lambda: g.clahe(rgb16, 2.0, (2, 2), channel_axis=-1,
                                                  luminance="bgr"),
        "match_histograms uint8": lambda: g.match_histograms(u8[:, 0], reference),
        "match_histograms uint8 per plane": lambda: g.match_histograms(u8[:, 0], per_plane),
        "match_histograms uint16": lambda: g.match_histograms(u16[:, 0], u16[0, 0]),
        "apply_lut uint8": lambda: g.apply_lut(u8, lut),
        "apply_lut uint16": lambda: g.apply_lut(u16, lut16),
        "equalize_adapthist uint8": lambda: g.equalize_adapthist(u8[:, 0], 8),
        "equalize_adapthist uint16": lambda: g.equalize_adapthist(u16[:, 0], (8, 10)),
        "equalize_hist ragged list, layout seen": lambda: g.equalize_hist(ragged),
    }


def test_the_capturable_calls_run_under_stream_capture(fake):
    """Each call of the capturable list, once to compile and record its plans (as before a
    real capture), then under capture: no synchronisation, no upload, the same result."""
    import gpu_histeq
    from emulation.counting import capturing
    from gpu_histeq import _engine
    def host(result):  # a ragged list's result is a list of arrays
        return [to_numpy(r).copy() for r in result] if isinstance(result, list) else [
            to_numpy(result).copy()]

    for name, call in _capturable(fake, gpu_histeq).items():
        expected = host(call())
        with _engine.recording() as steps, capturing() as tally:
            result = call()
        check_steps(steps)
        assert steps and all(step.outcome is True for step in steps), (name, steps)
        assert not tally.syncs and tally.h2d_bytes == 0, name
        assert tally.kernel_launches >= 1, (name, tally)  # (array operations capture too)
        got = host(result)
        assert len(got) == len(expected), name
        for one, want in zip(got, expected):
            np.testing.assert_array_equal(one, want, err_msg=name)


@pytest.mark.parametrize("name", ["float32 (status word)", "mask (a plane selecting nothing)",
                                  "histogram (its width)", "apply_lut int16 (value range)",
                                  "ragged list of a new layout (spans uploaded)",
                                  "match_histograms float32 (status word)",
                                  "float16 (status word)",
                                  "equalize_adapthist float64 (status word)"])
def test_the_other_calls_are_refused_by_capture(fake, name):
    """What the capturable list leaves out, and the read that excludes it."""
    import gpu_histeq
    from emulation.counting import CaptureError, capturing
    images = fake.asarray(_images((3, 1, 24, 24)))
    widths = iter(range(20, 5, -1))  # each call a list layout not seen before
    calls = {
        "float32 (status word)": lambda: gpu_histeq.equalize_hist(images.astype(np.float32)),
        "mask (a plane selecting nothing)": lambda: gpu_histeq.equalize_hist(
            images, mask=images > 3),
        "histogram (its width)": lambda: gpu_histeq.histogram(images),
        "apply_lut int16 (value range)": lambda: gpu_histeq.apply_lut(
            images.astype(np.int16), fake.asarray(np.arange(256, dtype=np.uint8))),
        "ragged list of a new layout (spans uploaded)": lambda: gpu_histeq.equalize_hist(
            [images[0, 0], images[1, 0, :next(widths)]]),
        "match_histograms float32 (status word)": lambda: gpu_histeq.match_histograms(
            images[:, 0].astype(np.float32), images[0, 0].astype(np.float32)),
        "float16 (status word)": lambda: gpu_histeq.equalize_hist(images.astype(np.float16)),
        "equalize_adapthist float64 (status word)": lambda: gpu_histeq.equalize_adapthist(
            images[:, 0] / 255.0, 8),
    }
    call = calls[name]
    call()  # compiled, planned: what is left is the call's own reads
    with pytest.raises(CaptureError, match="during stream capture"), capturing():
        call()
