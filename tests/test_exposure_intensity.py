"""gpu_histeq.exposure's pointwise functions against the installed skimage.exposure.

rescale_intensity, adjust_gamma, adjust_log, adjust_sigmoid and is_low_contrast: the same
result dtype and bits (or the same exception type, or the same warning) as scikit-image on the
same input, for every dtype, scikit-image's photographs and edge cases; on the ``xp`` fixture's
CuPy the result stays on the device and equals scikit-image's on the host.
"""

import warnings

import numpy as np
import pytest
from conftest import assert_backend, to_numpy
from test_exposure import launches

from gpu_histeq import exposure

pytest.importorskip("skimage")
from skimage import data, img_as_float, img_as_float32  # noqa: E402
from skimage import exposure as sk  # noqa: E402

DTYPES = [np.uint8, np.uint16, np.uint32, np.int8, np.int16, np.int32, np.int64,
          np.float16, np.float32, np.float64]


def outcome(module, name, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            try:
                return getattr(module, name)(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - the type is what is compared
                return type(error)


def assert_like_scikit_image(name, *args, **kwargs):
    ours, theirs = outcome(exposure, name, *args, **kwargs), outcome(sk, name, *args, **kwargs)
    if isinstance(theirs, type):
        assert ours is theirs, (name, args, kwargs, ours, theirs)
        return ours
    if isinstance(theirs, (bool, np.bool_)):
        assert type(ours) is type(theirs) and ours == theirs, (name, args, kwargs)
        return ours
    ours = to_numpy(ours)
    assert (ours.dtype, ours.shape) == (theirs.dtype, theirs.shape), (name, args, kwargs)
    np.testing.assert_array_equal(ours, theirs)
    return ours


def image_of(dtype, shape=(19, 23), seed=0, signed=True):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (rng.random(shape) * (2 if signed else 1) - (1 if signed else 0)).astype(dtype)
    info = np.iinfo(dtype)
    low = max(info.min, -1000) if signed else 0
    return rng.integers(low, min(info.max, 5000), shape, endpoint=True).astype(dtype)


RANGES = ["image", "dtype", "uint10", "uint12", "uint14", "uint8", "int16", "float", "bool",
          (0, 127), (-5.5, 300), (10, 10), (0.2, 0.4)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_rescale_intensity_every_dtype_and_range(dtype):
    image = image_of(dtype)
    for in_range in ("image", "dtype", (0, 100), (-0.5, 0.5), (3, 3)):
        for out_range in RANGES:
            assert_like_scikit_image("rescale_intensity", image, in_range, out_range)
    assert_like_scikit_image("rescale_intensity", image, out_range=np.float32)
    assert_like_scikit_image("rescale_intensity", image, out_range="nonsense")
    assert_like_scikit_image("rescale_intensity", image[:0])


def test_rescale_intensity_examples_and_nan_warning():
    image = np.array([51, 102, 153], dtype=np.uint8)
    assert exposure.rescale_intensity(image).tolist() == [0, 127, 255]
    assert exposure.rescale_intensity(1.0 * image, in_range=(0, 102)).tolist() == [0.5, 1.0, 1.0]
    with pytest.warns(UserWarning, match="One or more intensity levels are NaN"):
        result = exposure.rescale_intensity(np.array([0.1, np.nan, 0.5]))
    assert np.isnan(result).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_gamma_log_and_sigmoid_every_dtype(dtype):
    image = image_of(dtype, signed=False)
    for gamma, gain in ((1, 1), (2, 1), (0.5, 0.7), (0, 1), (2.2, 3)):
        assert_like_scikit_image("adjust_gamma", image, gamma, gain)
    for gain, inv in ((1, False), (0.8, True), (2, False)):
        assert_like_scikit_image("adjust_log", image, gain, inv)
    for cutoff, gain, inv in ((0.5, 10, False), (0.3, 5, True), (0.7, 20, False)):
        assert_like_scikit_image("adjust_sigmoid", image, cutoff, gain, inv)
    negative = image_of(dtype, signed=True)
    for name in ("adjust_gamma", "adjust_log", "adjust_sigmoid"):
        assert_like_scikit_image(name, negative)  # ValueError unless uint8 (a table, no check)
    assert_like_scikit_image("adjust_gamma", image, -1)


def test_uint8_gamma_uses_the_table_on_photographs():
    for photo in (data.camera(), data.astronaut(), data.moon()[0]):
        for gamma in (0.4, 1, 2.5):
            assert_like_scikit_image("adjust_gamma", photo, gamma)
            assert_like_scikit_image("adjust_gamma", photo, gamma, 1.3)  # saturates at 255
        assert_like_scikit_image("adjust_log", img_as_float(photo), 1.2)
        assert_like_scikit_image("adjust_sigmoid", img_as_float32(photo), 0.4, 8)


@pytest.mark.parametrize("dtype", DTYPES + [np.bool_])
def test_is_low_contrast_every_dtype(dtype):
    if dtype is np.bool_:
        for image in (np.zeros((4, 4), bool), np.eye(4, dtype=bool)):
            assert_like_scikit_image("is_low_contrast", image)
        return
    image = image_of(dtype, signed=False)
    for threshold, lower, upper in ((0.05, 1, 99), (0.5, 10, 90), (0.001, 0, 100)):
        assert_like_scikit_image("is_low_contrast", image, threshold, lower, upper)
    assert_like_scikit_image("is_low_contrast", np.full((5, 5), 3, dtype))


def test_is_low_contrast_photographs_rgb_rgba_and_sequences():
    rgb = data.astronaut()[::4, ::4]
    rgba = np.concatenate([rgb, rgb[..., :1]], axis=-1)
    dim = (rgb // 16 + 100).astype(np.uint8)
    for image in (data.camera(), rgb, rgba, dim, img_as_float(dim), img_as_float32(rgba)):
        assert_like_scikit_image("is_low_contrast", image)
        assert_like_scikit_image("is_low_contrast", image, 0.2)
    assert exposure.is_low_contrast(dim, 0.2) and not exposure.is_low_contrast(rgb, 0.2)
    ramp = np.linspace(0, 0.04, 100)
    assert_like_scikit_image("is_low_contrast", ramp.tolist())
    ramp[-1] = 1
    assert exposure.is_low_contrast(ramp)
    assert not exposure.is_low_contrast(ramp, upper_percentile=100)


def test_on_every_backend(xp):
    host = data.camera()[::4, ::4]
    image = xp.asarray(host)
    before = launches(xp)
    gamma = exposure.adjust_gamma(image, 0.6)
    if before is not None:
        assert launches(xp) > before, "the uint8 table was not applied by a CUDA kernel"
    assert_backend(gamma, xp)
    np.testing.assert_array_equal(to_numpy(gamma), sk.adjust_gamma(host, 0.6))
    floats = img_as_float(host)
    for name, args in (("rescale_intensity", ((0.2, 0.8), (0, 10))), ("adjust_gamma", (2,)),
                       ("adjust_log", (1.5, True)), ("adjust_sigmoid", (0.4, 7))):
        result = getattr(exposure, name)(xp.asarray(floats), *args)
        assert_backend(result, xp)
        expected = getattr(sk, name)(floats, *args)
        assert result.dtype == expected.dtype
        np.testing.assert_array_equal(to_numpy(result), expected)
    assert exposure.is_low_contrast(image) == sk.is_low_contrast(host)
    with pytest.raises(ValueError, match="non-negative values"):
        exposure.adjust_log(xp.asarray(floats - 0.5))
