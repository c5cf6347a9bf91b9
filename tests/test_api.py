"""histogram / cumulative_distribution / apply_lut, bad input, and properties of equalize_hist."""

import numpy as np
import pytest
from conftest import assert_backend, to_numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gpu_histeq import apply_lut, cumulative_distribution, equalize_hist, histogram

exposure = pytest.importorskip("skimage.exposure")
skimage_data = pytest.importorskip("skimage.data")


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
def test_histogram_and_cdf_match_skimage_per_plane(xp, dtype):
    rng = np.random.default_rng(0)
    images = (rng.normal(60, 20, (3, 2, 30, 40))).astype(dtype)
    images[0, 1] = images[0, 1] // 2 if dtype != np.float32 else images[0, 1] / 3
    counts, centers = histogram(xp.asarray(images), 50)
    cdf, cdf_centers = cumulative_distribution(xp.asarray(images), 50)
    assert_backend(counts, xp)
    for index in np.ndindex(3, 2):
        want_counts, want_centers = exposure.histogram(images[index], 50)
        want_cdf, _ = exposure.cumulative_distribution(images[index], 50)
        width = len(want_counts)
        np.testing.assert_array_equal(to_numpy(counts)[index][:width], want_counts)
        assert to_numpy(counts)[index][width:].sum() == 0  # narrower integer planes: zero tail
        np.testing.assert_array_equal(to_numpy(centers)[index][:width], want_centers)
        np.testing.assert_array_equal(to_numpy(cdf)[index][:width], want_cdf)
        np.testing.assert_array_equal(to_numpy(cdf_centers), to_numpy(centers))


def test_histogram_with_mask_counts_selected_pixels(xp):
    image = skimage_data.camera()
    mask = np.zeros(image.shape, bool)
    mask[100:300, 50:250] = True
    counts, centers = histogram(xp.asarray(image), mask=xp.asarray(mask))
    want_counts, want_centers = exposure.histogram(image[mask])
    np.testing.assert_array_equal(to_numpy(counts), want_counts)
    np.testing.assert_array_equal(to_numpy(centers), want_centers)


def test_histogram_of_empty_batch(xp):
    counts, centers = histogram(xp.zeros((0, 5, 5), np.float32), 10)
    assert counts.shape == (0, 10) and centers.shape == (0, 10)


def test_apply_lut_per_plane_and_shared(xp):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (4, 3, 10, 12), dtype=np.uint8)
    tables = rng.integers(0, 1000, (4, 3, 256)).astype(np.uint16)
    result = apply_lut(xp.asarray(images), xp.asarray(tables))
    assert_backend(result, xp)
    expected = np.take_along_axis(tables, images.reshape(4, 3, -1), axis=-1).reshape(images.shape)
    np.testing.assert_array_equal(to_numpy(result), expected)
    shared = apply_lut(xp.asarray(images), xp.asarray(tables[0, 0]))
    np.testing.assert_array_equal(to_numpy(shared), tables[0, 0][images])


def test_tables_from_one_batch_applied_to_another(xp):
    """The pipeline's steps compose: a reference batch's cdf applied to new images."""
    rng = np.random.default_rng(2)
    reference = rng.integers(30, 200, (1, 64, 64), dtype=np.uint8)
    cdf, centers = cumulative_distribution(xp.asarray(reference), axes=(0, 1, 2))
    table = np.interp(np.arange(256), to_numpy(centers), to_numpy(cdf))
    images = rng.integers(0, 256, (5, 16, 16), dtype=np.uint8)
    result = apply_lut(xp.asarray(images), xp.asarray(table))
    np.testing.assert_array_equal(to_numpy(result), table[images])


def test_apply_lut_matches_equalize_of_same_table(xp):
    image = skimage_data.moon()
    cdf, centers = cumulative_distribution(xp.asarray(image))
    table = np.interp(np.arange(256), to_numpy(centers), to_numpy(cdf))
    np.testing.assert_allclose(to_numpy(apply_lut(xp.asarray(image), xp.asarray(table))),
                               exposure.equalize_hist(image), atol=1e-12)


BAD_INPUTS = [
    (lambda xp: equalize_hist([[1, 2], [3, 4]]), TypeError, r"`images` must be a numpy.ndarray or cupy.ndarray"),
    (lambda xp: equalize_hist(xp.zeros(5, np.uint8)), ValueError, r"`images` must have at least 2 dimensions"),
    (lambda xp: equalize_hist(xp.zeros((2, 2), np.complex64)), TypeError, r"`images` must have an integer or real floating dtype, got complex64"),
    (lambda xp: equalize_hist(xp.zeros((2, 2), bool)), TypeError, r"`images` must have an integer or real floating dtype, got bool"),
    (lambda xp: equalize_hist(xp.zeros((2, 2), np.float32), nbins=0), ValueError, r"`nbins` must be a positive integer, got 0"),
    (lambda xp: equalize_hist(xp.zeros((2, 2), np.float32), nbins=2.5), ValueError, r"`nbins` must be a positive integer, got 2.5"),
    (lambda xp: equalize_hist(xp.zeros((2, 2), np.float32), nbins=True), ValueError, r"`nbins` must be a positive integer, got True"),
    (lambda xp: equalize_hist(xp.asarray([[0.0, np.nan]])), ValueError, r"`images` must not contain NaN or infinity"),
    (lambda xp: equalize_hist(xp.asarray([[0.0, np.inf]], np.float32)), ValueError, r"NaN or infinity"),
    (lambda xp: equalize_hist(xp.asarray([[0.0, 1.0], [np.nan, 2.0]]), mask=xp.asarray([[True, True], [False, True]])), ValueError, r"NaN or infinity"),
    (lambda xp: equalize_hist(xp.zeros((2, 2), np.uint8), method="clahe"), ValueError, r"`method` must be one of \('opencv', 'pil', 'skimage'\) or None, got 'clahe'"),
    (lambda xp: equalize_hist(xp.zeros((2, 2), np.float32), method="opencv"), TypeError, r"`method='opencv'` needs uint8 or uint16 `images`, got float32"),
    (lambda xp: equalize_hist(xp.zeros((2, 2), np.uint16), method="pil"), TypeError, r"`method='pil'` needs uint8 `images`, got uint16"),
    (lambda xp: equalize_hist(xp.zeros((2, 2), np.uint8), nbins=100), ValueError, r"`nbins` must be the default 256 with `method='opencv'` \(one bin per level of uint8\), got 100; for 100 bins use `method='skimage'`"),
    (lambda xp: equalize_hist(xp.zeros((2, 2), np.uint8), axes=(0, 2)), ValueError, r"`axes` \(0, 2\) is out of range for an array with 2 dimensions"),
    (lambda xp: equalize_hist(xp.zeros((2, 2), np.uint8), axes=(1, -1)), ValueError, r"`axes` must not repeat an axis, got \(1, -1\)"),
    (lambda xp: equalize_hist(xp.zeros((2, 2), np.uint8), axes=("h", "w")), TypeError, r"`axes` must be a non-empty tuple of ints"),
    (lambda xp: equalize_hist(xp.zeros((2, 2), np.uint8), axes=()), TypeError, r"`axes` must be a non-empty tuple of ints"),
    (lambda xp: equalize_hist(xp.zeros((2, 3, 3), np.uint8), mask=xp.ones((2, 2), bool)), ValueError, r"`mask` of shape \(2, 2\) does not broadcast to `images` of shape \(2, 3, 3\)"),
    (lambda xp: equalize_hist(xp.zeros((2, 3, 3), np.uint8), mask=xp.ones((3, 3), np.uint8)), TypeError, r"`mask` must be a boolean array, got uint8"),
    (lambda xp: equalize_hist(xp.zeros((2, 3, 3), np.uint8), mask=np.ones((3, 3), bool) if xp is not np else [[True]]), TypeError, r"`mask` must be a boolean array|`mask` must be a cupy array"),
    (lambda xp: equalize_hist(xp.zeros((2, 3, 3), np.uint8), mask=xp.asarray([[[True]], [[False]]])), ValueError, r"`mask` selects no pixel of plane 1"),
    (lambda xp: equalize_hist(xp.zeros((2, 3, 3), np.uint8), out=xp.zeros((2, 3), np.uint8)), ValueError, r"`out` must have shape \(2, 3, 3\), got \(2, 3\)"),
    (lambda xp: equalize_hist(xp.zeros((2, 3, 3), np.uint8), out=xp.zeros((2, 3, 3), np.float32)), TypeError, r"`out` must have dtype uint8, got float32"),
    (lambda xp: equalize_hist(xp.zeros((2, 3, 3), np.float32), out=xp.zeros((2, 3, 3), np.float64)), TypeError, r"`out` must have dtype float32, got float64"),
    (lambda xp: equalize_hist(xp.zeros((2, 3, 3), np.uint8), axes=(-2, -1), channel_axis=2), ValueError, r"`channel_axis` 2 must not be one of the image `axes` \(1, 2\): leave `axes` out \(with `channel_axis=2` the image axes are the trailing axes \(0, 1\)\)"),
    (lambda xp: equalize_hist(xp.zeros((2, 3, 3), np.uint8), channel_axis=5), ValueError, r"`channel_axis` \(5,\) is out of range"),
    (lambda xp: equalize_hist(xp.zeros((2, 3, 3), np.uint8), luminance=True), ValueError, r"`luminance=True` needs `channel_axis`"),
    (lambda xp: equalize_hist(xp.zeros((4, 3, 3), np.uint8), channel_axis=0, luminance=True), ValueError, r"needs 3 \(R, G, B\) channels along `channel_axis` 0, got 4"),
    (lambda xp: equalize_hist(xp.zeros((3, 3, 3), np.int16), channel_axis=0, luminance=True), TypeError, r"`luminance=True` needs uint8, uint16, uint32 or floating `images` .*, got int16"),
    (lambda xp: equalize_hist(xp.zeros((2, 2), np.uint8), luminance="yes"), ValueError, r"`luminance` must be True \(RGB\), 'rgb' or 'bgr'"),
    (lambda xp: equalize_hist(xp.asarray([[0, 2**30]], np.int64), method="skimage"), ValueError, r"spans 1073741825 integer levels"),
    (lambda xp: histogram(xp.zeros((2, 2), np.float32), nbins=-1), ValueError, r"`nbins` must be a positive integer, got -1"),
    (lambda xp: cumulative_distribution(xp.zeros((2,), np.float32)), ValueError, r"at least 2 dimensions"),
    (lambda xp: apply_lut(xp.zeros((2, 2), np.float32), xp.zeros(4)), TypeError, r"`images` must be an integer array to index a table, got float32"),
    (lambda xp: apply_lut(xp.full((2, 2), 9, np.uint8), xp.zeros(4)), ValueError, r"`images` values must lie in \[0, 4\) to index `lut`, got values in \[9, 9\]"),
    (lambda xp: apply_lut(xp.zeros((3, 2, 2), np.uint8), xp.zeros((2, 4))), ValueError, r"`lut` must have shape \(L,\) or \(3, 'L'\)"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUTS)
def test_bad_input_is_refused_clearly(xp, call, error, message):
    with pytest.raises(error, match=message):
        call(xp)


images_strategy = hnp.arrays(
    np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 9), st.integers(1, 9)),
    elements=st.integers(0, 255))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images=images_strategy, method=st.sampled_from(["opencv", "pil", "skimage"]),
       seed=st.integers(0, 2**32 - 1))
def test_properties_batch_loop_permutation_monotone_range(images, method, seed):
    result = equalize_hist(images, method=method)
    loop = np.stack([equalize_hist(plane, method=method) for plane in images])
    np.testing.assert_array_equal(result, loop)  # batch equals the per-plane loop
    order = np.random.default_rng(seed).permutation(len(images))
    np.testing.assert_array_equal(equalize_hist(images[order], method=method), result[order])
    for plane, mapped in zip(images, result):  # each plane's mapping is monotone
        levels = np.argsort(plane.ravel(), kind="stable")
        assert (np.diff(mapped.ravel()[levels].astype(np.float64)) >= 0).all()
    if method == "skimage":
        assert result.dtype == np.float64 and result.min() > 0 and result.max() == 1
    else:
        assert result.dtype == np.uint8


@settings(max_examples=40, deadline=None)
@given(images=hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 7), st.integers(1, 7)),
                         elements=st.floats(-1e4, 1e4, width=32)),
       nbins=st.integers(1, 300))
def test_property_float_matches_skimage(images, nbins):
    try:
        expected = np.stack([exposure.equalize_hist(plane, nbins) for plane in images])
    except ValueError as error:  # numpy.histogram refuses bins too narrow for the range: so do we
        assert "Too many bins" in str(error)
        with pytest.raises(ValueError, match=f"`nbins` {nbins} is too many for the range"):
            equalize_hist(images, nbins)
        return
    np.testing.assert_allclose(equalize_hist(images, nbins), expected, rtol=0, atol=1e-5)
