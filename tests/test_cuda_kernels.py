"""The fused CUDA kernels agree bit for bit with the portable CuPy path (needs a GPU).

Every case runs the portable path (``equalize.equalize_planes`` with the fast paths disabled) and
the kernels on the same CuPy planes and compares the bytes of the results.
"""

import numpy as np
import pytest

from conftest import CUPY, CUPY_SKIP_REASON

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(CUPY is None, reason=str(CUPY_SKIP_REASON))]

if CUPY is not None:
    from gpu_histeq import _cuda, _engine, apply_lut, histogram
    from gpu_histeq._cuda import _kernels
    from gpu_histeq.equalize import equalize_planes
    from gpu_histeq.histogram import cdf_dtype

#: (name, planes, pixels): small planes take the one-block kernels, large ones the multi-block
#: kernels; odd pixel counts take the unaligned (element by element) loops; 1x1 planes.
SHAPES = [("small", 7, 96 * 96), ("odd", 5, 97 * 95), ("large", 3, 300 * 301), ("one-pixel", 4, 1)]
KINDS = ["random", "narrow", "two-level", "constant"]


def make_planes(dtype, kind, nplanes, npixels, seed=0):
    """Host planes of one kind: random over the dtype, a narrow range, two levels, constant."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    shape = (nplanes, npixels)
    if dtype.kind == "f":
        values = {"random": rng.normal(0.0, 3.0, shape),
                  "narrow": 1.0 + rng.integers(0, 40, shape) * 1e-3,
                  "two-level": rng.choice([-0.25, 0.75], shape),
                  "constant": np.full(shape, 0.3)}[kind]
        return values.astype(dtype)
    top = np.iinfo(dtype).max
    values = {"random": rng.integers(0, top, shape, endpoint=True),
              "narrow": rng.integers(60, 120, shape),
              "two-level": rng.choice([3, top // 2], shape),
              "constant": np.full(shape, 17)}[kind]
    return values.astype(dtype)


def make_mask(nplanes, npixels, seed=1):
    mask = np.random.default_rng(seed).random((nplanes, npixels)) < 0.4
    mask[:, 0] = True  # every plane selects a pixel
    return mask


def assert_same_bits(result, expected):
    assert result.dtype == expected.dtype and result.shape == expected.shape
    unsigned = np.dtype(f"u{result.itemsize}")
    different = CUPY.flatnonzero(result.view(unsigned) != expected.view(unsigned))
    assert different.size == 0, (
        f"{different.size} values differ, first at {int(different[0])}: "
        f"{result.ravel()[different[:5]]} vs {expected.ravel()[different[:5]]}")


def run_both(planes, mask, method, nbins):
    dtype = planes.dtype if method in ("opencv", "pil") else cdf_dtype(planes.dtype)
    expected = CUPY.empty(planes.shape, dtype)
    with _engine.portable():
        equalize_planes(CUPY, planes, mask, method, nbins, expected)
    result = CUPY.full(planes.shape, 7, dtype)
    assert _cuda.equalize(planes, mask, method, nbins, result)
    return result, expected


CASES = ([("opencv", np.uint8, 256), ("pil", np.uint8, 256), ("skimage", np.uint8, 256),
          ("opencv", np.uint16, 65536), ("skimage", np.uint16, 256),
          ("skimage", np.float32, 256), ("skimage", np.float64, 256),
          ("skimage", np.float32, 1000), ("skimage", np.float64, 7)])


@pytest.mark.parametrize("masked", [False, True], ids=["all", "mask"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
@pytest.mark.parametrize("method, dtype, nbins", CASES, ids=[f"{m}-{np.dtype(d)}-{b}" for m, d, b in CASES])
def test_fused_equals_portable(method, dtype, nbins, shape, kind, masked):
    _, nplanes, npixels = shape
    planes = CUPY.asarray(make_planes(dtype, kind, nplanes, npixels))
    mask = CUPY.asarray(make_mask(nplanes, npixels)) if masked else None
    result, expected = run_both(planes, mask, method, nbins)
    assert_same_bits(result, expected)


@pytest.mark.parametrize("method, dtype, nbins", CASES, ids=[f"{m}-{np.dtype(d)}-{b}" for m, d, b in CASES])
def test_multi_block_kernels_on_small_planes(method, dtype, nbins, monkeypatch):
    """The multi-block path on planes the one-block kernels would take, in several plane groups."""
    monkeypatch.setattr(_kernels, "SMALL_PIXELS", 0)
    monkeypatch.setattr(_kernels._planes, "CHUNK_BINS", 3 * 65536)
    planes = CUPY.asarray(make_planes(dtype, "random", 9, 64 * 64))
    mask = CUPY.asarray(make_mask(9, 64 * 64))
    for selected in (None, mask):
        result, expected = run_both(planes, selected, method, nbins)
        assert_same_bits(result, expected)


def test_unaligned_views():
    """Planes, masks and results that start off a 16-byte boundary use the element loops."""
    base = CUPY.asarray(make_planes(np.uint8, "random", 1, 5 * 4096 + 3))
    planes = base[0, 3:].reshape(5, 4096)
    result, expected = run_both(planes, None, "opencv", 256)
    assert_same_bits(result, expected)


def test_nan_raises():
    planes = CUPY.asarray(make_planes(np.float32, "random", 3, 64))
    planes[1, 5] = np.nan
    result = CUPY.empty(planes.shape, np.float32)
    with pytest.raises(ValueError, match="NaN or infinity"):
        _cuda.equalize(planes, None, "skimage", 256, result)


def test_uncovered_dtypes_decline():
    planes = CUPY.zeros((2, 16), np.int16)
    assert not _cuda.equalize(planes, None, "skimage", 256, CUPY.empty((2, 16), np.float64))
    with _engine.portable():
        assert not _cuda.equalize(CUPY.zeros((2, 16), np.uint8), None, "opencv", 256,
                                  CUPY.empty((2, 16), np.uint8))


@pytest.mark.parametrize("dtype, nbins", [(np.uint8, 256), (np.uint16, 256), (np.float32, 256),
                                          (np.float64, 2000)])
@pytest.mark.parametrize("masked", [False, True], ids=["all", "mask"])
def test_histogram_hook(dtype, nbins, masked):
    images = CUPY.asarray(make_planes(dtype, "narrow", 6, 50 * 40)).reshape(6, 50, 40)
    mask = CUPY.asarray(make_mask(6, 50 * 40)).reshape(6, 50, 40) if masked else None
    counts, centers = histogram(images, nbins, mask=mask)
    with _engine.portable():
        expected_counts, expected_centers = histogram(images, nbins, mask=mask)
    assert_same_bits(counts, expected_counts)
    assert_same_bits(centers, expected_centers)


@pytest.mark.parametrize("dtype, table_dtype, length", [
    (np.uint8, np.uint8, 256), (np.uint8, np.float32, 200), (np.uint16, np.int64, 65536),
    (np.uint16, np.uint8, 300)])
@pytest.mark.parametrize("shared", [False, True], ids=["per-plane", "shared"])
def test_apply_lut_hook(dtype, table_dtype, length, shared):
    rng = np.random.default_rng(3)
    images = CUPY.asarray(rng.integers(0, length, (4, 33, 65)).astype(dtype))
    tables = CUPY.asarray(rng.integers(0, 250, (length,) if shared else (4, length)).astype(table_dtype))
    result = apply_lut(images, tables)
    with _engine.portable():
        expected = apply_lut(images, tables)
    assert_same_bits(result, expected)
