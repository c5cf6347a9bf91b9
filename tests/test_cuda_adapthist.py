"""equalize_adapthist on CUDA (``gpu_histeq/_cuda/adapthist.cu``) equals the portable path bit for
bit, and scikit-image.

Every case runs :func:`gpu_histeq.equalize_adapthist` on CuPy planes twice: through the CUDA
kernels (the default for CuPy input; the portable region counting is refused meanwhile, and on
the emulated CuPy the four kernels must have been launched) and inside
:func:`gpu_histeq._engine.portable`, and compares the bytes. The ``cp`` fixture also fails a test
in which the CUDA entry point declined without the test naming it. Cases are chosen so that
scikit-image's redistribution loop runs on the device (``loop_runs``).
"""

import contextlib

import numpy as np
import pytest

from conftest import assert_declined, assert_wrote, is_emulated, raised_in_kernel_path
from gpu_histeq import _cuda, _engine, adaptive, equalize_adapthist

KERNELS = ("gpu_histeq_adapt_prepare", "gpu_histeq_adapt_tables", "gpu_histeq_adapt_interp",
           "gpu_histeq_adapt_rescale")


def launches(cp):
    """Launches of each adapthist kernel so far on the emulated CuPy (None on a real GPU)."""
    if not is_emulated(cp):
        return None
    return {k: sum(n for name, n in cp.LAUNCHES.items() if name.startswith(k)) for k in KERNELS}


def run_cuda(cp, monkeypatch, images, *args, **kwargs):
    """equalize_adapthist() on the kernels: the portable region count must not run, and every
    kernel must have been launched (on the emulator, where launches are counted)."""
    def refuse(*_, **__):
        raise AssertionError("the portable equalize_adapthist path ran instead of the kernels")

    before = launches(cp)
    with monkeypatch.context() as patch:
        patch.setattr(adaptive, "count_tiles", refuse)
        out = equalize_adapthist(images, *args, **kwargs)
    after = launches(cp)
    if after is not None:
        assert all(after[k] > before[k] for k in KERNELS), (before, after)
    return out


def run_portable(cp, images, *args, **kwargs):
    with flushed(cp, images), _engine.portable():
        return equalize_adapthist(images, *args, **kwargs)


def flushed(cp, images):
    """The GPU's float32 flush-to-zero for the stand-in's NumPy reference (tests/emulation/README)."""
    host = images.get()
    if is_emulated(cp) and host.dtype == np.float32:
        tiny = np.abs(host[np.isfinite(host)])
        if ((tiny > 0) & (tiny < np.finfo(np.float32).smallest_normal)).any():
            return cp.flushed_float32()
    return contextlib.nullcontext()


def assert_same(result, expected):
    result, expected = result.get(), expected.get()
    assert result.dtype == expected.dtype and result.shape == expected.shape
    mismatch = np.flatnonzero(result.ravel() != expected.ravel())
    assert mismatch.size == 0, (f"{mismatch.size} pixels differ, first at {mismatch[:5]}: "
                                f"{result.ravel()[mismatch[:3]]} vs {expected.ravel()[mismatch[:3]]}")


def make(dtype, kind, shape, seed=0):
    """Planes of `dtype` in the ranges img_as_uint accepts."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        values = {"random": lambda: rng.random(shape),
                  "signed": lambda: rng.uniform(-1, 1, shape),
                  "narrow": lambda: 0.4 + rng.random(shape) * 0.01,
                  "constant": lambda: np.full(shape, 0.3),
                  "extremes": lambda: rng.choice([-1.0, 0.0, 1.0], shape),
                  "clumped": lambda: rng.choice([0.1, 0.8], shape) + rng.random(shape) * 1e-3,
                  "gradient": lambda: np.broadcast_to(np.linspace(0, 1, shape[-1]), shape)}[kind]()
        return np.ascontiguousarray(values, dtype)
    info = np.iinfo(dtype)
    values = {"random": lambda: rng.integers(info.min, info.max, shape, endpoint=True),
              "signed": lambda: rng.integers(info.min, info.max, shape, endpoint=True),
              "narrow": lambda: rng.integers(info.max // 3, info.max // 3 + 20, shape),
              "constant": lambda: np.full(shape, info.max // 5),
              "extremes": lambda: rng.choice([info.min, info.max], shape),
              "clumped": lambda: rng.choice([info.max // 7, info.max // 2], shape)
              + rng.integers(0, 3, shape),
              "gradient": lambda: np.broadcast_to(
                  np.arange(shape[-1]) * int(info.max) // max(shape[-1] - 1, 1), shape)}[kind]()
    return np.ascontiguousarray(values, dtype)


def loop_runs(images, kernel_size=None, clip_limit=0.01, nbins=256):
    """True when scikit-image's redistribution loop (the part after the vectorised clip) has
    excess left to spend in some region of these planes: the portable clip, watched (it makes
    its ``arange`` of bins only once some histogram still has excess)."""
    seen = []

    class Watched:
        def __getattr__(self, name):
            if name == "arange":
                seen.append(True)
            return getattr(np, name)

    def spy(xp, hist, limit):
        return original(Watched(), hist, limit)

    original = adaptive.clahe_skimage_clip
    adaptive.clahe_skimage_clip = spy
    try:
        with _engine.portable():
            equalize_adapthist(np.asarray(images), kernel_size, clip_limit, nbins,
                               axes=tuple(range(1, images.ndim)))
    finally:
        adaptive.clahe_skimage_clip = original
    return bool(seen)


#: (shape, kernel_size, clip_limit, nbins): 1x1 planes, regions of one pixel, one region per
#: plane (kernel = image), sizes the regions do not divide, clip 0 / 1 / tiny, few and many bins
#: (more than shared memory holds: the global histograms), images of 3 to 6 axes.
GEOMETRIES = [
    ((2, 1, 1), None, 0.01, 256),
    ((2, 9, 7), 1, 0.01, 256),
    ((2, 23, 19), (23, 19), 0.02, 64),
    ((2, 37, 41), 8, 0.01, 256),
    ((2, 37, 41), (5, 11), 0.0, 128),
    ((1, 30, 33), 6, 1.0, 256),
    ((2, 40, 50), 10, 0.002, 2),
    ((1, 20, 20), 5, 0.05, 1),
    ((1, 24, 28), (12, 14), 0.003, 9000),
    ((2, 9, 10, 11), (3, 4, 5), 0.01, 32),
    ((1, 7, 13, 6), (7, 2, 6), 0.05, 256),
    ((1, 4, 5, 6, 7), (2, 3, 3, 4), 0.05, 32),
    ((2, 3, 4, 3, 5, 4), (2, 2, 3, 5, 3), 0.1, 16),
    ((1, 2, 3, 2, 3, 2, 3), (1, 2, 2, 3, 1, 2), 0.1, 8),
]


DTYPES = [np.uint8, np.uint16, np.int8, np.int16, np.float16, np.float32, np.float64]
KINDS = ["random", "signed", "narrow", "constant", "extremes", "clumped", "gradient"]


def check_case(cp, monkeypatch, dtype, kind, shape, kernel, clip, nbins):
    host = make(dtype, kind, shape)
    images = cp.asarray(host)
    axes = tuple(range(1, len(shape)))
    result = run_cuda(cp, monkeypatch, images, kernel, clip, nbins, axes=axes)
    assert_same(result, run_portable(cp, images, kernel, clip, nbins, axes=axes))
    np.testing.assert_array_equal(host, images.get())  # input untouched


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape, kernel, clip, nbins", [GEOMETRIES[3], GEOMETRIES[9]])
def test_every_dtype_equals_portable_path(cp, monkeypatch, dtype, kind, shape, kernel, clip, nbins):
    """img_as_uint of each dtype (the prepare kernel), 2-D and 3-D."""
    check_case(cp, monkeypatch, dtype, kind, shape, kernel, clip, nbins)


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
@pytest.mark.parametrize("kind", ["random", "constant", "extremes", "clumped", "gradient"])
@pytest.mark.parametrize("shape, kernel, clip, nbins", GEOMETRIES)
def test_every_geometry_equals_portable_path(cp, monkeypatch, dtype, kind, shape, kernel, clip,
                                             nbins):
    """Region tables and interpolation over every geometry of :data:`GEOMETRIES`."""
    check_case(cp, monkeypatch, dtype, kind, shape, kernel, clip, nbins)


@pytest.mark.parametrize("shape, kernel, clip, nbins", [
    ((3, 40, 50), 10, 0.002, 16), ((2, 37, 41), 8, 0.01, 256), ((2, 24, 28), (12, 14), 0.003, 9000),
    ((1, 12, 14, 15), (6, 7, 5), 0.004, 64)])
def test_the_redistribution_loop_runs_on_the_device(cp, monkeypatch, shape, kernel, clip, nbins):
    """Clumped planes whose regions keep excess after the vectorised clip: the device loop
    decides every round (no host decision), as the portable loop does."""
    host = make(np.float64, "clumped", shape, seed=2)
    assert loop_runs(host, kernel, clip, nbins) and not loop_runs(host, kernel, 0.0, nbins)
    images = cp.asarray(host)
    axes = tuple(range(1, len(shape)))
    result = run_cuda(cp, monkeypatch, images, kernel, clip, nbins, axes=axes)
    assert_same(result, run_portable(cp, images, kernel, clip, nbins, axes=axes))


def test_uint16_extremes_and_a_pixel_of_each(cp, monkeypatch):
    host = np.zeros((3, 16, 16), np.uint16)
    host[0, ::2] = 65535
    host[1, 3, 4] = 65535
    host[2] = 65535
    images = cp.asarray(host)
    result = run_cuda(cp, monkeypatch, images, 4, 0.01, 256)
    assert_same(result, run_portable(cp, images, 4, 0.01, 256))
    np.testing.assert_array_equal(result.get()[2], 1.0)  # constant 65535: clip(16383, 0, 1)


@pytest.mark.parametrize("values", [
    [1e-45, 3e-42, 1e-39],                       # subnormals only
    [1e-45, 0.5, 1e-39, 2e-38, 0.25, 1.0],       # mixed with normals
    [np.finfo(np.float32).smallest_normal, 1.5e-38, 0.75, -1e-40],
])
def test_float32_subnormals_equal_the_flushed_reference(cp, monkeypatch, values):
    rng = np.random.default_rng(9)
    host = rng.choice(np.array(values, np.float32), (2, 19, 23))
    images = cp.asarray(host)
    result = run_cuda(cp, monkeypatch, images, 6, 0.02, 64)
    assert_same(result, run_portable(cp, images, 6, 0.02, 64))


def test_equals_skimage(cp, monkeypatch):
    exposure = pytest.importorskip("skimage.exposure")
    host = make(np.float64, "random", (2, 45, 52), seed=4) ** 2
    result = run_cuda(cp, monkeypatch, cp.asarray(host), (9, 13), 0.015, 100).get()
    expected = np.stack([exposure.equalize_adapthist(p, (9, 13), 0.015, 100) for p in host])
    np.testing.assert_array_equal(result, expected)
    volume = make(np.uint8, "random", (1, 10, 12, 14), seed=5)
    result = run_cuda(cp, monkeypatch, cp.asarray(volume), (4, 5, 6), 0.02,
                      axes=(1, 2, 3)).get()
    np.testing.assert_array_equal(result[0], exposure.equalize_adapthist(volume[0], (4, 5, 6), 0.02))
    four = make(np.float32, "random", (1, 5, 6, 7, 8), seed=6)
    result = run_cuda(cp, monkeypatch, cp.asarray(four), (2, 3, 4, 3), 0.05, 64,
                      axes=(1, 2, 3, 4)).get()
    np.testing.assert_array_equal(result[0], exposure.equalize_adapthist(four[0], (2, 3, 4, 3), 0.05, 64))


def test_colour_and_batch_axes_run_the_kernels(cp, monkeypatch):
    """RGB through scikit-image's HSV value (float64 planes), and batch axes around the image."""
    host = make(np.uint8, "random", (2, 21, 30, 3), seed=7)
    images = cp.asarray(host)
    result = run_cuda(cp, monkeypatch, images, 7, 0.02, channel_axis=-1)
    assert_same(result, run_portable(cp, images, 7, 0.02, channel_axis=-1))
    stack = cp.asarray(make(np.float32, "random", (15, 2, 3, 22), seed=8))
    result = run_cuda(cp, monkeypatch, stack, (5, 6), axes=(0, 3))
    assert_same(result, run_portable(cp, stack, (5, 6), axes=(0, 3)))


@pytest.mark.parametrize("limit, value, dtype, shape, kernel, nbins, counts", [
    # region tables bound the planes per group: room for one plane's, three planes take three
    # launches of the tables and interpolation kernels, one of the others
    ("SCRATCH_BYTES", 16 * 256 * 2, np.uint16, (3, 20, 20), 5, 256, [1, 3, 3, 1]),
    # grid.y holds 65535 planes: room for two, five planes take three launches of each
    # per-pixel kernel, one of the region tables
    ("MAX_GRID_PLANES", 2, np.int16, (5, 11, 13), 4, 64, [3, 1, 3, 3]),
])
def test_planes_run_in_groups(cp, monkeypatch, limit, value, dtype, shape, kernel, nbins, counts):
    from gpu_histeq._cuda import _adapthist
    monkeypatch.setattr(_adapthist, limit, value)
    images = cp.asarray(make(dtype, "random", shape, seed=5))
    before = launches(cp)
    result = run_cuda(cp, monkeypatch, images, kernel, 0.01, nbins)
    after = launches(cp)
    if after is not None:
        assert [after[k] - before[k] for k in KERNELS] == counts
    assert_same(result, run_portable(cp, images, kernel, 0.01, nbins))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("bad, message", [
    (np.nan, "must not contain NaN or infinity"), (np.inf, "must not contain NaN or infinity"),
    (-np.inf, "must not contain NaN or infinity"),
    (1.5, r"must lie in \[-1, 1\] \(img_as_uint's rule\), got values in \[0.0, 1.5\]"),
    (-2.0, r"must lie in \[-1, 1\] \(img_as_uint's rule\), got values in \[-2.0, 0.9")])
def test_errors_equal_the_portable_path_and_come_from_the_kernels(cp, dtype, bad, message):
    host = make(dtype, "random", (2, 12, 13), seed=1)
    host[..., 0, 0] = 0
    host[1, 5, 6] = bad
    images = cp.asarray(host)
    with pytest.raises(ValueError, match=message) as kernel_error:
        equalize_adapthist(images, 4)
    assert raised_in_kernel_path(kernel_error.value)
    with _engine.portable(), pytest.raises(ValueError) as portable_error:
        equalize_adapthist(images, 4)
    assert str(kernel_error.value) == str(portable_error.value)


#: 48 KiB: the shared memory (static plus dynamic) a block gets without opting in.
SHARED_LIMIT = 48 << 10


@pytest.mark.parametrize("name", [f"gpu_histeq_adapt_tables<{d}>" for d in range(2, 7)])
def test_static_plus_dynamic_shared_memory_fits(cp, name):
    """The region histogram in dynamic shared memory (SHARED_BINS uint32 at most) plus the
    kernel's static shared memory (CuPy's ``shared_size_bytes``: NVRTC's sm_90 CUBIN on the
    emulator, 1152 bytes) stays under 48 KiB; a launch with more bins takes the global scratch."""
    from gpu_histeq._cuda import _adapthist, _kernels
    kernel = _kernels.kernel("adapthist.cu", name)
    if kernel.shared_size_bytes is None:
        pytest.skip("NVRTC (the nvrtc extra) is not installed: the static part is unknown")
    assert kernel.shared_size_bytes + _adapthist.SHARED_BINS * 4 <= SHARED_LIMIT
    if is_emulated(cp):
        assert kernel.shared_size_bytes == 1152


def clip_of(kernel, clip_limit, nbins):
    """scikit-image's clip limit in counts, bin width and table scale (what adaptive passes)."""
    area = int(np.prod(kernel))
    return max(int(clip_limit * area), 1), 1 + 16384 // nbins, 16383 / area


def test_direct_call_writes_or_declines(cp):
    planes = cp.asarray(make(np.uint8, "random", (2, 12 * 14)))
    result = cp.empty(planes.shape, np.float64)
    clip = clip_of((4, 7), 0.01, 256)
    assert_wrote(_cuda.adapthist(planes, (12, 14), (4, 7), 256, clip, result))
    seven_d = cp.asarray(make(np.uint8, "random", (2, 2 ** 7)))
    assert_declined(_cuda.adapthist(seven_d, (2,) * 7, (1,) * 7, 256, clip_of((1,) * 7, 0.01, 256),
                                    cp.empty(seven_d.shape, np.float64)), "uncovered")
    strided = cp.asarray(make(np.uint8, "random", (2, 2 * 12 * 14)))[:, ::2]
    assert_declined(_cuda.adapthist(strided, (12, 14), (4, 7), 256, clip,
                                    cp.empty(strided.shape, np.float64)), "uncovered")


def test_seven_axes_stay_portable(cp):
    """The kernels take images of 2 to 6 axes; one of 7 declines before any launch and the
    portable path computes it (documented in equalize_adapthist's Notes)."""
    host = make(np.float32, "random", (1, 2, 3, 2, 2, 3, 2, 2), seed=3)
    images = cp.asarray(host)
    axes = tuple(range(1, 8))
    before = launches(cp)
    with _engine.recording() as steps:
        result = equalize_adapthist(images, (1, 2, 1, 2, 2, 1, 2), axes=axes)
    assert [s.name for s in steps] == ["adapthist"]
    assert_declined(steps[0].outcome, "uncovered")
    assert launches(cp) == before
    assert_same(result, run_portable(cp, images, (1, 2, 1, 2, 2, 1, 2), axes=axes))


def test_a_configuration_seen_replays_its_launch_plan(cp, monkeypatch):
    """The second call of a configuration replays the recorded launches with its own arrays
    (levels and tables made again): one plan, recorded once, and both results bit-exact."""
    from gpu_histeq._cuda import _adapthist, _kernels
    _kernels.clear_plans()

    def plans():
        return [plan for key, plan in _kernels._plans.cache.items()
                if key[0] is _adapthist.adapthist.__wrapped__]

    for seed in (1, 2):
        images = cp.asarray(make(np.float32, "clumped", (3, 30, 26), seed=seed))
        result = run_cuda(cp, monkeypatch, images, (6, 5), 0.01, 128)
        assert_same(result, run_portable(cp, images, (6, 5), 0.01, 128))
        assert len(plans()) == 1 and isinstance(plans()[0], _kernels._plans.Plan)
        assert [step[0] for step in plans()[0].steps] == [
            _kernels.kernel("adapthist.cu", name) for name in (
                "gpu_histeq_adapt_prepare<float>", "gpu_histeq_adapt_tables<2>",
                "gpu_histeq_adapt_interp<2>", "gpu_histeq_adapt_rescale<float>")]


def test_host_synchronisations(cp):
    """Integer planes: no synchronisation and nothing uploaded; floating planes: one status word."""
    if not is_emulated(cp):
        pytest.skip("counted on the emulated CuPy")
    from emulation.counting import counting
    for dtype, most in ((np.uint8, 0), (np.int16, 0), (np.float64, 1), (np.float16, 1)):
        images = cp.asarray(make(dtype, "random", (3, 40, 36)))
        equalize_adapthist(images, 8)  # warm-up
        with counting() as tally:
            equalize_adapthist(images, 8)
        assert len(tally.syncs) == most, tally.sync_sites()
        assert tally.h2d_bytes == 0 and tally.launches <= 6, (tally.kernels, tally.operations)
