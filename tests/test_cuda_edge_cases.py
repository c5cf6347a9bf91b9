"""The fused CUDA kernels on the cases that once differed from the portable path, and on real images.

Each case compares ``equalize_hist`` / ``histogram`` with the kernels against the same call inside
:func:`gpu_histeq._engine.portable`: bit for bit, or the same ``ValueError``. On the emulated CuPy
(no GPU) every case also proves that a kernel ran. Found by running the kernels through the
emulator (issue 10):

* repeated bin edges (planes too narrow for `nbins` at their magnitude) must raise numpy's
  refusal, not return NaN;
* masked-out pixels far outside the selected range (1e30, FLT_MAX) must not overflow the
  float -> integer bin conversion;
* float64 planes whose bins are a few subnormal units wide take numpy.interp's search.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skimage import data, exposure, img_as_float32, img_as_float64, img_as_uint

from conftest import assert_declined, assert_wrote, expect_decline, raised_in_kernel_path
from gpu_histeq import _engine, equalize_hist, histogram
from test_cuda_kernels import assert_same_bits, flushed_reference

FLT_MAX = float(np.finfo(np.float32).max)
DBL_MAX = float(np.finfo(np.float64).max)
TINY64 = float(np.finfo(np.float64).smallest_subnormal)


def compare(cp, images, nbins=256, mask=None, method=None, decline=None):
    """equalize_hist with the kernels == the portable path (bits or error); returns the result.

    The CUDA engine's answer (``_engine.recording``) must be that it wrote the result, or the
    documented decline `decline` (then the portable path redid it); an error must come from
    the kernel path (raised inside ``gpu_histeq._cuda``), as portably.
    """
    host = np.asarray(images)
    images = cp.asarray(host)
    mask = None if mask is None else cp.asarray(mask)
    # CuPy never warns on floating overflow; NumPy under the stand-in would (warnings are errors)
    with np.errstate(all="ignore"), _engine.portable(), flushed_reference(cp, host):
        try:
            expected, expected_error = equalize_hist(images, nbins, mask=mask, method=method), None
        except ValueError as error:
            expected, expected_error = None, error
    with _engine.recording() as steps:
        try:
            with np.errstate(all="ignore"):
                result, error = equalize_hist(images, nbins, mask=mask, method=method), None
        except ValueError as caught:
            result, error = None, caught
    assert (type(error), str(error)) == (type(expected_error), str(expected_error))
    if error is not None:
        assert raised_in_kernel_path(error), f"{error!r} was not raised by the kernel path"
        return None, error
    answers = [step.outcome for step in steps if step.name == "equalize"]
    assert len(answers) == 1, steps
    if decline is None:
        assert_wrote(answers[0])
    else:
        assert_declined(answers[0], decline)
        expect_decline(decline)  # the fixture's own check of the test's steps
    assert_same_bits(result, expected)
    return result, error


def _narrow(dtype, ulps, base=1.0):
    """A plane `ulps` units in the last place wide, starting at `base`."""
    base = dtype(base)
    return (base + np.arange(ulps + 1, dtype=dtype) * np.spacing(base)).astype(dtype)


REPEATED_EDGES = {
    "f32-constant-1e8": (np.full((1, 1), 1e8, np.float32), 256),
    "f32-two-ulps": (np.array([[1.0, np.nextafter(np.float32(1), np.float32(2))]], np.float32), 256),
    "f32-full-range": (np.array([[-FLT_MAX, FLT_MAX]], np.float32), 256),
    "f32-3-ulps": (_narrow(np.float32, 3).reshape(1, -1).astype(np.float32), 256),
    "f32-100-ulps": (_narrow(np.float32, 100).reshape(1, -1).astype(np.float32), 256),
    "f64-3-ulps": (_narrow(np.float64, 3).reshape(1, -1), 256),
    "f64-100-ulps": (_narrow(np.float64, 100).reshape(1, -1), 256),
    "f32-constant-3e7-batch": (np.stack([np.full((4, 5), 3e7, np.float32),
                                         np.arange(20, dtype=np.float32).reshape(4, 5)]), 256),
    "f64-constant-1e17": (np.full((3, 3), 1e17), 256),
    "f64-constant-1e300": (np.full((3, 3), 1e300), 256),
    "f64-full-range": (np.array([[-DBL_MAX, DBL_MAX]]), 256),
    "f64-subnormal-only": (np.array([[0.0, 3.0, 7.0, 100.0]]) * TINY64, 256),
    "f64-large-2-bins": (np.array([[1e16, 1e16 + 2]]), 2),
}


@pytest.mark.parametrize("case", sorted(REPEATED_EDGES))
def test_repeated_bin_edges_raise_as_portably(cp, case):
    images, nbins = REPEATED_EDGES[case]
    _, error = compare(cp, images, nbins)
    if case not in ("f64-large-2-bins",):
        assert error is not None and "too many" in str(error)


@pytest.mark.parametrize("case", sorted(REPEATED_EDGES))
def test_repeated_bin_edges_multi_block(cp, case, monkeypatch):
    from gpu_histeq._cuda import _kernels
    monkeypatch.setattr(_kernels, "SMALL_PIXELS", 0)
    images, nbins = REPEATED_EDGES[case]
    compare(cp, images, nbins)


@pytest.mark.parametrize("far", [1e30, FLT_MAX, -1e30, -FLT_MAX, 1e300], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pixels", [2, 97 * 95, 300 * 301])
def test_far_out_unselected_values(cp, dtype, far, pixels):
    """Sentinels in masked-out pixels: clamped in floating point before the integer cast."""
    if dtype == np.float32 and abs(far) > FLT_MAX:
        pytest.skip("not a float32 value")
    rng = np.random.default_rng(pixels)
    plane = rng.normal(1.0, 0.5, (2, 1, pixels)).astype(dtype)
    mask = rng.random(plane.shape) < 0.6
    mask[..., 0] = True
    plane[~mask] = far
    plane[..., -1] = far
    mask[..., -1] = False
    result, _ = compare(cp, plane, 256, mask)
    if pixels == 2:  # the case: [[1.0, 1e30]] with mask [[True, False]] -> [[0.5, 1.0]]
        got = np.asarray(result.get() if hasattr(result, "get") else result)
        for p in range(2):
            expected = exposure.equalize_hist(plane[p], 256, mask=mask[p])
            np.testing.assert_array_equal(got[p], expected)
        assert got[0, 0, 1] == (1.0 if far > 0 else 0.0)


def test_far_out_unselected_values_multi_block(cp, monkeypatch):
    from gpu_histeq._cuda import _kernels
    monkeypatch.setattr(_kernels, "SMALL_PIXELS", 0)
    plane = np.array([[1.0, 1e30, 2.0, -FLT_MAX, 1.5]], np.float32)
    compare(cp, plane, 256, np.array([[True, False, True, False, True]]))


IRREGULAR = {
    "issue": np.array([[0, 392553, 396459, 1000000]]) * TINY64,
    "clustered": np.array([[0, 1, 2, 3, 500, 501, 1000, 2000, 2001]]) * TINY64,
    "wide-subnormal": np.array([[0, 10**9, 2 * 10**9, 3 * 10**9, 4503599627370495]]) * TINY64,
}


@pytest.mark.parametrize("nbins", [4, 70, 256])
@pytest.mark.parametrize("case", sorted(IRREGULAR))
def test_irregular_subnormal_float64_planes(cp, case, nbins):
    """Bins narrower than the smallest normal: the documented "irregular" decline (the kernels
    ran, then the portable path redid the plane with numpy.interp's own search), or numpy's
    refusal of repeated bin edges where the bins are narrower than one subnormal."""
    result, error = compare(cp, IRREGULAR[case], nbins, decline="irregular")
    assert (error is None) == ((case, nbins) not in {("clustered", 70), ("clustered", 256)})
    assert error is None or "too many" in str(error)
    if case == "issue" and nbins == 256:
        values = np.asarray(result.get() if hasattr(result, "get") else result)
        assert np.isfinite(values).all() and values[0, 1] == 0.5


TINY32 = float(np.finfo(np.float32).smallest_subnormal)
NORMAL32 = float(np.finfo(np.float32).smallest_normal)
_RNG32 = np.random.default_rng(32)
#: float32 planes near the subnormals, which a GPU flushes (-ftz=true) in both paths.
SUBNORMAL32 = {
    "subnormal-only": _RNG32.integers(0, 101, (2, 9, 11)) * TINY32,
    "subnormal-wide": _RNG32.integers(0, 1000, (2, 9, 11)) * TINY32,
    "normal-and-subnormal": np.array([NORMAL32 * 0.8, 0.0, NORMAL32 * 3, NORMAL32] * 25).reshape(1, 10, 10),
    "normal-with-subnormal-pixels": np.where(_RNG32.random((3, 12, 12)) < 0.2, 5 * TINY32,
                                             1.0 + _RNG32.random((3, 12, 12))),
    "tiny-normals": (1e-36 * (1.0 + _RNG32.integers(0, 50, (2, 8, 8)))),
}


@pytest.mark.parametrize("small", [True, False], ids=["one-block", "multi-block"])
@pytest.mark.parametrize("nbins", [4, 70, 256])
@pytest.mark.parametrize("case", sorted(SUBNORMAL32))
def test_float32_subnormals_equal_the_flushed_reference(cp, case, nbins, small, monkeypatch):
    """The kernels against the portable path with the GPU's flush-to-zero (emulated: x86 FTZ
    and DAZ around the reference), bit for bit or the same error from the kernel path."""
    from gpu_histeq._cuda import _kernels
    if not small:
        monkeypatch.setattr(_kernels, "SMALL_PIXELS", 0)
    images = SUBNORMAL32[case].astype(np.float32)
    result, error = compare(cp, images, nbins)
    if case.startswith("subnormal-"):  # flushed to planes of zeros (NumPy: 0.5 for 4 or 256 bins)
        zeros = equalize_hist(np.zeros(images.shape, np.float32), nbins)
        assert_same_bits(result, zeros)
        assert nbins == 70 or (zeros == 0.5).all()
    if case == "normal-and-subnormal":  # bins narrower than a normal flush to repeated edges
        assert "too many" in str(error)
    if case == "normal-with-subnormal-pixels":  # the flushed pixels count as 0.0, below the rest
        assert error is None
        got = np.asarray(result.get() if hasattr(result, "get") else result)
        flushed = images < NORMAL32
        for p in range(3):
            assert np.unique(got[p][flushed[p]]).size == 1  # one bin: every flushed pixel alike
            assert got[p][flushed[p]].max() < got[p][~flushed[p]].min()


REAL = {
    "camera-u8": lambda: data.camera(),
    "camera-u16": lambda: img_as_uint(data.camera()),
    "camera-f32": lambda: img_as_float32(data.camera()),
    "camera-f64": lambda: img_as_float64(data.camera()),
    "moon-u8-odd": lambda: data.moon()[:301, :299],
    "coins-f32-odd": lambda: img_as_float32(data.coins())[:97, :95],
    "astronaut-u8-channels": lambda: np.moveaxis(data.astronaut()[::2, ::2], -1, 0),
    "astronaut-f64-channels": lambda: np.moveaxis(img_as_float64(data.astronaut()[1::3, ::3]), -1, 0),
}


@pytest.mark.parametrize("case", sorted(REAL))
def test_real_images(cp, case):
    images = REAL[case]()
    methods = ["opencv", "skimage"] + (["pil"] if images.dtype == np.uint8 else [])
    if images.dtype.kind == "f":
        methods = ["skimage"]
    for method in methods:
        compare(cp, images, 256, method=method)
    if images.dtype.kind == "f":
        compare(cp, images, 1000)
        compare(cp, images, 17, mask=images > np.median(images))


@pytest.mark.parametrize("case", ["camera-u8", "camera-f32", "camera-f64", "camera-u16"])
def test_real_images_histogram(cp, case):
    images = cp.asarray(REAL[case]())
    mask = cp.asarray(np.asarray(REAL[case]()) > 0)
    for selected in (None, mask):
        counts, centers = histogram(images, 300, mask=selected)
        with _engine.portable():
            expected_counts, expected_centers = histogram(images, 300, mask=selected)
        assert_same_bits(counts, expected_counts)
        assert_same_bits(centers, expected_centers)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_far_out_unselected_values_histogram(cp, dtype):
    """The histogram hook with masked-out sentinels: counts equal numpy.histogram of the selection."""
    plane = np.array([[[1.0, 1e30, 2.0, -1e30, 1.5, 3.0]]], dtype)
    mask = np.array([[[True, False, True, False, True, True]]])
    images, selected = cp.asarray(plane), cp.asarray(mask)
    with np.errstate(all="ignore"):
        counts, centers = histogram(images, 4, mask=selected)
        with _engine.portable():
            expected_counts, expected_centers = histogram(images, 4, mask=selected)
    assert_same_bits(counts, expected_counts)
    assert_same_bits(centers, expected_centers)
    reference, _ = np.histogram(plane[mask], 4)
    np.testing.assert_array_equal(np.asarray(counts.get() if hasattr(counts, "get") else counts),
                                  [reference])


@pytest.mark.parametrize("small", [True, False], ids=["one-block", "multi-block"])
def test_errors_come_in_the_portable_order(cp, small, monkeypatch):
    """NaN in one plane and repeated edges in another: the NaN error, as portably."""
    from gpu_histeq._cuda import _kernels
    if not small:
        monkeypatch.setattr(_kernels, "SMALL_PIXELS", 0)
    planes = np.stack([np.full((3, 3), 1e8, np.float32), np.arange(9, dtype=np.float32).reshape(3, 3)])
    planes[1, 1, 1] = np.nan
    _, error = compare(cp, planes)
    assert "NaN or infinity" in str(error)
    _, error = compare(cp, planes[:1])
    assert "too many" in str(error)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dtype=st.sampled_from([np.float32, np.float64]), offset=st.floats(-1e6, 1e6),
       step=st.floats(1e-3, 1e3), levels=st.integers(1, 300), nbins=st.integers(1, 400),
       masked=st.booleans(), large=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_property_fused_float_kernels_equal_portable(cp, dtype, offset, step, levels, nbins,
                                                     masked, large, seed, monkeypatch):
    """Quantized planes (offset + step * level): many pixels exactly on bin edges and centers,
    ranges narrow or wide for their magnitude, one-block and multi-block kernels, 1-400 bins."""
    from gpu_histeq._cuda import _kernels
    monkeypatch.setattr(_kernels, "SMALL_PIXELS", 0 if large else 1 << 16)
    rng = np.random.default_rng(seed)
    images = (offset + step * rng.integers(0, levels, (3, 17, 13))).astype(dtype)
    mask = rng.random((3, 17, 13)) < 0.6 if masked else None
    if mask is not None:
        mask[:, 0, 0] = True
    compare(cp, images, nbins, mask)
