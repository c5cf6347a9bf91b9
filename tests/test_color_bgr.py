"""OpenCV's channel order (issue 22): ``luminance="bgr"`` on what ``cv2.imread`` gives is
bit-exact with OpenCV's ``COLOR_BGR2YCrCb -> equalizeHist / CLAHE of Y -> COLOR_YCrCb2BGR``,
on the compiled (fused and unfused) and portable paths, the emulated GPU, lists and Dask; the
errors say what to pass."""

import contextlib

import cv2
import numpy as np
import pytest
from skimage import data

import gpu_histeq as gh
from gpu_histeq import _cpu, _engine

#: Three RGB photographs cropped to one size and reversed into OpenCV's B, G, R order: an NHWC
#: batch as a loop of cv2.imread calls gives it.
BGR = np.stack([np.ascontiguousarray(image[:96, :128, ::-1])
                for image in (data.astronaut(), data.chelsea(), data.coffee())])


def cv2_bgr_luma(image, apply):
    """OpenCV's luma round trip of one BGR image."""
    ycc = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)
    ycc[..., 0] = apply(np.ascontiguousarray(ycc[..., 0]))
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)


def engine(name):
    if name == "compiled" and not _cpu.BUILT:
        pytest.skip("the compiled extension is not built")
    return _engine.portable() if name == "portable" else contextlib.nullcontext()


def to_numpy(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)


@pytest.mark.parametrize("path", ["compiled", "portable"])
def test_bgr_luminance_is_cv2_bgr_ycrcb_round_trip(path):
    expected = np.stack([cv2_bgr_luma(image, cv2.equalizeHist) for image in BGR])
    nchw = np.moveaxis(BGR, -1, 1).copy()
    with engine(path):
        nhwc = gh.equalize_hist(BGR, channel_axis=-1, luminance="bgr")  # the fused kernel
        channels_first = gh.equalize_hist(nchw, channel_axis=1, luminance="bgr")
        into = np.empty_like(BGR)
        returned = gh.equalize_hist(BGR, channel_axis=-1, luminance="bgr", out=into)
        one = gh.equalize_hist(BGR[1], channel_axis=-1, luminance="bgr")
    assert nhwc.dtype == np.uint8 and nhwc.flags.c_contiguous
    np.testing.assert_array_equal(nhwc, expected)
    np.testing.assert_array_equal(np.moveaxis(channels_first, 1, -1), expected)
    assert returned is into
    np.testing.assert_array_equal(into, expected)
    np.testing.assert_array_equal(one, expected[1])
    # the RGB reading of the same pixels is OpenCV's other conversion, not this one
    assert np.abs(gh.equalize_hist(BGR, channel_axis=-1, luminance=True).astype(int)
                  - expected).max() > 10
    np.testing.assert_array_equal(gh.equalize_hist(BGR, channel_axis=-1, luminance="rgb"),
                                  gh.equalize_hist(BGR, channel_axis=-1, luminance=True))


@pytest.mark.parametrize("path", ["compiled", "portable"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_bgr_clahe_luminance_is_cv2_round_trip(path, dtype):
    apply = cv2.createCLAHE(2.0, (4, 4)).apply
    batch = BGR.astype(dtype) * (257 if dtype == np.uint16 else 1)
    with engine(path):
        result = gh.clahe(batch, 2.0, (4, 4), channel_axis=-1, luminance="bgr")
    assert result.dtype == dtype
    np.testing.assert_array_equal(result, np.stack([cv2_bgr_luma(i, apply) for i in batch]))


def test_bgr_uint16_and_float_are_cv2_conversions():
    wide = BGR.astype(np.uint16) * 257 + 3
    result = gh.equalize_hist(wide, channel_axis=-1, luminance="bgr", method="skimage")
    ycc = np.stack([cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb) for image in wide])
    luma = gh.equalize_hist(ycc[..., 0].copy(), method="skimage")
    ycc[..., 0] = np.rint(luma * 65535).astype(np.uint16)
    np.testing.assert_array_equal(
        result, np.stack([cv2.cvtColor(image, cv2.COLOR_YCrCb2BGR) for image in ycc]))
    floats = (BGR / 255).astype(np.float32)
    reversed_rgb = gh.equalize_hist(np.ascontiguousarray(floats[..., ::-1]), channel_axis=-1,
                                    luminance=True)
    np.testing.assert_array_equal(gh.equalize_hist(floats, channel_axis=-1, luminance="bgr"),
                                  reversed_rgb[..., ::-1])


def test_bgr_on_the_emulated_gpu_backend_lists_and_dask(xp):
    expected = np.stack([cv2_bgr_luma(image, cv2.equalizeHist) for image in BGR])
    result = gh.equalize_hist(xp.asarray(BGR), channel_axis=-1, luminance="bgr")
    np.testing.assert_array_equal(to_numpy(result), expected)
    sizes = [xp.asarray(BGR[0]), xp.asarray(BGR[1, :50, :70])]
    listed = gh.equalize_hist(sizes, channel_axis=-1, luminance="bgr")
    np.testing.assert_array_equal(to_numpy(listed[0]), expected[0])
    np.testing.assert_array_equal(to_numpy(listed[1]),
                                  cv2_bgr_luma(BGR[1, :50, :70].copy(), cv2.equalizeHist))


def test_bgr_dask_equals_in_memory():
    da = pytest.importorskip("dask.array")
    lazy = gh.equalize_hist(da.from_array(BGR, chunks=(1, 96, 128, 3)), channel_axis=-1,
                            luminance="bgr")
    np.testing.assert_array_equal(lazy.compute(),
                                  gh.equalize_hist(BGR, channel_axis=-1, luminance="bgr"))
    lazy = gh.clahe(da.from_array(BGR, chunks=(1, 96, 128, 3)), 2.0, (4, 4), channel_axis=-1,
                    luminance="bgr")
    np.testing.assert_array_equal(lazy.compute(), gh.clahe(BGR, 2.0, (4, 4), channel_axis=-1,
                                                           luminance="bgr"))


@pytest.mark.parametrize("luminance, error, match", [
    ("brg", ValueError, r"`luminance` must be True \(RGB\), 'rgb' or 'bgr' \(OpenCV's order"),
    ("BGR", ValueError, r"'bgr'"),
    (1, TypeError, r"`luminance` must be a bool or the channel order 'rgb' or 'bgr'"),
    (None, TypeError, r"`luminance` must be a bool"),
])
def test_bad_luminance_names_the_orders(luminance, error, match):
    for call in (lambda: gh.equalize_hist(BGR, channel_axis=-1, luminance=luminance),
                 lambda: gh.clahe(BGR, channel_axis=-1, luminance=luminance),
                 lambda: gh.equalize_hist(list(BGR), channel_axis=-1, luminance=luminance)):
        with pytest.raises(error, match=match):
            call()


def test_luminance_errors_say_how_to_pass_bgr():
    with pytest.raises(ValueError, match=r"needs `channel_axis`.*pass `luminance='bgr'`"):
        gh.equalize_hist(BGR, axes=(1, 2), luminance=True)
    bgra = np.concatenate([BGR, BGR[..., :1]], axis=-1)
    with pytest.raises(ValueError, match=r"got 4 \(for OpenCV's BGR images pass "
                                         r"`luminance='bgr'`; BGRA: drop the alpha channel"):
        gh.clahe(bgra, channel_axis=-1, luminance="bgr")
