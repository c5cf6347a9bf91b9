"""clahe against OpenCV's CLAHE and equalize_adapthist against scikit-image's, plane by plane."""

import warnings

import numpy as np
import pytest
from conftest import assert_backend, to_numpy
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_histeq import _cpu, _engine, clahe, equalize_adapthist

cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")
from skimage import color, exposure, util  # noqa: E402


def real_gray_images(shape):
    """Real uint8 grayscale images from scikit-image, cropped to one shape (batch, H, W)."""
    images = [skimage_data.camera(), skimage_data.moon(), skimage_data.brick(),
              skimage_data.coins()]
    images += [skimage_data.astronaut()[..., c] for c in range(3)]
    return np.stack([image[: shape[0], : shape[1]] for image in images])


def edge_case_images(rng, shape=(37, 53)):
    """Constant, two-level, narrow, full-range and ramp planes."""
    h, w = shape
    planes = [np.full(shape, 0), np.full(shape, 255), np.full(shape, 77),
              np.where(rng.random(shape) < 0.5, 10, 200), rng.integers(100, 104, shape),
              rng.integers(0, 256, shape), np.tile(np.arange(w) * 255 // max(w - 1, 1), (h, 1))]
    return np.stack(planes).astype(np.uint8)


def opencv_clahe(planes, clip_limit, grid):
    operator = cv2.createCLAHE(clip_limit, grid)
    return np.stack([operator.apply(np.ascontiguousarray(p)) for p in planes])


def assert_within_one_level(result, expected):
    difference = np.abs(to_numpy(result).astype(np.int64) - expected.astype(np.int64))
    assert difference.max(initial=0) <= 1, f"up to {difference.max()} levels from OpenCV"


# ------------------------------------------------------------------------------------------------
# clahe vs cv2.createCLAHE(clip_limit, tile_grid).apply: within 1 level (in practice identical)

@pytest.mark.parametrize("shape", [(256, 256), (301, 277), (96, 100), (100, 96), (37, 53)])
@pytest.mark.parametrize("clip_limit, grid", [(40.0, (8, 8)), (2.0, (8, 8)), (0.0, (8, 8)),
                                              (3.0, (7, 5)), (1.0, (32, 8)), (4.0, (8, 64)),
                                              (2.0, (1, 1))])
def test_clahe_matches_opencv_uint8(xp, shape, clip_limit, grid):
    rng = np.random.default_rng(0)
    planes = np.concatenate([real_gray_images(shape), edge_case_images(rng, shape)])
    result = clahe(xp.asarray(planes), clip_limit, grid)
    assert_backend(result, xp)
    assert result.dtype == np.uint8 and result.shape == planes.shape
    expected = opencv_clahe(planes, clip_limit, grid)
    assert_within_one_level(result, expected)
    np.testing.assert_array_equal(to_numpy(result), expected)  # in fact bit-exact


@pytest.mark.parametrize("clip_limit, grid", [(40.0, (8, 8)), (2.0, (3, 5)), (0.0, (4, 4)),
                                              (1000.0, (8, 8))])
def test_clahe_matches_opencv_uint16(xp, clip_limit, grid):
    rng = np.random.default_rng(1)
    planes = np.stack([(rng.random((67, 81)) ** 2 * 65535).astype(np.uint16),
                       util.img_as_uint(skimage_data.camera()[:67, :81]),
                       np.full((67, 81), 4000, np.uint16)])
    result = clahe(xp.asarray(planes), clip_limit, grid)
    assert result.dtype == np.uint16
    expected = opencv_clahe(planes, clip_limit, grid)
    assert_within_one_level(result, expected)
    np.testing.assert_array_equal(to_numpy(result), expected)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (3, 3), (2, 17), (8, 8), (9, 9)])
def test_clahe_tiny_images_match_opencv(xp, shape):
    rng = np.random.default_rng(2)
    planes = rng.integers(0, 256, (3,) + shape, dtype=np.uint8)
    expected = opencv_clahe(planes, 2.0, (8, 8))
    np.testing.assert_array_equal(to_numpy(clahe(xp.asarray(planes), 2.0, (8, 8))), expected)


def test_clahe_batch_axes_equal_plane_loop(xp):
    rng = np.random.default_rng(3)
    nhwc = rng.integers(0, 256, (2, 45, 61, 3), dtype=np.uint8)
    result = to_numpy(clahe(xp.asarray(nhwc), 3.0, (4, 6), axes=(1, 2)))
    for n in range(2):
        for c in range(3):
            expected = cv2.createCLAHE(3.0, (4, 6)).apply(np.ascontiguousarray(nhwc[n, :, :, c]))
            np.testing.assert_array_equal(result[n, :, :, c], expected)


def test_clahe_constant_planes_stay_constant(xp):
    planes = np.stack([np.full((40, 40), v, np.uint8) for v in (0, 1, 128, 255)])
    result = to_numpy(clahe(xp.asarray(planes), 2.0, (8, 8)))
    assert all(np.unique(plane).size == 1 for plane in result)
    np.testing.assert_array_equal(result, opencv_clahe(planes, 2.0, (8, 8)))


def test_clahe_empty(xp):
    for shape in [(0, 16, 16), (3, 0, 16), (2, 5, 0)]:
        result = clahe(xp.zeros(shape, np.uint8))
        assert_backend(result, xp)
        assert result.shape == shape and result.dtype == np.uint8


def test_clahe_does_not_mutate(xp):
    images = xp.asarray(real_gray_images((64, 64)))
    before = images.copy()
    clahe(images)
    assert bool((images == before).all())


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 5), st.integers(1, 40), st.integers(1, 40), st.integers(1, 9),
       st.integers(1, 9), st.floats(0, 50), st.integers(0, 2 ** 32 - 1))
def test_clahe_property_batch_equals_opencv_loop(n, h, w, tx, ty, clip_limit, seed):
    planes = np.random.default_rng(seed).integers(0, 256, (n, h, w), dtype=np.uint8)
    result = clahe(planes, clip_limit, (tx, ty))
    np.testing.assert_array_equal(result, opencv_clahe(planes, clip_limit, (tx, ty)))
    permutation = np.random.default_rng(seed).permutation(n)
    np.testing.assert_array_equal(clahe(planes[permutation], clip_limit, (tx, ty)),
                                  result[permutation])


# ------------------------------------------------------------------------------------------------
# clahe: the compiled CPU kernels (_clahe.c) against the portable NumPy path, bit for bit

needs_compiled = pytest.mark.skipif(not _cpu.BUILT,
                                    reason="the compiled extension gpu_histeq._cpu_kernels is not built")


def portable_clahe(planes, clip_limit, grid, **kwargs):
    """clahe through the portable path (the one CuPy uses): the compiled path switched off."""
    with _engine.portable():
        return clahe(planes, clip_limit, grid, **kwargs)


def clahe_planes(rng, dtype, shape, count=5):
    """Random, narrow-range, two-level, constant and skewed planes of `dtype`."""
    top = np.iinfo(dtype).max
    planes = [rng.integers(0, top + 1, shape), rng.integers(top // 3, top // 3 + 5, shape),
              np.where(rng.random(shape) < 0.3, 1, top - 2), np.full(shape, top // 2),
              (rng.random(shape) ** 3 * top).astype(np.int64)]
    return np.stack(planes[:count]).astype(dtype)


# clip limits: none, tiny (limit 1), usual, huge (nothing clipped); grids: square, odd, 1x1, and
# (uint8 only: 65536 bins per tile make the portable uint16 run slow) many tiles
CLIPS_AND_GRIDS = [(40.0, (8, 8)), (2.0, (8, 8)), (0.0, (8, 8)), (0.01, (3, 5)), (1e6, (1, 1)),
                   (4.0, (2, 9))]
CLAHE_CASES = ([(np.uint8, c, g) for c, g in CLIPS_AND_GRIDS + [(1.0, (32, 8)), (3.0, (8, 64))]]
               + [(np.uint16, c, g) for c, g in CLIPS_AND_GRIDS])


@needs_compiled
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (5, 5), (37, 53), (96, 96), (64, 40),
                                   (101, 33)])
@pytest.mark.parametrize("dtype, clip_limit, grid", CLAHE_CASES)
def test_clahe_compiled_equals_portable(shape, dtype, clip_limit, grid):
    planes = clahe_planes(np.random.default_rng(8), dtype, shape)
    compiled = clahe(planes, clip_limit, grid)
    expected = portable_clahe(planes, clip_limit, grid)
    assert compiled.dtype == expected.dtype == dtype
    np.testing.assert_array_equal(compiled, expected)


@needs_compiled
def test_clahe_compiled_equals_portable_many_blocks():
    # 1800 face-sized crops: many blocks on every thread, batch axes on both sides of the image
    rng = np.random.default_rng(7)
    ys, xs = rng.integers(0, 512 - 96, (2, 1800))
    camera = skimage_data.camera()
    faces = np.stack([camera[y:y + 96, x:x + 96] for y, x in zip(ys, xs)])
    faces = faces.reshape(600, 3, 96, 96).transpose(0, 2, 3, 1)
    for clip_limit in (40.0, 2.0):
        compiled = clahe(faces, clip_limit, (8, 8), axes=(1, 2))
        np.testing.assert_array_equal(compiled,
                                      portable_clahe(faces, clip_limit, (8, 8), axes=(1, 2)))
        np.testing.assert_array_equal(compiled[5, :, :, 1],
                                      cv2.createCLAHE(clip_limit, (8, 8)).apply(faces[5, :, :, 1]))


@needs_compiled
@settings(max_examples=40, deadline=None)
@given(st.sampled_from([np.uint8, np.uint16]), st.integers(1, 4), st.integers(1, 50),
       st.integers(1, 50), st.integers(1, 9), st.integers(1, 9), st.floats(0, 100),
       st.integers(0, 2 ** 32 - 1))
def test_clahe_property_compiled_equals_portable(dtype, n, h, w, tx, ty, clip_limit, seed):
    planes = clahe_planes(np.random.default_rng(seed), dtype, (h, w), n)
    np.testing.assert_array_equal(clahe(planes, clip_limit, (tx, ty)),
                                  portable_clahe(planes, clip_limit, (tx, ty)))


# ------------------------------------------------------------------------------------------------
# equalize_adapthist vs skimage.exposure.equalize_adapthist: 1e-5 (in practice identical)

CONVERSIONS = {
    "uint8": lambda x: x,
    "uint16": util.img_as_uint,
    "float64": util.img_as_float,
    "float32": util.img_as_float32,
    "int16": lambda x: (x.astype(np.int16) - 100) * 128,
    "int8": lambda x: (x.astype(np.int16) - 128).astype(np.int8),
}


@pytest.mark.parametrize("dtype", list(CONVERSIONS))
@pytest.mark.parametrize("kwargs", [{}, {"clip_limit": 0.0}, {"clip_limit": 1.0},
                                    {"kernel_size": (57, 51), "clip_limit": 0.05, "nbins": 128},
                                    {"kernel_size": 13, "clip_limit": 0.002, "nbins": 64}])
def test_adapthist_matches_skimage(xp, dtype, kwargs):
    planes = CONVERSIONS[dtype](real_gray_images((131, 147))[::2])
    result = equalize_adapthist(xp.asarray(planes), **kwargs)
    assert_backend(result, xp)
    expected = np.stack([exposure.equalize_adapthist(p, **kwargs) for p in planes])
    assert result.dtype == expected.dtype and result.shape == expected.shape
    np.testing.assert_allclose(to_numpy(result), expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(to_numpy(result), expected)  # in fact bit-exact


def test_adapthist_full_size_and_edge_cases_match_skimage(xp):
    rng = np.random.default_rng(4)
    planes = np.concatenate([np.stack([skimage_data.camera(), skimage_data.moon(), skimage_data.brick()]),
                             edge_case_images(rng, (512, 512))[[0, 3, 5, 6]]])
    result = to_numpy(equalize_adapthist(xp.asarray(planes), clip_limit=0.03))
    expected = np.stack([exposure.equalize_adapthist(p, clip_limit=0.03) for p in planes])
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-5)
    assert not np.isnan(result).any()


def test_adapthist_volumes_match_skimage(xp):
    volumes = np.random.default_rng(5).random((2, 20, 25, 30))
    result = to_numpy(equalize_adapthist(xp.asarray(volumes), kernel_size=(5, 7, 6),
                                         axes=(1, 2, 3)))
    for volume, plane in zip(volumes, result):
        expected = exposure.equalize_adapthist(volume, kernel_size=(5, 7, 6))
        np.testing.assert_allclose(plane, expected, rtol=0, atol=1e-5)


def test_adapthist_batch_axes_equal_plane_loop(xp):
    stack = np.random.default_rng(6).random((31, 3, 2, 44))
    result = to_numpy(equalize_adapthist(xp.asarray(stack), kernel_size=(6, 9), axes=(0, 3)))
    for i in range(3):
        for j in range(2):
            expected = exposure.equalize_adapthist(stack[:, i, j, :], kernel_size=(6, 9))
            np.testing.assert_allclose(result[:, i, j, :], expected, rtol=0, atol=1e-5)


def test_adapthist_constant_planes(xp):
    # scikit-image's test_adapthist_constant, batched
    planes = np.stack([np.full((8, 8), 2, np.uint16), np.full((8, 8), 0, np.uint16)])
    result = to_numpy(equalize_adapthist(xp.asarray(planes), 3))
    assert all(plane.min() == plane.max() for plane in result) and not np.isnan(result).any()
    floats = np.full((2, 8, 8), 0.1)
    result = to_numpy(equalize_adapthist(xp.asarray(floats), 3))
    assert all(plane.min() == plane.max() for plane in result) and not np.isnan(result).any()
    np.testing.assert_array_equal(result[0], exposure.equalize_adapthist(floats[0], 3))


def test_adapthist_empty(xp):
    for shape, dtype in [((0, 16, 16), np.uint8), ((3, 0, 16), np.float32)]:
        result = equalize_adapthist(xp.zeros(shape, dtype))
        assert_backend(result, xp)
        assert result.shape == shape and result.dtype == (np.float32 if dtype == np.float32
                                                          else np.float64)


# scikit-image's published figures (skimage/exposure/tests/test_exposure.py), ported: its RGB
# inputs go through the HSV value channel, which is done here around the batched call.

def peak_snr(img1, img2):
    if img1.ndim == 3:
        img1, img2 = color.rgb2gray(img1.copy()), color.rgb2gray(img2.copy())
    img1, img2 = util.img_as_float(img1), util.img_as_float(img2)
    mse = 1.0 / img1.size * np.square(img1 - img2).sum()
    _, max_ = util.dtype.dtype_range[img1.dtype.type]
    return 20 * np.log(max_ / mse)


def norm_brightness_err(img1, img2):
    if img1.ndim == 3:
        img1, img2 = color.rgb2gray(img1), color.rgb2gray(img2)
    ambe = np.abs(img1.mean() - img2.mean())
    return ambe / util.dtype.dtype_range[img1.dtype.type][1]


def adapthist_rgb(xp, rgb, **kwargs):
    """scikit-image's RGB handling: equalize the HSV value, keep hue and saturation."""
    hsv = color.rgb2hsv(rgb)
    hsv[..., 2] = to_numpy(equalize_adapthist(xp.asarray(hsv[..., 2]), **kwargs))
    return color.hsv2rgb(hsv)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_adapthist_published_grayscale(xp, dtype):
    img = util.img_as_float(skimage_data.astronaut()).astype(dtype, copy=False)
    img = color.rgb2gray(img)
    img = np.dstack((img, img, img))
    adapted = adapthist_rgb(xp, img, kernel_size=(57, 51), clip_limit=0.01, nbins=128)
    assert img.shape == adapted.shape
    snr_decimal = 3 if dtype != np.float16 else 2
    np.testing.assert_almost_equal(peak_snr(img, adapted), 100.140, snr_decimal)
    np.testing.assert_almost_equal(norm_brightness_err(img, adapted), 0.0529, 3)


def test_adapthist_published_color(xp):
    img = util.img_as_uint(skimage_data.astronaut())
    adapted = adapthist_rgb(xp, img, clip_limit=0.01)
    assert adapted.min() == 0 and adapted.max() == 1.0 and img.shape == adapted.shape
    full_scale = exposure.rescale_intensity(img)
    np.testing.assert_almost_equal(peak_snr(full_scale, adapted), 109.393, 1)
    np.testing.assert_almost_equal(norm_brightness_err(full_scale, adapted), 0.02, 2)


def test_adapthist_published_grayscale_nd(xp):
    img = color.rgb2gray(util.img_as_float(skimage_data.astronaut()))
    a = 15
    img2d = util.img_as_float(img[0:-1:a, 0:-1:a])
    img3d = np.array([img2d] * (img.shape[0] // a))
    adapted2d = to_numpy(equalize_adapthist(xp.asarray(img2d), kernel_size=5, clip_limit=0.05))
    adapted3d = to_numpy(equalize_adapthist(xp.asarray(img3d), kernel_size=5, clip_limit=0.05,
                                            axes=(0, 1, 2)))
    assert img2d.shape == adapted2d.shape and img3d.shape == adapted3d.shape
    assert np.mean(np.abs(adapted2d - adapted3d[adapted3d.shape[0] // 2])) < 0.02


def test_adapthist_published_borders(xp):
    img = color.rgb2gray(util.img_as_float(skimage_data.astronaut()))
    img /= 100.0
    img[img.shape[0] // 2, img.shape[1] // 2] = 1.0
    for kernel_size in range(51, 71, 6):
        adapted = to_numpy(equalize_adapthist(xp.asarray(img), kernel_size, clip_limit=0.5))
        assert norm_brightness_err(adapted[:, -1], img[:, -1]) > 0.1
        assert norm_brightness_err(adapted[-1, :], img[-1, :]) > 0.1


def test_adapthist_published_clip_limit(xp):
    moon = skimage_data.moon()
    for image in (moon, util.img_as_float(moon)):
        batch = xp.asarray(np.stack([image, image[::-1]]))
        np.testing.assert_array_equal(to_numpy(equalize_adapthist(batch, clip_limit=0)),
                                      to_numpy(equalize_adapthist(batch, clip_limit=1)))


# ------------------------------------------------------------------------------------------------
# bad input: the parameter, what was expected, what was given

BAD_CLAHE = [
    (dict(images=np.zeros((4, 4), np.float32)), TypeError, r"`images` must be uint8 or uint16.*float32"),
    (dict(images=np.zeros((4, 4), np.int16)), TypeError, r"`images` must be uint8 or uint16.*int16"),
    (dict(clip_limit=-1.0), ValueError, r"`clip_limit` must be a finite number >= 0, got -1.0"),
    (dict(clip_limit=float("nan")), ValueError, r"`clip_limit` must be a finite number >= 0, got nan"),
    (dict(clip_limit=float("inf")), ValueError, r"`clip_limit` must be a finite number >= 0"),
    (dict(clip_limit="40"), TypeError, r"`clip_limit` must be a real number, got '40'"),
    (dict(clip_limit=True), TypeError, r"`clip_limit` must be a real number"),
    (dict(tile_grid=(0, 8)), ValueError, r"`tile_grid` entries must be >= 1, got \(0, 8\)"),
    (dict(tile_grid=(8, -2)), ValueError, r"`tile_grid` entries must be >= 1"),
    (dict(tile_grid=(8.5, 8)), TypeError, r"`tile_grid` entries must be integers, got \(8.5, 8\)"),
    (dict(tile_grid=(8.0, 8)), TypeError, r"`tile_grid` entries must be integers"),
    (dict(tile_grid=(8, 8, 8)), ValueError, r"`tile_grid` must have 2 entries"),
    (dict(tile_grid="88"), TypeError, r"`tile_grid` entries must be integers"),
    (dict(tile_grid=None), TypeError, r"`tile_grid` must be an int or a sequence of 2 ints"),
    (dict(axes=(0, 1, 2)), ValueError, r"`axes` must name 2 axes"),
    (dict(images=np.zeros(4, np.uint8)), ValueError, r"`images` must have at least 2 dimensions"),
]


@pytest.mark.parametrize("arguments, error, message", BAD_CLAHE)
def test_clahe_bad_input(arguments, error, message):
    arguments = {"images": np.zeros((2, 4, 4), np.uint8), **arguments}
    with pytest.raises(error, match=message):
        clahe(**arguments)


BAD_ADAPTHIST = [
    (dict(images=np.zeros((4, 4), np.uint32)), TypeError, r"`images` must be uint8, uint16, .*uint32"),
    (dict(images=np.full((4, 4), 2.0)), ValueError, r"`images` of floating dtype must lie in \[-1, 1\]"),
    (dict(images=np.full((4, 4), np.nan)), ValueError, r"`images` must not contain NaN"),
    (dict(kernel_size=5), ValueError, r"`kernel_size` \(5, 5\) must not exceed the image shape \(4, 4\)"),
    (dict(kernel_size=(2, 2, 2)), ValueError, r"`kernel_size` must have 2 entries"),
    (dict(kernel_size=(2, 0)), ValueError, r"`kernel_size` entries must be >= 1"),
    (dict(kernel_size=(2, 1.5)), TypeError, r"`kernel_size` entries must be integers"),
    (dict(clip_limit=-0.01), ValueError, r"`clip_limit` must be a finite number >= 0, got -0.01"),
    (dict(clip_limit=float("nan")), ValueError, r"`clip_limit` must be a finite number >= 0"),
    (dict(nbins=0), ValueError, r"`nbins` must be a positive integer, got 0"),
    (dict(axes=(1,)), ValueError, r"`axes` must name at least 2 axes"),
]


@pytest.mark.parametrize("arguments, error, message", BAD_ADAPTHIST)
def test_adapthist_bad_input(arguments, error, message):
    arguments = {"images": np.zeros((4, 4), np.uint8), **arguments}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=message):
            equalize_adapthist(**arguments)
