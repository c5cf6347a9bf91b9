"""equalize_hist of float16 planes on CUDA (``uniform.cu``'s one-block kernel over
``gpu_histeq_half``: every operation in float32, rounded to float16 as numpy.float16 rounds it)
equals the portable path bit for bit, errors included, and scikit-image per plane.

The ``cp`` fixture runs each case on a GPU when one is usable, else on the emulated CuPy, and
fails a test in which the "equalize" step did not write its result with the kernel (or declined
without the test naming the decline).
"""

import numpy as np
import pytest

from conftest import (assert_declined, assert_wrote, expect_decline, is_emulated,
                      raised_in_kernel_path)
from gpu_histeq import _cuda, _engine, equalize_hist
from test_cuda_kernels import assert_same_bits

HALF_MAX = 65504.0


def _compare(cp, host, *args, **kwargs):
    """The kernel's result (or error) and the portable path's, on the same CuPy planes."""
    images = cp.asarray(host)
    # NumPy's float16 warns where an edge overflows (CuPy does not); the values are the same
    with _engine.portable(), np.errstate(over="ignore", invalid="ignore"):
        try:
            expected, expected_error = equalize_hist(images, *args, **kwargs), None
        except ValueError as error:
            expected, expected_error = None, str(error)
    if expected_error is not None:
        with pytest.raises(ValueError) as caught:
            equalize_hist(images, *args, **kwargs)
        assert str(caught.value) == expected_error
        assert raised_in_kernel_path(caught.value), caught.value
        return None
    with np.errstate(over="ignore", invalid="ignore"):  # an "irregular" plane's portable redo
        result = equalize_hist(images, *args, **kwargs)
    assert result.dtype == np.float32
    assert_same_bits(result, expected)
    return result


def _random(shape, seed=0, scale=3.0):
    return np.random.default_rng(seed).normal(0.0, scale, shape).astype(np.float16)


@pytest.mark.parametrize("shape", [(6, 40, 33), (3, 1, 1), (2, 256, 256), (4, 7, 9)], ids=str)
@pytest.mark.parametrize("nbins", [1, 7, 100, 256])
def test_equals_portable(cp, shape, nbins):
    _compare(cp, _random(shape), nbins)


@pytest.mark.parametrize("nbins", [16, 256])
def test_masked_and_offset_planes(cp, nbins):
    host = _random((5, 30, 31), seed=2)
    mask = np.random.default_rng(3).random(host.shape) < 0.3
    mask[:, 0, 0] = True
    _compare(cp, host, nbins, mask=cp.asarray(mask))
    offset = cp.asarray(np.concatenate([[0], _random(5 * 30 * 31, seed=4)]).astype(np.float16))
    images = offset[1:].reshape(5, 30, 31)  # planes not on a 16-byte boundary
    result = equalize_hist(images, nbins)
    with _engine.portable(), np.errstate(over="ignore", invalid="ignore"):
        assert_same_bits(result, equalize_hist(images, nbins))


@pytest.mark.parametrize("case, values", [
    ("repeated", [1.0, 1.0, 1.0, 2.0]),
    ("two-level", [-0.25, 0.75]),
    ("half-range", [-HALF_MAX / 2, 0.5, HALF_MAX / 2]),
    ("near-max", [HALF_MAX - 32, HALF_MAX]),
    ("near-one", [1.0, 1.0009765625, 1.001953125]),  # neighbouring float16 values
    ("tiny-normals", [2.0**-14, 2.0**-13, 2.0**-2]),  # bins wider than 2 smallest normals
], ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("nbins", [2, 7, 256])
def test_edge_values(cp, case, values, nbins):
    host = np.resize(np.array(values, np.float16), (3, 11, 13))
    host[1] = host[1, ::-1]
    _compare(cp, host, nbins)


@pytest.mark.parametrize("case, values", [
    ("full-range", [-HALF_MAX, 0.0, HALF_MAX]),  # width overflows to inf: edges repeat
    ("constant-large", [1000.0]),  # 1000 +- 0.5 in float16: spacing 0.5, 256 bins repeat
])
def test_repeated_edges_refused_as_portably(cp, case, values):
    host = np.resize(np.array(values, np.float16), (2, 9, 9))
    assert _compare(cp, host, 256) is None


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=str)
def test_not_finite_refused_as_portably(cp, value):
    host = _random((3, 12, 12))
    host[2, 5, 5] = value
    assert _compare(cp, host) is None


def test_subnormal_planes(cp):
    """Bins a few float16 subnormals wide: fewer bins than the range's spacing repeat edges
    (refused); bins narrower than two smallest normals are the documented "irregular" decline,
    which the portable path then redoes with numpy.interp's own search."""
    host = (np.random.default_rng(5).integers(0, 50, (3, 20, 20)) * 2.0**-24).astype(np.float16)
    assert _compare(cp, host, 256) is None
    expect_decline("irregular")
    _compare(cp, host, 7)


def test_every_finite_positive_half(cp):
    """The 30721 float16 values from 0 to 32768 in one plane (every exponent, every subnormal):
    each pixel's bin and interpolation through the float16 arithmetic. (Up to 65504 the last
    bin center overflows to inf in float16, an "irregular" table the portable path redoes.)"""
    host = np.resize(np.arange(0x7801, dtype=np.uint16), 121 * 256).view(np.float16)
    host = host.reshape(1, 121, 256)
    result = _compare(cp, host, 256)
    assert result is not None and float(result.max()) == 1.0


def test_agrees_with_scikit_image(cp):
    exposure = pytest.importorskip("skimage.exposure")
    host = _random((3, 50, 40), seed=7, scale=0.2)
    result = equalize_hist(cp.asarray(host), 64).get()
    for plane, got in zip(host, result):
        expected = exposure.equalize_hist(plane, 64)
        assert expected.dtype == np.float32
        np.testing.assert_array_equal(got, expected)


def test_direct_call_writes_and_declines(cp):
    planes = cp.asarray(_random((4, 500)))
    result = cp.empty((4, 500), np.float32)
    assert_wrote(_cuda.equalize(planes, None, "skimage", 256, result))
    assert_wrote(_cuda.equalize(planes, None, "skimage", 1000, result))
    # past 2048 bins numpy's float16 bin indices are no longer integers: the portable path
    assert_declined(_cuda.equalize(planes, None, "skimage", 2049, result), "uncovered")


@pytest.mark.parametrize("shape, nbins", [((2, 300, 301), 256), ((3, 40, 41), 1000),
                                          ((1, 257, 256), 2048)], ids=str)
def test_multi_block_kernels(cp, shape, nbins):
    """Planes past 65536 pixels or 256 bins: minmax (float32 ranges), counts, tables, remap.
    (2048 float16 bins have increasing edges over [-1, 1], where the step 2**-10 is a float16.)"""
    host = np.random.default_rng(8).uniform(-1, 1, shape).astype(np.float16)
    host[:, 0, :2] = -1, 1
    mask = np.random.default_rng(9).random(shape) < 0.5
    mask[:, 0, 0] = True
    assert _compare(cp, host, nbins) is not None  # values compared, not an error
    assert _compare(cp, host, nbins, mask=cp.asarray(mask)) is not None


def test_ragged_list(cp):
    """A list of float16 images of different sizes: the packed planes through the same kernels."""
    images = [cp.asarray(_random(shape, seed=i)) for i, shape in
              enumerate([(1, 1), (7, 5), (300, 230), (40, 33)])]
    with np.errstate(over="ignore", invalid="ignore"):
        results = equalize_hist(images, 300)
        with _engine.portable():
            expected = equalize_hist(images, 300)
    for got, want in zip(results, expected):
        assert_same_bits(got, want)


def test_one_launch_for_small_planes(cp):
    if not is_emulated(cp):
        pytest.skip("the launch log is the emulator's")
    from emulation import fake_cupy
    images = cp.asarray(_random((8, 20, 20)))
    before = dict(fake_cupy.LAUNCHES)
    equalize_hist(images)
    launched = {name: count - before.get(name, 0) for name, count in fake_cupy.LAUNCHES.items()
                if count > before.get(name, 0)}
    assert launched == {"gpu_histeq_equalize_small_float<gpu_histeq_half>": 1}


def test_last_center_overflowing_is_the_irregular_decline(cp):
    """A plane reaching 65504 in 256 bins: its last bin center, (65248 + 65504) / 2 in float16,
    is inf, so the portable InterpTable is irregular and numpy.interp's search redoes it."""
    host = np.resize(np.array([0.0, 1000.0, HALF_MAX], np.float16), (2, 9, 9))
    expect_decline("irregular")
    _compare(cp, host, 256)
