"""gpu_histeq.exposure against the installed skimage.exposure: the histogram functions.

The promise: a scikit-image script runs unchanged but for the import and gets the same numbers.
So every comparison here is with the installed peer on the same input: signatures
(``inspect.signature``), results (dtype, shape and every bit; ``equal_nan`` where the peer
returns NaN), warnings, and the exception type of the same misuse. Inputs: scikit-image's sample
photographs, random images of every dtype, and edge cases (1-D, empty, constant, NaN, RGB/RGBA,
masks of every dtype). On the ``xp`` fixture's CuPy (a GPU, or the emulator) the results equal
scikit-image's on the host and the CUDA kernels are shown to run.
"""

import inspect
import warnings

import numpy as np
import pytest
from conftest import assert_backend, is_emulated, to_numpy
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_histeq import exposure

skimage = pytest.importorskip("skimage")
from skimage import data  # noqa: E402
from skimage import exposure as sk  # noqa: E402

INTEGERS = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]
FLOATS = [np.float16, np.float32, np.float64]


def assert_same(result, expected):
    """Same type of result, dtypes, shapes and bits (NaN where the peer has NaN), or the same
    exception type (as :func:`both` reports them)."""
    if isinstance(expected, type) or isinstance(result, type):
        assert result is expected, (result, expected)
        return
    if isinstance(expected, tuple):
        assert isinstance(result, tuple) and len(result) == len(expected)
        for part, expected_part in zip(result, expected):
            assert_same(part, expected_part)
        return
    result = to_numpy(result)
    assert result.dtype == expected.dtype, (result.dtype, expected.dtype)
    assert result.shape == expected.shape, (result.shape, expected.shape)
    np.testing.assert_array_equal(result, expected)


def both(name, *args, **kwargs):
    """``(ours, theirs)`` of one call: results, or the exception types raised."""
    outcomes = []
    for module in (exposure, sk):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                outcomes.append(getattr(module, name)(*args, **kwargs))
            except Exception as error:  # noqa: BLE001 - the type is what is compared
                outcomes.append(type(error))
    return outcomes


def random_image(dtype, shape=(23, 31), seed=0):
    """Random values of `dtype` in a range scikit-image handles (floats in [0, 1])."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.random(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) > 0.5
    low = -300 if dtype.kind == "i" and dtype.itemsize > 1 else (-100 if dtype.kind == "i" else 0)
    high = 200 if dtype.itemsize == 1 else 3000
    return rng.integers(low, high, shape).astype(dtype)


# ---------------------------------------------------------------------------------------------
# the API itself


def test_every_skimage_exposure_function_is_there_with_the_same_signature():
    missing = [name for name in sk.__all__ if not hasattr(exposure, name)]
    assert missing == []
    assert sorted(exposure.__all__) == sorted(sk.__all__)
    for name in sk.__all__:
        ours, theirs = getattr(exposure, name), getattr(sk, name)
        assert inspect.signature(ours) == inspect.signature(theirs), name


def test_import_gpu_histeq_gives_the_module():
    import gpu_histeq
    assert gpu_histeq.exposure is exposure


# ---------------------------------------------------------------------------------------------
# scikit-image's sample photographs

GRAY = {"camera": data.camera(), "moon": data.moon(), "coins": data.coins()}
COLOUR = {"astronaut": data.astronaut(), "coffee": data.coffee()}


@pytest.mark.parametrize("name", sorted(GRAY))
@pytest.mark.parametrize("convert", [np.asarray, skimage.img_as_float, skimage.img_as_float32,
                                     skimage.img_as_uint])
def test_photographs_equal_scikit_image(name, convert):
    image = convert(GRAY[name])
    assert_same(exposure.histogram(image), sk.histogram(image))
    assert_same(exposure.histogram(image, 100, "dtype", True),
                sk.histogram(image, 100, "dtype", True))
    assert_same(exposure.cumulative_distribution(image, 64), sk.cumulative_distribution(image, 64))
    assert_same(exposure.equalize_hist(image, 64), sk.equalize_hist(image, 64))
    mask = GRAY["moon"][:image.shape[0], :image.shape[1]] > 100
    if mask.shape == image.shape:
        assert_same(exposure.equalize_hist(image, mask=mask), sk.equalize_hist(image, mask=mask))
    reference = convert(GRAY["moon"])
    assert_same(exposure.match_histograms(image, reference), sk.match_histograms(image, reference))


@pytest.mark.parametrize("name", sorted(GRAY))
def test_adapthist_on_photographs_equals_scikit_image(name):
    image = GRAY[name][::2, ::2]
    assert_same(exposure.equalize_adapthist(image), sk.equalize_adapthist(image))
    assert_same(exposure.equalize_adapthist(image, 24, 0.03, 128),
                sk.equalize_adapthist(image, 24, 0.03, 128))


@pytest.mark.parametrize("name", sorted(COLOUR))
def test_colour_photographs_equal_scikit_image(name):
    rgb = COLOUR[name][::2, ::2]
    rgba = np.concatenate([rgb, rgb[..., :1]], axis=-1)
    for axis in (-1, 0, 2):
        assert_same(exposure.histogram(rgb, channel_axis=axis),
                    sk.histogram(rgb, channel_axis=axis))
    floats = skimage.img_as_float32(rgb)
    assert_same(exposure.histogram(floats, 50, channel_axis=-1),  # shared bins over the channels
                sk.histogram(floats, 50, channel_axis=-1))
    assert_same(exposure.histogram(floats, 50, "dtype", True, channel_axis=-1),
                sk.histogram(floats, 50, "dtype", True, channel_axis=-1))
    assert_same(exposure.equalize_adapthist(rgb), sk.equalize_adapthist(rgb))  # HSV value
    assert_same(exposure.equalize_adapthist(rgba), sk.equalize_adapthist(rgba))  # alpha dropped
    assert_same(exposure.equalize_adapthist(floats, clip_limit=0.02),
                sk.equalize_adapthist(floats, clip_limit=0.02))
    other = data.chelsea()
    assert_same(exposure.match_histograms(rgb, other, channel_axis=-1),
                sk.match_histograms(rgb, other, channel_axis=-1))
    assert_same(exposure.match_histograms(floats, other, channel_axis=-1),
                sk.match_histograms(floats, other, channel_axis=-1))
    with pytest.warns(UserWarning, match="might be a color image"):  # as scikit-image warns
        result = exposure.equalize_hist(rgb)
    with pytest.warns(UserWarning, match="might be a color image"):
        expected = sk.equalize_hist(rgb)
    assert_same(result, expected)  # one histogram over every channel


def test_shared_bins_differ_from_per_channel_bins():
    """The reason `channel_axis` must share bins: per channel they would be other numbers."""
    rgb = skimage.img_as_float(COLOUR["coffee"][::4, ::4])
    rgb[..., 2] *= 0.5  # a blue channel of half the range
    counts, centers = exposure.histogram(rgb, 16, channel_axis=-1)
    assert counts.shape == (3, 16) and centers.shape == (16,)
    assert centers[0] == (rgb.min() + (rgb.max() - rgb.min()) / 32)  # whole image's range
    alone = exposure.histogram(rgb[..., 2], 16)[0]
    assert not np.array_equal(counts[2], alone)
    assert counts.sum(axis=1).tolist() == [rgb[..., 0].size] * 3
    assert counts[2, 9:].sum() == 0  # the upper half of the shared bins is empty


# ---------------------------------------------------------------------------------------------
# every dtype, random and edge inputs


@pytest.mark.parametrize("dtype", INTEGERS + FLOATS + [np.bool_])
def test_every_dtype_equals_scikit_image(dtype):
    image = random_image(dtype)
    for shape in ((23, 31), (57,), (4, 5, 6)):
        image = random_image(dtype, shape)
        assert_same(*both("histogram", image))
        assert_same(*both("histogram", image, 37, normalize=True))
        assert_same(*both("cumulative_distribution", image, 37))
        assert_same(*both("equalize_hist", image, 37))
        if dtype == np.float16:  # scikit-image overflows float16 (65535) into a constant image
            assert_same(exposure.equalize_adapthist(image),
                        sk.equalize_adapthist(image.astype(np.float32)))
        else:
            assert_same(*both("equalize_adapthist", image))
        if dtype not in (np.bool_, np.int32, np.uint32, np.int64, np.uint64):
            assert_same(*both("histogram", image, 37, "dtype"))
        if dtype != np.bool_:
            other = random_image(dtype, (17, 13), seed=1).reshape((-1,) + (1,) * (image.ndim - 1))
            assert_same(*both("match_histograms", image, other))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("value", [0, 1, 7])
def test_constant_images(dtype, value):
    image = np.full((9, 11), value, dtype)
    for name in ("histogram", "cumulative_distribution", "equalize_hist", "equalize_adapthist"):
        assert_same(*both(name, image))
    assert_same(*both("match_histograms", image, random_image(dtype, (5, 5))))


def test_two_level_and_one_pixel_images():
    for image in (np.array([[3, 200]], np.uint8), np.array([[0.25]], np.float32),
                  np.array([5], np.int8)):
        for name in ("histogram", "cumulative_distribution", "equalize_hist"):
            assert_same(*both(name, image))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
def test_empty_images_fail_or_succeed_as_scikit_image(dtype):
    empty = np.zeros((0, 4), dtype)
    for name in ("histogram", "equalize_hist", "equalize_adapthist"):
        ours, theirs = both(name, empty)
        if isinstance(theirs, type):
            assert ours is theirs, name
        else:
            assert_same(ours, theirs)
    ours, theirs = both("cumulative_distribution", empty)
    assert ours is theirs if isinstance(theirs, type) else assert_same(ours, theirs) is None
    assert_same(*both("match_histograms", empty, np.ones((3, 3), dtype)))
    assert both("match_histograms", np.ones((3, 3), dtype), empty) == [ValueError, ValueError]


def test_nan_and_infinity_raise_value_error_as_scikit_image():
    for bad in (np.nan, np.inf):
        image = np.array([[0.1, bad], [0.3, 0.4]])
        for name in ("histogram", "cumulative_distribution", "equalize_hist"):
            assert both(name, image) == [ValueError, ValueError], (name, bad)
        # scikit-image's CLAHE lets NaN through its range check and returns a result made of it
        with pytest.raises(ValueError, match="NaN or infinity"):
            exposure.equalize_adapthist(image)
    # with an explicit range numpy.histogram drops NaN: so do we
    image = np.array([0.1, np.nan, 0.5, 2.0])
    assert_same(*both("histogram", image, 8, "dtype"))


MASK_DTYPES = [np.bool_, np.uint8, np.int8, np.int32, np.uint64, np.float16, np.float32, np.float64]


@pytest.mark.parametrize("mask_dtype", MASK_DTYPES)
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_masks_of_every_dtype(mask_dtype, dtype):
    image = random_image(dtype, (21, 19))
    rng = np.random.default_rng(3)
    mask = (rng.random(image.shape) > 0.6) * rng.integers(1, 3, image.shape)
    mask = mask.astype(mask_dtype)
    ours = exposure.equalize_hist(image, 50, mask=mask)
    assert_same(ours, sk.equalize_hist(image, 50, mask=mask))
    assert not np.array_equal(ours, exposure.equalize_hist(image, 50))  # the mask mattered
    listed = mask.tolist()  # array_like masks too
    assert_same(exposure.equalize_hist(image, 50, mask=listed),
                sk.equalize_hist(image, 50, mask=listed))


def test_mask_of_the_leading_axes_selects_whole_pixels():
    rgb = COLOUR["astronaut"][::4, ::4]
    mask = rgb[..., 0] > 120  # (H, W) for (H, W, 3): rgb[mask] is (n, 3), as in scikit-image
    assert_same(exposure.equalize_hist(rgb, mask=mask), sk.equalize_hist(rgb, mask=mask))


@pytest.mark.parametrize("call", [
    lambda m: m.histogram(np.arange(4.0), source_range="range"),
    lambda m: m.histogram(np.arange(4), source_range=(0, 1)),
    lambda m: m.histogram(np.arange(4.0), nbins=0),
    lambda m: m.histogram(np.arange(4.0), nbins=2.5),
    lambda m: m.equalize_hist(np.arange(4.0), nbins="10"),
    lambda m: m.cumulative_distribution(np.arange(4.0), nbins=None),
    lambda m: m.histogram(np.ones((3, 4)), channel_axis=2),
    lambda m: m.histogram(np.ones((3, 4)), channel_axis=-3),
    lambda m: m.equalize_hist(np.ones((3, 4)), mask=np.ones(5)),
    lambda m: m.equalize_hist(np.arange(4, dtype=np.uint8), mask=np.zeros(4)),
    lambda m: m.equalize_adapthist(np.ones((8, 8)), kernel_size=(3, 3, 3)),
    lambda m: m.equalize_adapthist(np.full((8, 8), 2.0)),
    lambda m: m.match_histograms(np.ones((3, 3)), np.ones(3)),
    lambda m: m.match_histograms(np.ones((3, 3, 3)), np.ones((3, 3, 2)), channel_axis=-1),
    lambda m: m.match_histograms(np.ones((3, 3), np.uint8), -np.ones((3, 3), np.int8)),
    lambda m: m.match_histograms(np.ones((3, 3), np.uint8), np.ones((3, 3))),
])
def test_misuse_raises_what_scikit_image_raises(call):
    outcomes = []
    for module in (exposure, sk):
        with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is compared below
            call(module)
        outcomes.append(caught.type)
    assert outcomes[0] is outcomes[1]


def test_our_messages_name_the_parameter():
    with pytest.raises(IndexError, match="`mask` of shape"):
        exposure.equalize_hist(np.ones((3, 4)), mask=np.ones(5))
    with pytest.raises(ValueError, match="`reference` must have no negative values"):
        exposure.match_histograms(np.ones((3, 3), np.uint8), -np.ones((3, 3), np.int8))
    with pytest.raises(np.exceptions.AxisError, match="`channel_axis`"):
        exposure.histogram(np.ones((3, 4)), channel_axis=2)


def test_scikit_image_leniencies_are_kept():
    image = random_image(np.float64, (40, 40))
    # float kernel sizes truncate, negative or NaN clip limits clip nothing
    assert_same(*both("equalize_adapthist", image, 9.7))
    assert_same(*both("equalize_adapthist", image, (8, 12.2), -1.0))
    assert_same(*both("equalize_adapthist", image, None, float("nan")))
    # an unsigned image with a non-negative signed reference
    assert_same(*both("match_histograms", random_image(np.uint8), random_image(np.int16, seed=2)))
    # numpy takes bool and numpy integers as bin counts; integers ignore nbins (invalid too)
    assert_same(*both("histogram", image, True))
    assert_same(*both("equalize_hist", image, np.int16(9)))
    assert_same(*both("histogram", random_image(np.uint8), 0))
    assert_same(*both("equalize_hist", random_image(np.int16), -3))


# ---------------------------------------------------------------------------------------------
# CuPy (a GPU or the emulator) and tensors


def launches(xp):
    """Kernel launches so far on the emulated CuPy (None elsewhere: a GPU runs them for real)."""
    return sum(xp.LAUNCHES.values()) if is_emulated(xp) else None


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_on_every_backend_the_numbers_are_scikit_images(xp, dtype):
    host = random_image(dtype, (40, 48))
    image = xp.asarray(host)
    before = launches(xp)
    equalized = exposure.equalize_hist(image, 64)
    if before is not None:
        assert launches(xp) > before, "no CUDA kernel ran for equalize_hist"
    assert_backend(equalized, xp)
    assert_same(equalized, sk.equalize_hist(host, 64))
    before = launches(xp)
    counts = exposure.histogram(image, 64)
    if before is not None:
        assert launches(xp) > before, "no CUDA kernel ran for histogram"
    assert_backend(counts[0], xp)
    assert_same(counts, sk.histogram(host, 64))
    rgb = xp.asarray(random_image(dtype, (20, 24, 3)))
    assert_same(exposure.histogram(rgb, 32, channel_axis=-1),
                sk.histogram(to_numpy(rgb), 32, channel_axis=-1))
    rgba = xp.asarray(random_image(dtype, (20, 24, 4), seed=2))
    adapted = exposure.equalize_adapthist(rgba)  # RGBA: HSV value of the RGB channels
    assert_backend(adapted, xp)
    assert_same(adapted, sk.equalize_adapthist(to_numpy(rgba)))
    assert_same(exposure.cumulative_distribution(image, 64), sk.cumulative_distribution(host, 64))
    mask = xp.asarray(host > host.mean())
    assert_same(exposure.equalize_hist(image, mask=mask),
                sk.equalize_hist(host, mask=to_numpy(mask)))
    reference = random_image(dtype, (30, 30), seed=5)
    matched = exposure.match_histograms(image, xp.asarray(reference))
    assert_backend(matched, xp)
    assert_same(matched, sk.match_histograms(host, reference))
    adapted = exposure.equalize_adapthist(image, 8)
    assert_backend(adapted, xp)
    assert_same(adapted, sk.equalize_adapthist(host, 8))


def test_cupy_mask_must_be_on_the_device(cp):
    image = cp.asarray(random_image(np.uint8))
    with pytest.raises(TypeError, match="`mask` must be a"):
        exposure.equalize_hist(image, mask=np.ones(image.shape, bool))


def test_torch_tensors_come_back_as_tensors():
    torch = pytest.importorskip("torch")
    host = random_image(np.float32, (30, 30))
    image = torch.from_numpy(host)
    result = exposure.equalize_hist(image)
    assert isinstance(result, torch.Tensor)
    assert_same(result.numpy(), sk.equalize_hist(host))
    counts, centers = exposure.histogram(image, 20)
    assert isinstance(counts, torch.Tensor)
    assert_same((counts.numpy(), centers.numpy()), sk.histogram(host, 20))
    assert exposure.is_low_contrast(image) == sk.is_low_contrast(host)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
def test_dask_arrays_stay_lazy_and_equal_scikit_image(dtype):
    da = pytest.importorskip("dask.array")
    host = random_image(dtype, (60, 70))
    image = da.from_array(host, chunks=(25, 30))  # the image split over chunks
    mask = host > host.mean()

    def check(result, expected):
        parts = result if isinstance(result, tuple) else (result,)
        assert all(isinstance(part, da.Array) for part in parts)
        assert_same(tuple(p.compute() for p in parts) if isinstance(result, tuple)
                    else result.compute(), expected)

    check(exposure.histogram(image, 40), sk.histogram(host, 40))
    check(exposure.cumulative_distribution(image, 40), sk.cumulative_distribution(host, 40))
    check(exposure.equalize_hist(image, 40), sk.equalize_hist(host, 40))
    check(exposure.equalize_hist(image, mask=da.from_array(mask, chunks=20)),
          sk.equalize_hist(host, mask=mask))
    check(exposure.equalize_adapthist(image, 10), sk.equalize_adapthist(host, 10))
    reference = random_image(dtype, (20, 20), seed=4)
    check(exposure.match_histograms(image, reference), sk.match_histograms(host, reference))
    check(exposure.rescale_intensity(image, out_range=(0, 3)),
          sk.rescale_intensity(host, out_range=(0, 3)))
    assert exposure.is_low_contrast(image) == sk.is_low_contrast(host)
    with pytest.raises(TypeError, match="not available for Dask arrays"):
        exposure.histogram(image, source_range="dtype")


def test_dask_colour_and_one_axis_images_equal_scikit_image():
    """One Dask image goes to the batched functions as it is (no batch axis added for Dask):
    colour images with `channel_axis`, RGB CLAHE and a 1-D image, split over chunks."""
    da = pytest.importorskip("dask.array")
    rgb, other = random_image(np.float64, (40, 30, 3)), random_image(np.float64, (20, 25, 3), 3)
    lazy = da.from_array(rgb, chunks=(20, 15, 2))
    line = random_image(np.uint8, (57,), 4)
    for result, expected in [
            (exposure.match_histograms(lazy, other, channel_axis=-1),
             sk.match_histograms(rgb, other, channel_axis=-1)),
            (exposure.equalize_adapthist(lazy, 10), sk.equalize_adapthist(rgb, 10)),
            (exposure.match_histograms(da.from_array(line, chunks=20), line[::-1].copy()),
             sk.match_histograms(line, line[::-1].copy()))]:
        assert isinstance(result, da.Array) and result.dtype == expected.dtype
        assert_same(result.compute(), expected)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=3),
       dtype=st.sampled_from([np.uint8, np.int8, np.uint16, np.int32, np.float32, np.float64]),
       nbins=st.integers(1, 300), seed=st.integers(0, 2 ** 16))
def test_property_random_images_equal_scikit_image(shape, dtype, nbins, seed):
    image = random_image(dtype, tuple(shape), seed)
    if np.dtype(dtype).kind == "f":  # a narrow range too: fewer distinct values than bins
        image = (image * np.float32(0.01) + np.float32(0.5)).astype(dtype) if seed % 2 else image
    for name in ("histogram", "cumulative_distribution", "equalize_hist"):
        assert_same(*both(name, image, nbins))
    reference = random_image(dtype, (5, 4), seed + 1).reshape((-1,) + (1,) * (image.ndim - 1))
    assert_same(*both("match_histograms", image, reference))


def test_layouts_byte_order_and_read_only_inputs_are_untouched():
    base = skimage.img_as_float32(GRAY["coins"])
    views = {"fortran": np.asfortranarray(base), "strided": base[::2, ::3],
             "big-endian": base.astype(">f4"), "transposed": base.T}
    for name, image in views.items():
        image.setflags(write=False)
        before = image.copy()
        for call in ("histogram", "cumulative_distribution", "equalize_hist", "equalize_adapthist"):
            assert_same(getattr(exposure, call)(image), getattr(sk, call)(image))
        assert_same(exposure.match_histograms(image, base), sk.match_histograms(image, base))
        assert_same(exposure.rescale_intensity(image, (0.2, 0.6)),
                    sk.rescale_intensity(image, (0.2, 0.6)))
        np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_dtype_range_uses_numpys_float64_edges(xp, dtype):
    """numpy.histogram's edges over an explicit range are float64 linspace rounded to the
    image's dtype: for 3 bins they differ from edges computed in float32/float16 by an ulp, so
    values on and beside each edge must fall in numpy's bins on every engine."""
    edges = np.linspace(-1, 1, 4, dtype=dtype)
    in_dtype = np.arange(4, dtype=dtype) * (dtype(2) / dtype(3)) + dtype(-1)
    assert not np.array_equal(edges, in_dtype)  # the case this test is about
    probes = np.concatenate([edges, in_dtype])
    image = np.concatenate([probes, np.nextafter(probes, dtype(-2)), np.nextafter(probes, dtype(2))])
    ours = exposure.histogram(xp.asarray(image), 3, "dtype")
    assert_backend(ours[0], xp)
    assert_same(ours, sk.histogram(image, 3, "dtype"))


def test_where_scikit_image_returns_no_number_we_raise():
    """The documented differences: scikit-image returns NaN (or a constant image) here."""
    image = random_image(np.float64, (12, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isnan(sk.equalize_hist(image, mask=np.zeros(image.shape))).all()
    with pytest.raises(ValueError, match="`mask` selects no pixel"):
        exposure.equalize_hist(image, mask=np.zeros(image.shape))
    assert sk.equalize_adapthist(image, kernel_size=20).shape == image.shape
    with pytest.raises(ValueError, match="`kernel_size`"):
        exposure.equalize_adapthist(image, kernel_size=20)
    wide = np.array([[0, 1 << 30]], np.int32)
    with pytest.raises(ValueError, match="2\\*\\*24|levels"):
        exposure.equalize_hist(wide)
