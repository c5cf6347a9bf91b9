"""equalize_hist by rank on CUDA (``gpu_histeq/_cuda/ranks.cu``) equals the portable path bit
for bit: int8 / int16 / int32 / uint32 planes (``"skimage"``) and small uint16 planes
(``"opencv"`` and ``"skimage"``).

Every case runs :func:`gpu_histeq.equalize_hist` on CuPy planes through the kernels and inside
:func:`gpu_histeq._engine.portable`, and compares the bytes; the ``cp`` fixture fails a case in
which the CUDA step did not write the result, and on the emulated CuPy each case also checks that
the rank kernel ran (and the level histograms did not).
"""

import numpy as np
import pytest

from conftest import is_emulated
from gpu_histeq import _engine, equalize_hist

skimage_exposure = pytest.importorskip("skimage.exposure")

RANKED = "gpu_histeq_equalize_ranked"
SIGNED_AND_WIDE = [np.int8, np.int16, np.int32, np.uint32]


def launches(cp, prefix):
    """Launches of kernels named `prefix`... so far on the emulated CuPy (None on a GPU)."""
    if not is_emulated(cp):
        return None
    return sum(n for name, n in cp.LAUNCHES.items() if name.startswith(prefix))


def run_both(cp, images, **kwargs):
    """(kernels, portable) results of equalize_hist on CuPy `images`; the kernels must have
    launched the rank kernel and no level histogram."""
    images = cp.asarray(images)
    mask = kwargs.get("mask")
    if mask is not None:
        kwargs["mask"] = cp.asarray(mask)
    before = launches(cp, RANKED), launches(cp, "gpu_histeq_level_histogram")
    with _engine.recording() as steps:
        result = equalize_hist(images, **kwargs)
    after = launches(cp, RANKED), launches(cp, "gpu_histeq_level_histogram")
    if images.size:
        assert [s.outcome for s in steps] == [True], steps
    if after[0] is not None and images.size:
        assert after[0] > before[0] and after[1] == before[1], (before, after)
    try:
        with _engine.portable():
            expected = equalize_hist(images, **kwargs)
    except ValueError as error:  # a plane over the portable path's level span (32-bit extremes)
        assert "integer levels" in str(error) and mask is None, error
        expected = cp.asarray(ranked(images.get()))
    return result, expected


def ranked(images):
    """scikit-image's equalization of integer planes without a bin per level: numpy's ranks."""
    planes = images.reshape(-1, images.shape[-2] * images.shape[-1])
    result = [np.searchsorted(np.sort(p), p, side="right") / p.size for p in planes]
    return np.array(result, np.float64).reshape(images.shape)


def assert_same(result, expected):
    result, expected = result.get(), expected.get()
    assert result.dtype == expected.dtype and result.shape == expected.shape
    mismatch = np.flatnonzero(result.ravel().view(np.uint8) != expected.ravel().view(np.uint8))
    assert mismatch.size == 0, f"{mismatch.size} bytes differ, first at {mismatch[:5]}"


def make(dtype, kind, shape, seed=0):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    low, high = int(info.min), int(info.max)
    if np.dtype(dtype).itemsize == 4 and kind == "random":  # within the portable level span
        low, high = max(low, -(1 << 22)), min(high, 1 << 22)
    values = {"random": lambda: rng.integers(low, high, shape, endpoint=True),
              "narrow": lambda: rng.integers(low // 3, low // 3 + 40, shape),
              "constant": lambda: np.full(shape, high // 5),
              "extremes": lambda: rng.choice([int(info.min), int(info.max)], shape),
              "near_extremes": lambda: rng.choice([int(info.min), int(info.min) + 1,
                                                   int(info.max) - 1, int(info.max)], shape),
              "top": lambda: np.full(shape, int(info.max)),
              "bottom": lambda: np.full(shape, int(info.min))}[kind]()
    return np.ascontiguousarray(values, dtype=dtype)


KINDS = ["random", "narrow", "constant", "extremes", "near_extremes", "top", "bottom"]
#: 1x1 planes, one row, a plane of 2**k pixels and odd ones, several planes.
SHAPES = [(1, 1, 1), (4, 1, 1), (2, 1, 9), (3, 8, 16), (2, 13, 29)]


@pytest.fixture(params=["shared", "scratch"])
def where(request, monkeypatch):
    """Where the sort keeps its keys: dynamic shared memory, or (forced) a global scratch."""
    if request.param == "scratch":
        from gpu_histeq._cuda import _ranks  # imports cupy: after the cp fixture
        monkeypatch.setattr(_ranks, "SHARED_BYTES", 0)
    return request.param


@pytest.mark.parametrize("dtype", SIGNED_AND_WIDE)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_signed_and_32_bit_planes_equal_the_portable_path(cp, where, dtype, kind, shape):
    images = make(dtype, kind, shape, seed=len(kind) + shape[-1])
    result, expected = run_both(cp, images)
    assert result.dtype == np.float64
    assert_same(result, expected)


@pytest.mark.parametrize("method", ["opencv", "skimage"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES + [(2, 128, 128)], ids=str)
def test_small_uint16_planes_equal_the_portable_path(cp, method, kind, shape):
    images = make(np.uint16, kind, shape, seed=shape[-1])
    result, expected = run_both(cp, images, method=method)
    assert_same(result, expected)


@pytest.mark.parametrize("dtype", SIGNED_AND_WIDE + [np.uint16])
def test_masks_equal_the_portable_path(cp, where, dtype):
    rng = np.random.default_rng(3)
    images = make(dtype, "random", (3, 11, 19), seed=4)
    mask = rng.random(images.shape) < 0.3
    mask[:, 0, 0] = True  # every plane selects a pixel
    result, expected = run_both(cp, images, mask=mask)
    assert_same(result, expected)
    one = np.zeros(images.shape, bool)
    one[:, 5, 7] = True  # one selected pixel per plane: every other value maps to 1 or to it
    result, expected = run_both(cp, images, mask=one)
    assert_same(result, expected)
    if dtype == np.uint16:  # opencv: one level counted, every plane unchanged
        np.testing.assert_array_equal(result.get(), images)
    else:  # skimage: every value at or above the one counted, or below it (its count): 1
        np.testing.assert_array_equal(result.get(), np.ones(images.shape))


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.uint32])
def test_equal_to_scikit_image(cp, dtype):
    images = make(dtype, "random", (3, 20, 24), seed=9)
    if np.dtype(dtype).itemsize == 4:
        images = (images // 64).astype(dtype)  # scikit-image makes one bin per level
    result = equalize_hist(cp.asarray(images)).get()
    for image, got in zip(images, result):
        np.testing.assert_array_equal(got, skimage_exposure.equalize_hist(image))


def test_numbers_of_a_small_plane(cp):
    images = np.array([[[-5, 3, 3], [100, -5, 7]]], np.int32)  # counts: -5:2 3:2 7:1 100:1
    result = equalize_hist(cp.asarray(images)).get()
    np.testing.assert_array_equal(result, [[[2 / 6, 4 / 6, 4 / 6], [1.0, 2 / 6, 5 / 6]]])
    uint16 = np.array([[[0, 10, 10, 65535]]], np.uint16)  # opencv: first 1 of 4, scale 65535/3
    np.testing.assert_array_equal(equalize_hist(cp.asarray(uint16)).get(),
                                  [[[0, 43690, 43690, 65535]]])


def test_int32_planes_wider_than_the_level_limit(cp):
    """The portable path refuses planes spanning more than 2**24 levels (a bin per level); the
    rank kernel needs no bins and answers: numpy's ranks of the same values."""
    rng = np.random.default_rng(5)
    images = rng.integers(-2**31, 2**31, (2, 9, 14), dtype=np.int64).astype(np.int32)
    images[0, 0, :4] = [np.iinfo(np.int32).min, np.iinfo(np.int32).max] * 2
    result = equalize_hist(cp.asarray(images)).get()
    np.testing.assert_array_equal(result, ranked(images))
    with _engine.portable(), pytest.raises(ValueError, match="integer levels"):
        equalize_hist(cp.asarray(images))


def test_ragged_lists_equal_the_per_image_calls(cp):
    rng = np.random.default_rng(6)
    images = [cp.asarray(rng.integers(-300, 300, shape, dtype=np.int16))
              for shape in [(1, 1), (5, 7), (16, 16), (3, 33)]]
    before = launches(cp, RANKED)
    results = equalize_hist(images)
    if before is not None:
        assert launches(cp, RANKED) > before
    for image, got in zip(images, results):
        with _engine.portable():
            expected = equalize_hist(image)
        assert_same(got, expected)


def test_empty_batches(cp):
    for shape in [(0, 4, 4), (2, 0, 3)]:
        result = equalize_hist(cp.asarray(np.zeros(shape, np.int32)))
        assert result.shape == shape and result.dtype == np.float64


def test_planes_beyond_the_sort_limit_are_declined_before_any_launch(cp, monkeypatch):
    from gpu_histeq._cuda import _ranks
    monkeypatch.setattr(_ranks, "MAX_PIXELS", 8)  # int8/int32/uint32 (16-bit: level kernels)
    images = make(np.int32, "random", (2, 3, 5))
    before = launches(cp, RANKED)
    with _engine.recording() as steps:
        result = equalize_hist(cp.asarray(images))
    assert [s.outcome.reason for s in steps] == ["uncovered"]
    if before is not None:
        assert launches(cp, RANKED) == before
    with _engine.portable():
        assert_same(result, equalize_hist(cp.asarray(images)))


def test_no_host_synchronisation(cp):
    if not is_emulated(cp):
        pytest.skip("synchronisations are counted on the emulated CuPy")
    from emulation.counting import counting
    images = cp.asarray(make(np.int32, "random", (16, 24, 24)))
    equalize_hist(images)  # compiled and cached
    with counting() as tally:
        equalize_hist(images)
    assert tally.kernels == {"gpu_histeq_equalize_ranked<int, 2, double>": 1}, tally.kernels
    assert tally.syncs == [] and tally.h2d_bytes == 0 and tally.operation_launches == 0


@pytest.mark.parametrize("masked", [False, True], ids=["all", "mask"])
@pytest.mark.parametrize("kind", ["random", "extremes", "narrow", "bottom"])
def test_large_int16_planes_take_the_level_histograms(cp, kind, masked):
    """int16 planes past _ranks.SHARED_PIXELS: 65536-level histograms (bin v + 32768), the
    skimage tables and the remap from each table's middle, as uint16 planes take them."""
    images = make(np.int16, kind, (2, 130, 131), seed=len(kind))
    mask = None
    if masked:
        mask = np.random.default_rng(8).random(images.shape) < 0.3
        mask[:, 0, 0] = True
    before = launches(cp, "gpu_histeq_level_histogram"), launches(cp, "gpu_histeq_remap")
    with _engine.recording() as steps:
        result = equalize_hist(cp.asarray(images),
                               mask=None if mask is None else cp.asarray(mask))
    assert [s.outcome for s in steps] == [True], steps
    if before[0] is not None:
        after = launches(cp, "gpu_histeq_level_histogram"), launches(cp, "gpu_histeq_remap")
        assert after[0] > before[0] and after[1] > before[1], (before, after)
    with _engine.portable():
        expected = equalize_hist(cp.asarray(images),
                                 mask=None if mask is None else cp.asarray(mask))
    assert_same(result, expected)


def test_ragged_int16_lists_of_small_and_large_planes(cp):
    rng = np.random.default_rng(7)
    images = [cp.asarray(rng.integers(-32768, 32767, shape, dtype=np.int16, endpoint=True))
              for shape in [(3, 3), (130, 129), (1, 1), (20, 30), (140, 121)]]
    results = equalize_hist(images)
    for image, got in zip(images, results):
        with _engine.portable():
            assert_same(got, equalize_hist(image))


@pytest.mark.parametrize("name", ["gpu_histeq_equalize_ranked<short, 2, double>",
                                  "gpu_histeq_equalize_ranked<int, 2, double>",
                                  "gpu_histeq_equalize_ranked<unsigned short, 0, unsigned short>"])
def test_static_plus_dynamic_shared_memory_fits(cp, name):
    """The rank kernel's static shared memory (block reductions only) plus the most dynamic
    shared memory its launcher asks for (SHARED_BYTES of keys) stays under 48 KiB."""
    from gpu_histeq._cuda import _kernels, _ranks
    kernel = _kernels.kernel("ranks.cu", name)
    if kernel.shared_size_bytes is None:
        pytest.skip("NVRTC (the nvrtc extra) is not installed: the static part is unknown")
    assert kernel.shared_size_bytes <= 2048, kernel.shared_size_bytes  # 1088 (NVRTC sm_90)
    assert kernel.shared_size_bytes + _ranks.SHARED_BYTES <= 48 << 10


@pytest.mark.parametrize("dtype", [np.int16, np.uint16], ids=str)
@pytest.mark.parametrize("masked", [False, True], ids=["all", "mask"])
def test_large_16_bit_planes_without_a_table(cp, dtype, masked):
    """16-bit planes past the rank kernel's shared sort, method "skimage": level counts turned
    into cumulative counts in place, each pixel's entry made in the remap (no 65536-entry float64
    table per plane); full-range, narrow and constant planes, and a ragged list, bit for bit."""
    from gpu_histeq._cuda import _sources
    rng = np.random.default_rng(12)
    info = np.iinfo(dtype)
    host = rng.integers(info.min, info.max, (3, 200, 190), endpoint=True).astype(dtype)
    host[1] = rng.integers(info.max - 40, info.max, (200, 190), endpoint=True)
    host[2] = info.min
    images = cp.asarray(host)
    mask = None
    if masked:
        selected = rng.random(host.shape) < 0.3
        selected[:, 0, 0] = True
        mask = cp.asarray(selected)
    if is_emulated(cp):
        before = dict(cp.LAUNCHES)
    result = equalize_hist(images, mask=mask, method="skimage")
    with _engine.portable():
        expected = equalize_hist(images, mask=mask, method="skimage")
    np.testing.assert_array_equal(result.get(), expected.get())
    assert result.dtype == np.float64
    if is_emulated(cp):
        launched = {k for k, v in cp.LAUNCHES.items() if v > before.get(k, 0)}
        assert f"gpu_histeq_remap_cumulative<{_sources.C_TYPES[np.dtype(dtype)]}>" in launched
    ragged = [cp.asarray(rng.integers(info.min, info.max, s, endpoint=True).astype(dtype))
              for s in ((1, 1), (300, 230), (7, 9))]
    with _engine.portable():
        expected_list = equalize_hist(ragged, method="skimage")
    for got, want in zip(equalize_hist(ragged, method="skimage"), expected_list):
        np.testing.assert_array_equal(got.get(), want.get())
