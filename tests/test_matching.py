"""match_histograms against skimage.exposure.match_histograms, plane by plane (1e-6)."""

import numpy as np
import pytest
from conftest import assert_backend, to_numpy
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_histeq import match_histograms

skimage_data = pytest.importorskip("skimage.data")
from skimage import exposure, util  # noqa: E402


def gray_images():
    images = [skimage_data.camera(), skimage_data.moon(), skimage_data.coins()[:300, :300],
              skimage_data.page()[:150, :150]]
    images += [skimage_data.astronaut()[..., c] for c in range(3)]
    return np.stack([image[:150, :150] for image in images])


def skimage_loop(planes, references, **kwargs):
    return np.stack([exposure.match_histograms(p, r, **kwargs) for p, r in zip(planes, references)])


def assert_matches(result, expected):
    assert result.dtype == expected.dtype and result.shape == expected.shape
    np.testing.assert_allclose(to_numpy(result), expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(to_numpy(result), expected)  # in fact bit-exact


CONVERSIONS = {
    "uint8": lambda x: x,
    "uint16": util.img_as_uint,
    "float64": util.img_as_float,
    "float32": util.img_as_float32,
    "int16": lambda x: x.astype(np.int16) - 100,
}


@pytest.mark.parametrize("dtype", list(CONVERSIONS))
def test_shared_reference_matches_skimage(xp, dtype):
    planes = CONVERSIONS[dtype](gray_images())
    reference = CONVERSIONS[dtype](skimage_data.moon()[100:300, 50:400])
    result = match_histograms(xp.asarray(planes), xp.asarray(reference))
    assert_backend(result, xp)
    assert_matches(result, skimage_loop(planes, [reference] * len(planes)))


@pytest.mark.parametrize("dtype", list(CONVERSIONS))
def test_per_plane_references_match_skimage(xp, dtype):
    planes = CONVERSIONS[dtype](gray_images())
    references = CONVERSIONS[dtype](gray_images()[::-1, 10:90, 5:120])
    result = match_histograms(xp.asarray(planes), xp.asarray(references))
    assert_matches(result, skimage_loop(planes, references))


def test_mixed_dtypes_match_skimage(xp):
    rng = np.random.default_rng(0)
    cases = [(rng.random((3, 40, 30)), (rng.random((3, 20, 17)) ** 3)),
             (rng.random((3, 40, 30)).astype(np.float32), rng.integers(0, 255, (3, 9, 9)).astype(np.uint8)),
             (rng.integers(-100, 100, (3, 40, 30)).astype(np.int16),
              rng.integers(-5, 300, (3, 20, 20)).astype(np.int32)),
             (skimage_data.camera()[None, :64, :64], util.img_as_uint(skimage_data.moon())[None])]
    for planes, references in cases:
        result = match_histograms(xp.asarray(planes), xp.asarray(references))
        assert_matches(result, skimage_loop(planes, references))


def test_edge_cases_match_skimage(xp):
    rng = np.random.default_rng(1)
    planes = np.stack([np.full((20, 20), 7), np.full((20, 20), 0), rng.integers(0, 3, (20, 20)),
                       rng.integers(0, 256, (20, 20)), np.where(rng.random((20, 20)) < 0.5, 1, 250)]
                      ).astype(np.uint8)
    for reference in [np.full((5, 5), 9, np.uint8), np.array([[0, 255]], np.uint8),
                      skimage_data.camera()]:
        result = match_histograms(xp.asarray(planes), xp.asarray(reference))
        assert_matches(result, skimage_loop(planes, [reference] * len(planes)))
        assert not np.isnan(to_numpy(result)).any()
    constant = np.full((1, 1), 3, np.uint8)
    assert_matches(match_histograms(xp.asarray(constant), xp.asarray(constant)),
                   exposure.match_histograms(constant, constant))


@pytest.mark.parametrize("convert", [lambda x: x, util.img_as_float, util.img_as_float32])
def test_channel_axis_matches_skimage(xp, convert):
    images = convert(np.stack([skimage_data.astronaut()[:100, :120],
                               skimage_data.chelsea()[:100, :120]]))
    reference = convert(skimage_data.coffee()[:80, :90])
    result = match_histograms(xp.asarray(images), xp.asarray(reference), axes=(1, 2),
                              channel_axis=-1)
    expected = np.stack([exposure.match_histograms(i, reference, channel_axis=-1) for i in images])
    assert_matches(result, expected)
    # one reference per image, channels first
    chw = np.moveaxis(images, -1, 1)
    references = np.moveaxis(convert(np.stack([skimage_data.coffee()[:80, :90],
                                               skimage_data.rocket()[:80, :90]])), -1, 1)
    result = match_histograms(xp.asarray(chw), xp.asarray(references), channel_axis=1)
    expected = np.stack([exposure.match_histograms(i, r, channel_axis=0)
                         for i, r in zip(chw, references)])
    assert_matches(result, expected)


def test_broadcast_reference_batch_axes(xp):
    planes = gray_images()[:6].reshape(2, 3, 150, 150)
    references = gray_images()[None, 4:7, :50, :60]  # one reference per column, shared by rows
    result = to_numpy(match_histograms(xp.asarray(planes), xp.asarray(references)))
    for i in range(2):
        for j in range(3):
            np.testing.assert_array_equal(
                result[i, j], exposure.match_histograms(planes[i, j], references[0, j]))


def test_empty_batches(xp):
    result = match_histograms(xp.zeros((0, 5, 5), np.uint8), xp.zeros((3, 3), np.uint8))
    assert_backend(result, xp)
    assert result.shape == (0, 5, 5) and result.dtype == np.float64
    result = match_histograms(xp.zeros((2, 0, 5), np.float32), xp.ones((3, 3), np.float32))
    assert result.shape == (2, 0, 5) and result.dtype == np.float32


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.integers(1, 12), st.integers(1, 12), st.integers(1, 12),
       st.sampled_from(["uint8", "float64"]), st.integers(0, 2 ** 32 - 1))
def test_property_batch_equals_loop(n, h, w, size, dtype, seed):
    rng = np.random.default_rng(seed)
    if dtype == "uint8":
        planes = rng.integers(0, 6, (n, h, w)).astype(np.uint8)
        references = rng.integers(0, 9, (n, size, size + 1)).astype(np.uint8)
    else:
        planes = np.round(rng.random((n, h, w)), 1)
        references = rng.random((n, size, size + 1))
    result = match_histograms(planes, references)
    np.testing.assert_array_equal(result, skimage_loop(planes, references))
    permutation = rng.permutation(n)
    np.testing.assert_array_equal(match_histograms(planes[permutation], references[permutation]),
                                  result[permutation])
    # each plane's mapping is monotone
    for plane, matched in zip(planes, result):
        order = np.argsort(plane, axis=None, kind="stable")
        assert (np.diff(matched.ravel()[order]) >= 0).all()


BAD_INPUT = [
    (dict(reference=np.zeros((4, 4), np.float32)), TypeError,
     r"`reference` must be unsigned like `images` \(uint8\), got float32"),
    (dict(reference=np.zeros((4, 4), np.int8)), TypeError, r"`reference` must be unsigned"),
    (dict(reference=np.zeros((4, 4), bool)), TypeError, r"`reference` must have an integer or real"),
    (dict(reference=[[1, 2]]), TypeError, r"`reference` must be an array, got list"),
    (dict(reference=np.zeros((2, 2, 4, 4), np.uint8)), ValueError,
     r"`reference` must have 3 dimensions like `images`.* or 2 .*got shape \(2, 2, 4, 4\)"),
    (dict(reference=np.zeros((3, 4, 4), np.uint8)), ValueError,
     r"`reference` axis 0 must have size 1 or 2 .*got reference shape \(3, 4, 4\)"),
    (dict(reference=np.zeros((0, 4), np.uint8)), ValueError, r"`reference` must have pixels"),
    (dict(images=np.zeros((2, 4, 4, 3), np.uint8), reference=np.zeros((4, 4, 4), np.uint8),
          channel_axis=-1, axes=(1, 2)), ValueError,
     r"`reference` must have 3 channels along `channel_axis` 3 like `images`, got 4"),
    (dict(channel_axis=1, axes=(-2, -1)), ValueError,
     r"`channel_axis` 1 must not be one of the image `axes` \(1, 2\): leave `axes` out .* `axes=\(0, 2\)`"),
    (dict(images=np.full((1, 2, 2), np.nan), reference=np.zeros((2, 2))), ValueError,
     r"`images` must not contain NaN"),
    (dict(images=np.zeros((1, 2, 2)), reference=np.full((2, 2), np.inf)), ValueError,
     r"`reference` must not contain NaN or infinity"),
    (dict(images=np.zeros((2, 2), complex)), TypeError, r"`images` must have an integer or real"),
]


@pytest.mark.parametrize("arguments, error, message", BAD_INPUT)
def test_bad_input(arguments, error, message):
    arguments = {"images": np.zeros((2, 4, 4), np.uint8), "reference": np.zeros((4, 4), np.uint8),
                 **arguments}
    with pytest.raises(error, match=message):
        match_histograms(**arguments)


def test_reference_on_another_backend_is_rejected():
    class NotAnArray:
        __cuda_array_interface__ = {}
    with pytest.raises(TypeError, match=r"`reference` must be a numpy array like `images`"):
        match_histograms(np.zeros((4, 4), np.uint8), NotAnArray())
