"""Byte order never changes the answer (issue 12): every function and method gives the same
values and the same result dtype for a non-native (byte-swapped) array as for the native one."""

import sys

import numpy as np
import pytest

import gpu_histeq as gh

SWAP = ">" if sys.byteorder == "little" else "<"
RNG = np.random.default_rng(12)


def swapped(array):
    """`array` with the same values in the non-native byte order."""
    array = np.asarray(array)
    return array.astype(array.dtype.newbyteorder(SWAP))


def sample(dtype, shape=(3, 20, 24)):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return RNG.random(shape).astype(dtype)
    info = np.iinfo(dtype)
    low, high = max(info.min, -3000), min(info.max, 3000)
    return RNG.integers(low, high, shape, endpoint=True).astype(dtype)


WIDE = ["u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8"]


def assert_same(got, want):
    if isinstance(want, tuple):
        for g, w in zip(got, want):
            assert_same(g, w)
        return
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, want)


CALLS = {
    "equalize_hist": lambda x: gh.equalize_hist(x),
    "equalize_hist-skimage": lambda x: gh.equalize_hist(x, method="skimage"),
    "histogram": lambda x: gh.histogram(x),
    "cumulative_distribution": lambda x: gh.cumulative_distribution(x),
    "match_histograms": lambda x: gh.match_histograms(x, x[0]),
}


@pytest.mark.parametrize("dtype", WIDE)
@pytest.mark.parametrize("name", CALLS)
def test_every_dtype_through_the_general_functions(name, dtype):
    images = sample(dtype)
    assert_same(CALLS[name](swapped(images)), CALLS[name](images))


@pytest.mark.parametrize("dtype", ["u2", "i2", "f2", "f4", "f8"])
def test_equalize_adapthist(dtype):
    # floats in [-0.9, -0.1] and [0.1, 0.9]: float16 * 65535 (img_as_uint's step, in float16 as
    # scikit-image does it) overflows to inf, and an exact 0 would give NaN there
    images = sample(dtype)
    if np.dtype(dtype).kind == "f":
        images = (np.where(images < 0.5, -1, 1) * (0.1 + 0.8 * images)).astype(dtype)
    assert_same(gh.equalize_adapthist(swapped(images), kernel_size=5),
                gh.equalize_adapthist(images, kernel_size=5))


def test_level_methods_and_clahe_on_uint16():
    images = sample("u2")
    for method in ("opencv", None):
        assert_same(gh.equalize_hist(swapped(images), method=method),
                    gh.equalize_hist(images, method=method))
    assert_same(gh.clahe(swapped(images), 2.0, (2, 3)), gh.clahe(images, 2.0, (2, 3)))


def test_luminance_and_colour_paths():
    rgb = sample("u2", (2, 16, 18, 3))
    for call in (lambda x: gh.equalize_hist(x, channel_axis=-1, luminance=True),
                 lambda x: gh.clahe(x, 2.0, (2, 2), channel_axis=-1, luminance=True),
                 lambda x: gh.equalize_adapthist(x, channel_axis=-1)):
        assert_same(call(swapped(rgb)), call(rgb))


@pytest.mark.parametrize("dtype", ["u2", "i4", "u8"])
def test_apply_lut_with_swapped_images_and_tables(dtype):
    images = RNG.integers(0, 300, (3, 8, 9)).astype(dtype)
    lut = RNG.random((3, 300))
    want = gh.apply_lut(images, lut)
    assert_same(gh.apply_lut(swapped(images), lut), want)
    assert_same(gh.apply_lut(images, swapped(lut)), want)


def test_swapped_reference_and_out():
    images, reference = sample("u2"), sample("u2", (30, 30))
    assert_same(gh.match_histograms(images, swapped(reference)),
                gh.match_histograms(images, reference))
    out = np.empty(images.shape, np.dtype("u2").newbyteorder(SWAP))
    returned = gh.equalize_hist(images, out=out)
    assert returned is out
    np.testing.assert_array_equal(out, gh.equalize_hist(images))


@pytest.mark.parametrize("dtype", ["u2", "f4", "i8"])
def test_dask(dtype):
    da = pytest.importorskip("dask.array")  # not on every machine (the lent GPU has none)
    images = sample(dtype)
    lazy = da.from_array(swapped(images), chunks=(1, 10, 24))
    assert_same(gh.equalize_hist(lazy).compute(scheduler="sync"), gh.equalize_hist(images))
    assert_same(gh.histogram(lazy)[0].compute(scheduler="sync"), gh.histogram(images)[0])
