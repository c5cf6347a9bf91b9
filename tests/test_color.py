"""Colour images (issue 12): ``channel_axis`` as in scikit-image, against the peers' own colour
calls on real colour images from skimage.data.

* per channel: bit-exact with a per-channel loop of ``cv2.equalizeHist`` / ``cv2.CLAHE.apply``;
* luminance: bit-exact with OpenCV's ``cvtColor(RGB2YCrCb) -> equalizeHist / CLAHE of Y ->
  cvtColor(YCrCb2RGB)``, on the compiled and the portable path;
* ``equalize_adapthist`` and ``match_histograms`` of RGB: scikit-image's results to 1e-6.
"""

import warnings

import cv2
import numpy as np
import pytest
from skimage import data, exposure

import gpu_histeq as gh
from gpu_histeq import _cpu, _engine
from gpu_histeq._validate import image_axes


def to_numpy(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)


def crop(image, size=128):
    return np.ascontiguousarray(image[:size, :size])


IMAGES = {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee()}
#: Three equal-sized crops stacked as an NHWC batch.
BATCH = np.stack([crop(image) for image in IMAGES.values()])


def cv2_luma(image, apply):
    """OpenCV's luma round trip of one RGB image."""
    ycc = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    ycc[..., 0] = apply(np.ascontiguousarray(ycc[..., 0]))
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


def per_channel(image, apply):
    return np.stack([apply(np.ascontiguousarray(image[..., c])) for c in range(image.shape[-1])],
                    axis=-1)


ENGINES = ["compiled", "portable"]


def engine(name):
    if name == "compiled" and not _cpu.BUILT:
        pytest.skip("the compiled extension is not built")
    return _engine.portable() if name == "portable" else warnings.catch_warnings()


# ---------------------------------------------------------------------------------------------
# the axes rule

@pytest.mark.parametrize("shape, axes, channel_axis, expected", [
    ((64, 48, 3), None, -1, ((0, 1), 2)),
    ((5, 64, 48, 3), None, -1, ((1, 2), 3)),
    ((5, 3, 64, 48), None, 1, ((2, 3), 1)),
    ((3, 64, 48), None, 0, ((1, 2), 0)),
    ((5, 64, 48, 3), (1, 2), 3, ((1, 2), 3)),
    ((5, 64, 48), None, None, ((1, 2), None)),
    ((6, 3, 3), None, None, ((1, 2), None)),  # a batch of 3x3 images: no colour warning
])
def test_image_axes_rule(shape, axes, channel_axis, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert image_axes(axes, channel_axis, shape) == expected


@pytest.mark.parametrize("function", [gh.equalize_hist, gh.clahe, gh.histogram,
                                      gh.cumulative_distribution, gh.equalize_adapthist])
def test_probable_colour_image_warns_with_the_fix(function):
    rgb = crop(IMAGES["chelsea"], 32)
    with pytest.warns(UserWarning, match=r"might be colour images.*`channel_axis=-1`"):
        function(rgb)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        function(rgb, axes=(-2, -1))  # the explicit planes: no warning
        function(rgb, channel_axis=-1)


def test_axes_error_suggests_the_call_that_works():
    with pytest.raises(ValueError, match=r"`channel_axis` 3 must not be one of the image `axes` "
                       r"\(2, 3\): leave `axes` out .* or pass `axes=\(1, 2\)`"):
        gh.equalize_hist(BATCH, axes=(-2, -1), channel_axis=-1)
    with pytest.raises(ValueError, match=r"`luminance=True` needs `channel_axis`.*channel_axis=-1"):
        gh.equalize_hist(BATCH, axes=(1, 2), luminance=True)
    with pytest.raises(ValueError, match=r"no two image axes besides `channel_axis` 1"):
        gh.equalize_hist(np.zeros((4, 3), np.uint8), channel_axis=1)


# ---------------------------------------------------------------------------------------------
# per channel: the channel axis is a batch axis

@pytest.mark.parametrize("name", IMAGES)
def test_equalize_per_channel_is_the_cv2_loop(xp, name):
    rgb = IMAGES[name]
    result = to_numpy(gh.equalize_hist(xp.asarray(rgb), channel_axis=-1))
    np.testing.assert_array_equal(result, per_channel(rgb, cv2.equalizeHist))


def test_batch_layouts_per_channel(xp):
    expected = np.stack([per_channel(image, cv2.equalizeHist) for image in BATCH])
    nhwc = to_numpy(gh.equalize_hist(xp.asarray(BATCH), channel_axis=-1))
    nchw = to_numpy(gh.equalize_hist(xp.asarray(np.moveaxis(BATCH, -1, 1).copy()), channel_axis=1))
    np.testing.assert_array_equal(nhwc, expected)
    np.testing.assert_array_equal(np.moveaxis(nchw, 1, -1), expected)


def test_clahe_per_channel_is_the_cv2_loop(xp):
    apply = cv2.createCLAHE(2.0, (8, 8)).apply
    expected = np.stack([per_channel(image, apply) for image in BATCH])
    result = to_numpy(gh.clahe(xp.asarray(BATCH), 2.0, (8, 8), channel_axis=-1))
    np.testing.assert_array_equal(result, expected)


def test_histogram_lut_and_cdf_per_channel():
    rgb = crop(IMAGES["coffee"])
    counts, centers = gh.histogram(rgb, channel_axis=-1)
    cdf, _ = gh.cumulative_distribution(rgb, channel_axis=-1)
    for c in range(3):
        want_counts, want_centers = exposure.histogram(rgb[..., c])
        width = want_counts.size
        np.testing.assert_array_equal(counts[c, :width], want_counts)
        np.testing.assert_array_equal(centers[c, :width], want_centers)
        want_cdf, _ = exposure.cumulative_distribution(rgb[..., c])
        np.testing.assert_allclose(cdf[c, :width], want_cdf, rtol=0, atol=1e-12)
    luts = np.stack([255 - np.arange(256), np.arange(256), np.arange(256) // 2]).astype(np.uint8)
    mapped = gh.apply_lut(rgb, luts, channel_axis=-1)
    np.testing.assert_array_equal(mapped, np.stack([cv2.LUT(rgb[..., c], luts[c])
                                                    for c in range(3)], axis=-1))


# ---------------------------------------------------------------------------------------------
# luminance: OpenCV's YCrCb round trip

@pytest.mark.parametrize("name", IMAGES)
@pytest.mark.parametrize("path", ENGINES)
def test_luminance_is_cv2_ycrcb_round_trip(name, path):
    rgb = IMAGES[name]
    with engine(path):
        result = gh.equalize_hist(rgb, channel_axis=-1, luminance=True)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, cv2_luma(rgb, cv2.equalizeHist))


@pytest.mark.parametrize("path", ENGINES)
def test_luminance_batch_channels_first(path):
    expected = np.stack([cv2_luma(image, cv2.equalizeHist) for image in BATCH])
    nchw = np.moveaxis(BATCH, -1, 1).copy()
    with engine(path):
        nhwc_result = gh.equalize_hist(BATCH, channel_axis=-1, luminance=True)
        nchw_result = gh.equalize_hist(nchw, channel_axis=1, luminance=True)
        into = np.empty_like(BATCH)
        returned = gh.equalize_hist(BATCH, channel_axis=-1, luminance=True, out=into)
    np.testing.assert_array_equal(nhwc_result, expected)
    np.testing.assert_array_equal(np.moveaxis(nchw_result, 1, -1), expected)
    assert returned is into
    np.testing.assert_array_equal(into, expected)


@pytest.mark.parametrize("path", ENGINES)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_clahe_luminance_is_cv2_ycrcb_round_trip(path, dtype):
    apply = cv2.createCLAHE(2.0, (4, 4)).apply
    batch = BATCH.astype(dtype) * (257 if dtype == np.uint16 else 1)
    with engine(path):
        result = gh.clahe(batch, 2.0, (4, 4), channel_axis=-1, luminance=True)
    assert result.dtype == dtype
    np.testing.assert_array_equal(result, np.stack([cv2_luma(image, apply) for image in batch]))


def test_luminance_on_the_emulated_gpu_backend(xp):
    result = to_numpy(gh.equalize_hist(xp.asarray(BATCH), channel_axis=-1, luminance=True))
    np.testing.assert_array_equal(result, np.stack([cv2_luma(i, cv2.equalizeHist) for i in BATCH]))


def test_compiled_and_portable_conversions_agree_on_uint16():
    if not _cpu.BUILT:
        pytest.skip("the compiled extension is not built")
    rgb = np.random.default_rng(5).integers(0, 65536, (4, 3, 33, 17), dtype=np.uint16)
    rgb[0, :, 0, :3] = [[0, 65535, 0], [65535, 0, 0], [65535, 65535, 0]]
    compiled = gh.equalize_hist(rgb, channel_axis=1, luminance=True, method="skimage")
    with _engine.portable():
        portable = gh.equalize_hist(rgb, channel_axis=1, luminance=True, method="skimage")
    np.testing.assert_array_equal(compiled, portable)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_luminance_stays_in_the_unit_interval(dtype):
    rgb = (BATCH / 255).astype(dtype)
    result = gh.equalize_hist(rgb, channel_axis=-1, luminance=True)
    assert result.dtype == (np.float64 if dtype == np.float64 else np.float32)
    assert float(result.min()) >= 0.0 and float(result.max()) <= 1.0
    assert float(result.max()) == 1.0 and float(result.min()) == 0.0  # clipped, not rescaled


# ---------------------------------------------------------------------------------------------
# scikit-image's colour conventions

@pytest.mark.parametrize("name", IMAGES)
def test_equalize_adapthist_rgb_is_skimage_hsv_value(name):
    rgb = crop(IMAGES[name], 160)
    result = gh.equalize_adapthist(rgb, channel_axis=-1)
    expected = exposure.equalize_adapthist(rgb)
    assert result.dtype == expected.dtype
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16])
def test_equalize_adapthist_rgb_batch_and_dtypes(dtype):
    batch = BATCH.astype(dtype) / 255 if dtype != np.uint16 else BATCH.astype(dtype) * 257
    result = gh.equalize_adapthist(batch, kernel_size=24, clip_limit=0.02, channel_axis=-1)
    for image, got in zip(batch, result):
        expected = exposure.equalize_adapthist(image, kernel_size=24, clip_limit=0.02)
        assert got.dtype == expected.dtype
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_equalize_adapthist_refuses_rgba():
    with pytest.raises(ValueError, match=r"4 channels along `channel_axis`: pass the RGB"):
        gh.equalize_adapthist(np.zeros((16, 16, 4), np.uint8), channel_axis=-1)


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_match_histograms_rgb_is_skimage(name):
    rgb, reference = crop(IMAGES[name]), IMAGES["coffee"]
    result = gh.match_histograms(rgb, reference, channel_axis=-1)
    expected = exposure.match_histograms(rgb, reference, channel_axis=-1)
    assert result.dtype == expected.dtype
    np.testing.assert_allclose(result.astype(np.float64), expected, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Dask: the same rule and results

@pytest.mark.parametrize("call", [
    lambda x: gh.equalize_hist(x, channel_axis=-1),
    lambda x: gh.equalize_hist(x, channel_axis=-1, luminance=True),
    lambda x: gh.clahe(x, 2.0, (4, 4), channel_axis=-1, luminance=True),
    lambda x: gh.equalize_adapthist(x, kernel_size=16, channel_axis=-1),
    lambda x: gh.match_histograms(x, BATCH[0], channel_axis=-1),
], ids=["per-channel", "luminance", "clahe-luminance", "adapthist-hsv", "match"])
def test_dask_colour_equals_in_memory(call):
    da = pytest.importorskip("dask.array")  # not on every machine (the lent GPU has none)
    lazy = da.from_array(BATCH, chunks=(1, 64, 64, 1))
    np.testing.assert_array_equal(call(lazy).compute(scheduler="sync"), call(BATCH))


@pytest.mark.parametrize("method", ["opencv", "pil"])
@pytest.mark.parametrize("shape", [(5, 37, 29, 3), (2, 1, 1, 3), (3, 7, 3, 3), (1, 64, 80, 3)])
def test_fused_luma_equalization_equals_the_portable_path(method, shape):
    """The compiled engine fuses count, tables and round trip for channels-last uint8 (its AVX2
    loop does 8 pixels per step, the rest in tiles): every size, bit for bit the portable path."""
    if not _cpu.BUILT:
        pytest.skip("the compiled extension is not built")
    batch = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    fused = gh.equalize_hist(batch, channel_axis=-1, luminance=True, method=method)
    with _engine.portable():
        portable = gh.equalize_hist(batch, channel_axis=-1, luminance=True, method=method)
    np.testing.assert_array_equal(fused, portable)
    if method == "opencv":
        np.testing.assert_array_equal(fused, np.stack([cv2_luma(i, cv2.equalizeHist) for i in batch]))
