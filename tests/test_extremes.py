"""Extreme inputs are refused clearly or handled right, never a crash or a silent wrong value
(issue 12): full-range 64-bit planes, uint64 levels above 2**63, parameters that size an
allocation, `out` and masked arrays, and the same validation for empty and non-empty input."""

import re

import numpy as np
import pytest
from skimage import exposure

import gpu_histeq as gh
from gpu_histeq import _validate

I64, U64 = np.iinfo(np.int64), np.iinfo(np.uint64)


def full_range(dtype):
    info = np.iinfo(dtype)
    plane = np.array([[info.min, 0], [1, info.max]], dtype)
    return np.stack([plane, plane // 2 + 1])


# ---------------------------------------------------------------------------------------------
# 64-bit integer planes

SPANS = r"`images` spans \d+ integer levels in one plane; at most 16777216"


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
@pytest.mark.parametrize("call", [
    lambda x: gh.equalize_hist(x),
    lambda x: gh.histogram(x),
    lambda x: gh.cumulative_distribution(x),
    lambda x: gh.equalize_hist(x, axes=(0, 1, 2)),
], ids=["equalize_hist", "histogram", "cdf", "dataset-wide"])
def test_full_range_planes_are_a_clear_value_error(dtype, call):
    with pytest.raises(ValueError, match=SPANS):
        call(full_range(dtype))


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
@pytest.mark.parametrize("call", [
    lambda x: gh.equalize_hist(x).compute(scheduler="sync"),
    lambda x: gh.equalize_hist(x, axes=(0, 1, 2)).compute(scheduler="sync"),
    lambda x: gh.histogram(x)[0].compute(scheduler="sync"),
], ids=["equalize_hist", "dataset-wide", "histogram"])
def test_full_range_planes_in_dask(dtype, call):
    da = pytest.importorskip("dask.array")  # not on every machine (the lent GPU has none)
    with pytest.raises(ValueError, match=SPANS):
        call(da.from_array(full_range(dtype), chunks=(1, 1, 2)))


def test_full_range_matching_is_right():
    images = full_range(np.int64)
    reference = np.array([[I64.min, -5], [7, I64.max]], np.int64)
    result = gh.match_histograms(images, reference)
    for image, got in zip(images, result):
        np.testing.assert_array_equal(got, exposure.match_histograms(image, reference))


def test_uint64_levels_above_two_to_the_63():
    base = np.uint64(U64.max - 9)
    offsets = np.array([[[0, 3], [3, 9]], [[1, 1], [2, 5]]], np.uint64)
    images = base + offsets
    counts, centers = gh.histogram(images)
    want_counts, want_centers = gh.histogram(offsets)
    assert centers.dtype == np.uint64
    np.testing.assert_array_equal(counts, want_counts)
    np.testing.assert_array_equal(centers, want_centers.astype(np.uint64) + base)
    assert int(centers[0, 0]) == int(base) and int(centers[0, 9]) == U64.max
    np.testing.assert_array_equal(gh.equalize_hist(images), gh.equalize_hist(offsets))


def test_uint64_levels_above_two_to_the_63_in_dask():
    da = pytest.importorskip("dask.array")  # not on every machine (the lent GPU has none)
    base = np.uint64(U64.max - 9)
    offsets = np.array([[[0, 3], [3, 9]], [[1, 1], [2, 5]]], np.uint64)
    images = base + offsets
    centers = gh.histogram(images)[1]
    assert int(centers[0, 0]) == int(base) and int(centers[0, 9]) == U64.max
    lazy = da.from_array(images, chunks=(1, 1, 2))
    np.testing.assert_array_equal(gh.histogram(lazy)[1].compute(scheduler="sync"), centers)
    np.testing.assert_array_equal(gh.equalize_hist(lazy).compute(scheduler="sync"),
                                  gh.equalize_hist(offsets))


def test_int64_levels_at_the_bottom():
    images = np.array([[[I64.min, I64.min + 2], [I64.min + 2, I64.min + 7]]], np.int64)
    counts, centers = gh.histogram(images)
    assert int(centers[0, 0]) == I64.min and int(centers[0, -1]) == I64.min + 7
    np.testing.assert_array_equal(counts[0], [1, 0, 2, 0, 0, 0, 0, 1])


# ---------------------------------------------------------------------------------------------
# parameters that size an allocation

def estimate(param):
    return rf"`{param}` .* needs about [\d.]+ (TiB|GiB|MiB|bytes) of working memory, more than half"


@pytest.mark.parametrize("call, param", [
    (lambda: gh.equalize_hist(np.zeros((2, 4, 4), np.float32), nbins=10**12), "nbins"),
    (lambda: gh.histogram(np.zeros((2, 4, 4)), nbins=10**12), "nbins"),
    (lambda: gh.cumulative_distribution(np.zeros((2, 4, 4)), nbins=10**12), "nbins"),
    (lambda: gh.clahe(np.zeros((4, 4), np.uint8), 2.0, (10**5, 10**5)), "tile_grid"),
    (lambda: gh.equalize_adapthist(np.zeros((8, 8), np.uint8), nbins=10**12), "nbins"),
    (lambda: gh.equalize_hist(np.zeros((0, 4, 4), np.float32), nbins=10**12), "nbins"),
], ids=["equalize_hist", "histogram", "cdf", "clahe", "adapthist", "empty"])
def test_huge_allocations_are_refused_before_allocating(call, param):
    with pytest.raises(ValueError, match=estimate(param)):
        call()


@pytest.fixture
def one_gib(monkeypatch):
    """The memory check sees 1 GiB available, whatever the machine has."""
    monkeypatch.setattr(_validate, "available_memory", lambda xp: 1 << 30)


def test_moderate_parameters_against_the_available_memory(one_gib):
    tiny = np.random.default_rng(0).random((1, 40, 40))
    with pytest.raises(ValueError, match=estimate("nbins")):
        gh.equalize_hist(tiny, nbins=10**8)  # a 13 KB input whose tables need GiBs
    with pytest.raises(ValueError, match=estimate("kernel_size")):
        gh.equalize_adapthist(np.zeros((2000, 2000), np.uint8), kernel_size=1, nbins=256)
    with pytest.raises(ValueError, match=estimate("tile_grid")):
        gh.clahe(np.zeros((4, 4), np.uint16), 2.0, (64, 64))
    gh.equalize_hist(tiny, nbins=10**5)  # small enough: runs


def test_matching_falls_back_to_sorting_when_level_tables_do_not_fit(monkeypatch):
    images = np.random.default_rng(1).integers(0, 1 << 19, (4, 16, 16))
    reference = np.random.default_rng(2).integers(0, 1 << 19, (16, 16))
    want = gh.match_histograms(images, reference)
    monkeypatch.setattr(_validate, "available_memory", lambda xp: 1 << 20)
    np.testing.assert_array_equal(gh.match_histograms(images, reference), want)


# ---------------------------------------------------------------------------------------------
# out, masked arrays

@pytest.mark.parametrize("out", [[[0] * 4] * 4, np.ma.zeros((4, 4), np.uint8), 7],
                         ids=["list", "masked", "int"])
def test_out_must_be_an_array_of_the_input_backend(out):
    with pytest.raises(TypeError, match=r"`out` must be a numpy.ndarray like `images`, got"):
        gh.equalize_hist(np.zeros((4, 4), np.uint8), out=out)


MASKED = np.ma.masked_array(np.arange(16, dtype=np.uint8).reshape(4, 4), mask=np.eye(4, dtype=bool))


@pytest.mark.parametrize("call, param", [
    (lambda: gh.equalize_hist(MASKED), "images"),
    (lambda: gh.histogram(MASKED), "images"),
    (lambda: gh.cumulative_distribution(MASKED), "images"),
    (lambda: gh.apply_lut(MASKED, np.arange(256)), "images"),
    (lambda: gh.apply_lut(MASKED.data, np.ma.arange(256)), "lut"),
    (lambda: gh.clahe(MASKED), "images"),
    (lambda: gh.equalize_adapthist(MASKED), "images"),
    (lambda: gh.match_histograms(MASKED, MASKED.data), "images"),
    (lambda: gh.match_histograms(MASKED.data, MASKED), "reference"),
    (lambda: gh.equalize_hist(MASKED.data, mask=np.ma.masked_array(np.ones((4, 4), bool))),
     "mask"),
])
def test_masked_arrays_are_refused(call, param):
    with pytest.raises(TypeError, match=rf"`{param}` must not be a numpy.ma.MaskedArray"):
        call()


def test_the_masked_array_recipe_works():
    with pytest.raises(TypeError, match=re.escape("mask=~numpy.ma.getmaskarray(images)")):
        gh.equalize_hist(MASKED)
    result = gh.equalize_hist(MASKED.data, mask=~np.ma.getmaskarray(MASKED))
    assert result.shape == (4, 4)


# ---------------------------------------------------------------------------------------------
# the same validation for empty and non-empty input; messages that point to the fix

BAD = [
    (lambda x: gh.equalize_hist(x, nbins=100), ValueError, "`method='skimage'`"),
    (lambda x: gh.equalize_hist(x, nbins=0), ValueError, "`nbins` must be a positive"),
    (lambda x: gh.equalize_hist(x, method="pil", nbins=65536), ValueError, "`nbins`"),
    (lambda x: gh.equalize_hist(x, axes=(5,)), ValueError, "`axes`"),
    (lambda x: gh.equalize_hist(x, luminance=1), TypeError, "`luminance` must be a bool"),
    (lambda x: gh.equalize_hist(x, luminance=True), ValueError, "needs `channel_axis`"),
    (lambda x: gh.equalize_hist(x, out=np.zeros((1,), np.uint8)), ValueError, "`out` must have"),
    (lambda x: gh.equalize_hist(x, mask=np.ones((3, 5), bool)), ValueError, "`mask` of shape"),
    (lambda x: gh.histogram(x, nbins=-1), ValueError, "`nbins`"),
    (lambda x: gh.apply_lut(x, np.zeros((7, 256))), ValueError, "`lut` must have shape"),
    (lambda x: gh.clahe(x, -1.0), ValueError, "`clip_limit`"),
    (lambda x: gh.clahe(x, 2.0, (0, 2)), ValueError, "`tile_grid`"),
    (lambda x: gh.clahe(x, axes=(0, 1, 2)), ValueError, "`axes` must name 2 axes"),
    (lambda x: gh.equalize_adapthist(x, kernel_size=(2, 2, 2)), ValueError, "`kernel_size`"),
    (lambda x: gh.equalize_adapthist(x, kernel_size=9), ValueError, "must not exceed"),
    (lambda x: gh.equalize_adapthist(x, clip_limit=float("nan")), ValueError, "`clip_limit`"),
    (lambda x: gh.match_histograms(x, np.zeros((4, 4), np.int8)), TypeError, "`reference`"),
    (lambda x: gh.match_histograms(x, np.zeros((2, 2, 2, 2), np.uint8)), ValueError, "`reference`"),
]


@pytest.mark.parametrize("call, error, match", BAD)
def test_validation_is_identical_for_empty_and_non_empty_input(call, error, match):
    messages = []
    for images in (np.zeros((0, 4, 4), np.uint8), np.zeros((2, 4, 4), np.uint8)):
        with pytest.raises(error, match=re.escape(match)) as raised:
            call(images)
        messages.append(re.sub(r"\d+", "#", str(raised.value)))  # shapes differ, not the check
    assert messages[0] == messages[1]


def test_nbins_message_on_integer_images_points_to_skimage():
    message = (r"`nbins` must be the default 256 with `method='opencv'` \(one bin per level of "
               r"uint8\), got 128; for 128 bins use `method='skimage'` on floating images")
    with pytest.raises(ValueError, match=message):
        gh.equalize_hist(np.zeros((8, 8), np.uint8), nbins=128)
    with pytest.raises(ValueError, match=r"must be 65536 or the default 256 with `method='opencv'`"):
        gh.equalize_hist(np.zeros((8, 8), np.uint16), nbins=1000)


def test_huge_nbins_is_refused_at_once_in_dask():
    da = pytest.importorskip("dask.array")  # not on every machine (the lent GPU has none)
    lazy = da.from_array(np.zeros((2, 4, 4), np.float32), chunks=(1, 4, 4))
    for call in (gh.equalize_hist, gh.histogram, gh.cumulative_distribution):
        with pytest.raises(ValueError, match=estimate("nbins")):
            call(lazy, nbins=10**12)


def test_luminance_refuses_uint64_whose_conversion_would_overflow():
    with pytest.raises(TypeError, match=r"`luminance=True` needs uint8, uint16, uint32 or floating"):
        gh.equalize_hist(np.zeros((4, 4, 3), np.uint64), channel_axis=-1, luminance=True)
    top = np.iinfo(np.uint32).max  # uint32 still exact (int64 intermediates)
    rgb = np.array([[[top, top - 9, top], [top - 300, top, top - 5]],
                    [[top, top, top], [top - 1, top - 2, top - 3]]], np.uint32)
    result = gh.equalize_hist(rgb, channel_axis=-1, luminance=True)
    assert result.dtype == np.uint32
    assert int(result[1, 0].min()) == top  # the brightest luma goes to the top, saturated
