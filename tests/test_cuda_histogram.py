"""histogram / cumulative_distribution on CUDA (``_cuda.histogram``: the level range or minmax
kernel, the level or uniform histogram, ``histogram.cu``'s finish) equal the portable path bit
for bit, errors included, and scikit-image per plane.

The ``cp`` fixture runs each case on a GPU when one is usable, else on the emulated CuPy, and
fails a test in which the "histogram" step did not write its result with the kernels.
"""

import contextlib

import numpy as np
import pytest

from conftest import assert_declined, assert_wrote, is_emulated
from conftest import raised_in_kernel_path as conftest_raised
from gpu_histeq import _cuda, _engine, cumulative_distribution, histogram
from test_cuda_kernels import assert_same_bits

FUNCTIONS = [histogram, cumulative_distribution]
INTEGER_DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32]


def raised_in_kernel_path(error):
    """`error` came from the CUDA entry point, ``_cuda/_histogram.py``."""
    return conftest_raised(error, "_histogram.py")


def _planes(dtype, shape, seed=0, low=None, high=None):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (rng.normal(0.0, 3.0, shape)).astype(dtype)
    info = np.iinfo(dtype)
    low = max(info.min, -3000) if low is None else low
    high = min(info.max, 3000) if high is None else high
    return rng.integers(low, high, shape, endpoint=True).astype(dtype)


def _both(function, images, *args, **kwargs):
    """The call through the kernels (proved by the fixture's recording) and inside portable()."""
    with _engine.recording() as steps:
        got = function(images, *args, **kwargs)
    assert [s.name for s in steps if s.name == "histogram" and s.outcome is True] == ["histogram"]
    with _engine.portable():
        expected = function(images, *args, **kwargs)
    return got, expected


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", INTEGER_DTYPES + [np.float16, np.float32, np.float64], ids=str)
@pytest.mark.parametrize("shape", [(5, 31, 17), (2, 300, 301), (3, 1, 1)], ids=str)
@pytest.mark.parametrize("masked", [False, True], ids=["all", "mask"])
def test_equals_portable(cp, function, dtype, shape, masked):
    images = cp.asarray(_planes(dtype, shape))
    mask = None
    if masked:
        host = np.random.default_rng(1).random(shape) < 0.4
        host[:, 0, 0] = True
        mask = cp.asarray(host)
    (table, centers), (expected_table, expected_centers) = _both(function, images, 100, mask=mask)
    assert_same_bits(table, expected_table)
    assert_same_bits(centers, expected_centers)


@pytest.mark.parametrize("dtype, values", [
    (np.uint8, (0, 255)), (np.int8, (-128, 127)), (np.uint16, (0, 65535)),
    (np.int16, (-32768, 32767)), (np.uint32, (2**32 - 2**23, 2**32 - 1)),
    (np.int32, (-2**31, -2**31 + 2**24 - 1))], ids=str)
def test_integer_extremes(cp, dtype, values):
    """Full-range planes and planes at the dtype's ends: the width is the widest plane's."""
    host = np.zeros((3, 1, 64), dtype)
    host[0, 0, ::2], host[0, 0, 1::2] = values
    host[1] = values[1]  # constant at the top
    host[2, 0, :5] = values[0]
    host[2, 0, 5:] = values[0] + 7
    images = cp.asarray(host)
    (counts, centers), (expected_counts, expected_centers) = _both(histogram, images)
    assert_same_bits(counts, expected_counts)
    assert_same_bits(centers, expected_centers)
    width = values[1] - values[0] + 1
    got = counts.get()
    assert got.shape == (3, width)
    assert got[0, 0] == got[0, -1] == 32 and got[1, 0] == 64 and got[1, 1:].sum() == 0
    assert got[2, 0] == 5 and got[2, 7] == 59
    assert int(centers.get()[1, 0]) == values[1] and int(centers.get()[0, -1]) == values[1]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64], ids=str)
@pytest.mark.parametrize("case", ["constant", "two-level", "subnormal", "huge"])
@pytest.mark.parametrize("nbins", [1, 7, 256, 3000])
def test_float_edge_cases(cp, dtype, case, nbins):
    """Constant planes (widened by 0.5), two levels, subnormal and near-overflow ranges."""
    dtype = np.dtype(dtype)
    if dtype == np.float16 and nbins > 2048:
        pytest.skip("float16 past 2048 bins: the portable path (test_direct_call_writes_and_declines)")
    info = np.finfo(dtype)
    host = {"constant": np.full((3, 50), 0.3),
            "two-level": np.resize([-0.25, 0.75], (3, 50)),
            "subnormal": np.resize([0.0, 1e4, 1e5], (3, 50)) * float(info.smallest_subnormal),
            "huge": np.resize([-float(info.max) / 4, float(info.max) / 12, float(info.max) / 4],
                              (3, 50))}[case].astype(dtype)  # width max / 2: no overflow
    images = cp.asarray(host)
    flushed = contextlib.nullcontext()
    if dtype == np.float32 and is_emulated(cp):  # as CuPy's kernels (-ftz=true) on a GPU
        from emulation.fake_cupy import flushed_float32
        flushed = flushed_float32()
    try:
        with _engine.portable(), flushed:
            expected = cumulative_distribution(images, nbins)
    except ValueError as error:  # repeated edges: the kernel path raises the same
        with pytest.raises(ValueError, match="repeat") as caught:
            cumulative_distribution(images, nbins)
        assert raised_in_kernel_path(caught.value) and str(caught.value) == str(error)
        return
    got = cumulative_distribution(images, nbins)
    assert_same_bits(got[0], expected[0])
    assert_same_bits(got[1], expected[1])


def test_agrees_with_scikit_image_per_plane(cp):
    exposure = pytest.importorskip("skimage.exposure")
    data = pytest.importorskip("skimage.data")
    photo = data.camera()[::4, ::4]
    host = np.stack([photo, photo // 3 + 40, 255 - photo])
    counts, centers = histogram(cp.asarray(host))
    cdf, cdf_centers = cumulative_distribution(cp.asarray(host.astype(np.float32) / 255), 50)
    for p, plane in enumerate(host):
        hist, bins = exposure.histogram(plane)
        np.testing.assert_array_equal(counts.get()[p, :hist.size], hist)
        assert counts.get()[p, hist.size:].sum() == 0
        np.testing.assert_array_equal(centers.get()[p, :bins.size], bins)
        ref_cdf, ref_centers = exposure.cumulative_distribution(plane.astype(np.float32) / 255, 50)
        np.testing.assert_array_equal(cdf.get()[p], ref_cdf)
        np.testing.assert_array_equal(cdf_centers.get()[p], ref_centers)
    widest = max(int(plane.max()) - int(plane.min()) for plane in host) + 1
    assert counts.shape == (3, widest) and widest > 200


# ---- errors: raised by the kernel path, with the portable path's message and order

def _same_error(cp, function, images, *args, **kwargs):
    with _engine.portable(), pytest.raises(ValueError) as expected:
        function(images, *args, **kwargs)
    with pytest.raises(ValueError) as caught:
        function(images, *args, **kwargs)
    assert str(caught.value) == str(expected.value)
    assert raised_in_kernel_path(caught.value), caught.value
    return str(caught.value)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64], ids=str)
@pytest.mark.parametrize("nan", [False, True], ids=["finite", "nan-elsewhere"])
def test_mask_selecting_nothing(cp, dtype, nan):
    host = _planes(dtype, (4, 8, 8))
    mask = np.ones(host.shape, bool)
    mask[2] = mask[3] = False
    if nan and np.dtype(dtype).kind == "f":
        host[0, 0, 0] = np.nan
    message = _same_error(cp, histogram, cp.asarray(host), 10, mask=cp.asarray(mask))
    assert "selects no pixel of plane 2" in message


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=str)
def test_not_finite(cp, dtype, value):
    host = _planes(dtype, (3, 9, 9))
    host[1, 4, 4] = value
    assert "NaN or infinity" in _same_error(cp, cumulative_distribution, cp.asarray(host))


def test_selection_of_nan_only_is_the_nan_error(cp):
    """A plane whose selected pixels are all NaN selects pixels: the NaN error, not the mask's."""
    host = _planes(np.float32, (2, 4, 4))
    host[1] = np.nan
    mask = np.zeros(host.shape, bool)
    mask[:, 0, :2] = True
    assert "NaN or infinity" in _same_error(cp, histogram, cp.asarray(host),
                                            mask=cp.asarray(mask))


def test_repeated_edges(cp):
    host = np.full((2, 5), 2.0**19, np.float32)
    host[1, 0] = 2.0**19 + 0.0625
    assert "repeat" in _same_error(cp, histogram, cp.asarray(host), 4096)


def test_span_over_the_level_limit(cp):
    host = np.zeros((2, 4), np.int32)
    host[1, 1] = 1 << 25
    assert "integer levels" in _same_error(cp, histogram, cp.asarray(host))


# ---- what the kernels cover, and what they launch

def test_direct_call_writes_and_declines(cp):
    planes = cp.asarray(_planes(np.uint16, (3, 40)))
    assert_wrote(_cuda.histogram(planes, None, 256, False))
    for dtype in (np.int64, np.uint64):
        assert_declined(_cuda.histogram(cp.zeros((2, 8), dtype), None, 256, False), "uncovered")
    assert_declined(_cuda.histogram(cp.zeros((2, 8), np.float16), None, 2049, False),
                    "uncovered")  # float16 bin indices stop being integers past 2048
    assert_declined(_cuda.histogram(planes[:, ::2], None, 256, True), "uncovered")


def test_empty_batches_keep_their_shape(cp):
    counts, centers = histogram(cp.zeros((0, 4, 4), np.uint8))
    assert counts.shape == (0, 256) and centers.shape == (0, 256)
    cdf, _ = cumulative_distribution(cp.zeros((2, 0, 3), np.float32), 9)
    assert cdf.shape == (2, 9) and cdf.dtype == np.float32


@pytest.mark.parametrize("dtype, kernels", [
    (np.uint8, {"gpu_histeq_level_range<unsigned char>", "gpu_histeq_level_histogram<unsigned char>",
                "gpu_histeq_level_finish<double>"}),
    (np.float32, {"gpu_histeq_minmax<float>", "gpu_histeq_uniform_histogram<float>",
                  "gpu_histeq_uniform_finish<float, float>"})], ids=["uint8", "float32"])
def test_three_kernels_per_call(cp, dtype, kernels):
    if not is_emulated(cp):
        pytest.skip("the launch log is the emulator's")
    from emulation import fake_cupy
    images = cp.asarray(_planes(dtype, (4, 20, 20)))
    before = dict(fake_cupy.LAUNCHES)
    cumulative_distribution(images, 64)
    launched = {name for name, count in fake_cupy.LAUNCHES.items() if count > before.get(name, 0)}
    assert launched == kernels
