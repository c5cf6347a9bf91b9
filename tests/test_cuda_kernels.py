"""The fused CUDA kernels agree bit for bit with the portable CuPy path, errors included.

Every case runs the portable path (the public functions inside :func:`gpu_histeq._engine.portable`)
and the kernels (``_cuda.equalize`` or the public functions, which take them) on the same CuPy
planes and compares the bytes of the results, or the errors raised. The ``cp`` fixture runs each
case on a GPU when one is usable, else on the emulated CuPy (tests/emulation): the real kernel
text and launchers executed on the CPU, against the portable path on NumPy arithmetic.

Float32 planes near the subnormals are compared with a reference that flushes them: CuPy compiles
its own kernels with ``-ftz=true`` too, so on a GPU both paths flush them, and on the emulated
CuPy the portable path runs with the x86 FTZ and DAZ bits set (``fake_cupy.flushed_float32``),
which NumPy's arithmetic follows (tests/emulation/README.md).
"""

import contextlib

import numpy as np
import pytest

from conftest import assert_declined, assert_wrote, is_emulated, raised_in_kernel_path
from gpu_histeq import _cuda, _engine, apply_lut, equalize_hist, histogram

#: (name, planes, pixels): small planes take the one-block kernels, large ones the multi-block
#: kernels; odd pixel counts take the unaligned (element by element) loops; 1x1 planes.
SHAPES = [("small", 7, 96 * 96), ("odd", 5, 97 * 95), ("large", 3, 300 * 301), ("one-pixel", 4, 1)]
KINDS = ["random", "narrow", "two-level", "constant"]
FLT_MAX = float(np.finfo(np.float32).max)


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


def result_dtype(method, dtype):
    if method in ("opencv", "pil"):
        return np.dtype(dtype)
    return np.dtype(np.float32) if np.dtype(dtype) == np.float32 else np.dtype(np.float64)


def assert_same_bits(result, expected):
    result, expected = np.asarray(_host(result)), np.asarray(_host(expected))
    assert result.dtype == expected.dtype and result.shape == expected.shape
    unsigned = np.dtype(f"u{result.itemsize}")
    different = np.flatnonzero(result.view(unsigned) != expected.view(unsigned))
    assert different.size == 0, (
        f"{different.size} values differ, first at {int(different[0])}: "
        f"{result.ravel()[different[:5]]} vs {expected.ravel()[different[:5]]}")


def _host(array):
    return array.get() if hasattr(array, "get") else array


def flush_sensitive(cp, *arrays):
    """True on the emulated CuPy for float32 input near the subnormals: a GPU flushes them in
    both paths (-ftz=true), NumPy (the stand-in's portable arithmetic) only under
    :func:`flushed_reference`."""
    if not is_emulated(cp):
        return False
    for array in arrays:
        host = np.asarray(_host(array))
        if host.dtype == np.float32:
            magnitude = np.abs(host[np.isfinite(host)])
            if ((magnitude > 0) & (magnitude < 2.0 ** -100)).any():
                return True
    return False


def flushed_reference(cp, *arrays):
    """The context of the portable reference: on the emulated CuPy, for float32 input near the
    subnormals, the GPU's flush-to-zero (x86 FTZ and DAZ, ``fake_cupy.flushed_float32``);
    elsewhere nothing (a GPU's portable CuPy path flushes by itself)."""
    return cp.flushed_float32() if flush_sensitive(cp, *arrays) else contextlib.nullcontext()


def _outcome(call):
    try:
        return call(), None
    except ValueError as error:
        return None, error


def run_both(cp, planes, mask, method, nbins):
    """(fused, portable) results of one (P, N) case; errors must match and are returned as such."""
    dtype = result_dtype(method, planes.dtype)
    images = planes.reshape(planes.shape[0], 1, planes.shape[1])
    masks = None if mask is None else mask.reshape(images.shape)
    with _engine.portable(), flushed_reference(cp, planes):
        expected, expected_error = _outcome(
            lambda: equalize_hist(images, nbins, mask=masks, method=method))
    result = cp.full(planes.shape, 7, dtype)
    taken, error = _outcome(lambda: _cuda.equalize(planes, mask, method, nbins, result))
    if expected_error is not None or error is not None:
        assert (type(error), str(error)) == (type(expected_error), str(expected_error))
        assert raised_in_kernel_path(error), f"{error!r} was not raised by the kernel path"
        return None, None
    assert_wrote(taken)
    return result, expected.reshape(planes.shape)


def check_case(cp, planes, mask, method, nbins):
    result, expected = run_both(cp, planes, mask, method, nbins)
    if result is not None:
        assert_same_bits(result, expected)


CASES = ([("opencv", np.uint8, 256), ("pil", np.uint8, 256), ("skimage", np.uint8, 256),
          ("opencv", np.uint16, 65536), ("skimage", np.uint16, 256),
          ("skimage", np.float32, 256), ("skimage", np.float64, 256),
          ("skimage", np.float32, 1000), ("skimage", np.float64, 7)])
CASE_IDS = [f"{m}-{np.dtype(d)}-{b}" for m, d, b in CASES]


@pytest.mark.parametrize("masked", [False, True], ids=["all", "mask"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
@pytest.mark.parametrize("method, dtype, nbins", CASES, ids=CASE_IDS)
def test_fused_equals_portable(cp, method, dtype, nbins, shape, kind, masked):
    _, nplanes, npixels = shape
    planes = cp.asarray(make_planes(dtype, kind, nplanes, npixels))
    mask = cp.asarray(make_mask(nplanes, npixels)) if masked else None
    check_case(cp, planes, mask, method, nbins)


@pytest.mark.parametrize("method, dtype, nbins", CASES, ids=CASE_IDS)
def test_multi_block_kernels_on_small_planes(cp, method, dtype, nbins, monkeypatch):
    """The multi-block path on planes the one-block kernels would take, in several plane groups."""
    from gpu_histeq._cuda import _kernels
    monkeypatch.setattr(_kernels, "SMALL_PIXELS", 0)
    monkeypatch.setattr(_kernels._planes, "CHUNK_BINS", 3 * 65536)
    planes = cp.asarray(make_planes(dtype, "random", 9, 64 * 64))
    mask = cp.asarray(make_mask(9, 64 * 64))
    for selected in (None, mask):
        check_case(cp, planes, selected, method, nbins)


@pytest.mark.parametrize("npixels", [(1 << 16) - 1, 1 << 16, (1 << 16) + 1])
@pytest.mark.parametrize("method, dtype, nbins", [c for c in CASES if c[1] != np.uint16],
                         ids=[i for c, i in zip(CASES, CASE_IDS) if c[1] != np.uint16])
def test_small_pixels_boundary(cp, method, dtype, nbins, npixels):
    """Planes just under, at and over SMALL_PIXELS: one-block and multi-block kernels meet."""
    planes = cp.asarray(make_planes(dtype, "random", 2, npixels, seed=npixels))
    check_case(cp, planes, cp.asarray(make_mask(2, npixels)), method, nbins)


@pytest.mark.parametrize("offset", [1, 3, 8])
@pytest.mark.parametrize("method, dtype, nbins", CASES[:1] + CASES[3:4] + CASES[5:7],
                         ids=CASE_IDS[:1] + CASE_IDS[3:4] + CASE_IDS[5:7])
def test_unaligned_views(cp, method, dtype, nbins, offset):
    """Planes and masks that start off a 16-byte boundary use the element loops."""
    base = cp.asarray(make_planes(dtype, "random", 1, 5 * 4096 + offset))
    planes = base[0, offset:].reshape(5, 4096)
    mask_base = cp.asarray(make_mask(1, 5 * 4096 + offset))
    masks = mask_base[0, offset:].reshape(5, 4096)
    masks[:, 0] = True
    check_case(cp, planes, None, method, nbins)
    check_case(cp, planes, masks, method, nbins)


def test_nan_raises(cp):
    planes = cp.asarray(make_planes(np.float32, "random", 3, 64))
    planes[1, 5] = np.nan
    result = cp.empty(planes.shape, np.float32)
    with pytest.raises(ValueError, match="NaN or infinity") as caught:
        _cuda.equalize(planes, None, "skimage", 256, result)
    assert raised_in_kernel_path(caught.value)


@pytest.mark.parametrize("dtype", [np.int64, np.uint64], ids=str)
def test_uncovered_dtypes_decline(cp, dtype):
    planes = cp.zeros((2, 16), dtype)  # int8/int16: test_cuda_signed; int32/uint32: test_cuda_ranks
    assert_declined(_cuda.equalize(planes, None, "skimage", 256, cp.empty((2, 16), np.float64)),
                    "uncovered")


@pytest.mark.parametrize("dtype, nbins", [(np.uint8, 256), (np.uint16, 256), (np.float32, 256),
                                          (np.float64, 2000)])
@pytest.mark.parametrize("masked", [False, True], ids=["all", "mask"])
def test_histogram_hook(cp, dtype, nbins, masked):
    images = cp.asarray(make_planes(dtype, "narrow", 6, 50 * 40)).reshape(6, 50, 40)
    mask = cp.asarray(make_mask(6, 50 * 40)).reshape(6, 50, 40) if masked else None
    counts, centers = histogram(images, nbins, mask=mask)
    with _engine.portable():
        expected_counts, expected_centers = histogram(images, nbins, mask=mask)
    assert_same_bits(counts, expected_counts)
    assert_same_bits(centers, expected_centers)


@pytest.mark.parametrize("dtype, table_dtype, length", [
    (np.uint8, np.uint8, 256), (np.uint8, np.float32, 200), (np.uint16, np.int64, 65536),
    (np.uint16, np.uint8, 300)])
@pytest.mark.parametrize("shared", [False, True], ids=["per-plane", "shared"])
def test_apply_lut_hook(cp, dtype, table_dtype, length, shared):
    rng = np.random.default_rng(3)
    images = cp.asarray(rng.integers(0, length, (4, 33, 65)).astype(dtype))
    tables = cp.asarray(rng.integers(0, 250, (length,) if shared else (4, length)).astype(table_dtype))
    result = apply_lut(images, tables)
    with _engine.portable():
        expected = apply_lut(images, tables)
    assert_same_bits(result, expected)
