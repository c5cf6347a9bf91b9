"""match_histograms on CUDA (``gpu_histeq/_cuda/ranks.cu``: sort, match by rank) equals the
portable path bit for bit, and scikit-image.

Every case runs :func:`gpu_histeq.match_histograms` on CuPy arrays through the kernels and
inside :func:`gpu_histeq._engine.portable`, and compares the bytes; the ``cp`` fixture fails a
case in which the CUDA step did not write the result, and on the emulated CuPy each case checks
that the match kernel ran.
"""

import numpy as np
import pytest

from conftest import expect_decline, is_emulated, raised_in_kernel_path
from gpu_histeq import _engine, match_histograms

exposure = pytest.importorskip("skimage.exposure")

DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.float32, np.float64]


def launches(cp, prefix="gpu_histeq_match"):
    if not is_emulated(cp):
        return None
    return sum(n for name, n in cp.LAUNCHES.items() if name.startswith(prefix))


def run_both(cp, images, reference, **kwargs):
    """(kernels, portable) results; the match kernel must have written the kernels' result."""
    images, reference = cp.asarray(images), cp.asarray(reference)
    before = launches(cp)
    with _engine.recording() as steps:
        result = match_histograms(images, reference, **kwargs)
    if images.size:
        assert [s.outcome for s in steps] == [True], steps
        if before is not None:
            assert launches(cp) == before + 1
    with _engine.portable():
        expected = match_histograms(images, reference, **kwargs)
    return result, expected


def assert_same(result, expected):
    result, expected = result.get(), expected.get()
    assert result.dtype == expected.dtype and result.shape == expected.shape
    mismatch = np.flatnonzero(result.ravel().view(np.uint8) != expected.ravel().view(np.uint8))
    assert mismatch.size == 0, f"{mismatch.size} bytes differ, first at {mismatch[:5]}"


def make(dtype, kind, shape, rng):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        top = float(np.finfo(np.float32).max) if dtype == np.float32 else 1e300
        values = {"random": lambda: rng.normal(0, 3, shape),
                  "narrow": lambda: rng.integers(-4, 4, shape) * 0.25,
                  "constant": lambda: np.full(shape, -1.5),
                  # float64: slopes of +-max would overflow (the portable path warns)
                  "extremes": lambda: rng.choice([-top, top, 0.0], shape)}[kind]()
    else:
        info = np.iinfo(dtype)
        low, high = int(info.min), int(info.max)
        values = {"random": lambda: rng.integers(low, high, shape, endpoint=True),
                  "narrow": lambda: rng.integers(low // 2, low // 2 + 9, shape),
                  "constant": lambda: np.full(shape, high // 3),
                  "extremes": lambda: rng.choice([low, high, low + 1, high - 1], shape)}[kind]()
    return np.ascontiguousarray(values, dtype=dtype)


KINDS = ["random", "narrow", "constant", "extremes"]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("image_kind", KINDS)
@pytest.mark.parametrize("reference_kind", KINDS)
def test_shared_reference_equals_the_portable_path(cp, dtype, image_kind, reference_kind):
    rng = np.random.default_rng(len(image_kind) * 7 + len(reference_kind))
    images = make(dtype, image_kind, (3, 13, 17), rng)
    reference = make(dtype, reference_kind, (9, 11), rng)
    result, expected = run_both(cp, images, reference)
    assert_same(result, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shapes", [((4, 1, 1), (4, 1, 1)), ((4, 1, 1), (4, 7, 3)),
                                    ((2, 5, 6), (2, 1, 1)), ((2, 3, 40, 33), (1, 3, 8, 8)),
                                    ((2, 3, 9, 9), (2, 1, 20, 20))], ids=str)
def test_per_plane_references_equal_the_portable_path(cp, dtype, shapes):
    rng = np.random.default_rng(sum(shapes[0]))
    images = make(dtype, "random", shapes[0], rng)
    reference = make(dtype, "narrow", shapes[1], rng)
    result, expected = run_both(cp, images, reference)
    assert_same(result, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_equal_to_scikit_image(cp, dtype):
    rng = np.random.default_rng(1)
    images = make(dtype, "narrow", (3, 16, 21), rng)
    # scikit-image counts unsigned planes with bincount: levels up to 2**32 would not fit
    references = make(dtype, "narrow" if np.dtype(dtype).kind == "u" else "random", (3, 12, 10),
                      rng)
    result = match_histograms(cp.asarray(images), cp.asarray(references)).get()
    for image, reference, got in zip(images, references, result):
        np.testing.assert_array_equal(got, exposure.match_histograms(image, reference))


def test_numbers_of_a_small_case(cp):
    # source ranks 1/4, 3/4, 3/4, 1; reference knots 10 (1/3), 20 (2/3), 30 (1)
    images = np.array([[[1, 5], [5, 9]]], np.int16)
    reference = np.array([[10, 20, 30]], np.int16)
    result = match_histograms(cp.asarray(images), cp.asarray(reference)).get()
    expected = [[[10.0, 20 + (0.75 - 2 / 3) * 30], [20 + (0.75 - 2 / 3) * 30, 30.0]]]
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-12)
    assert result[0, 0, 0] == 10.0 and result[0, 1, 1] == 30.0


def test_channels_with_a_shared_reference(cp):
    rng = np.random.default_rng(2)
    images = make(np.uint8, "random", (2, 14, 15, 3), rng)
    reference = make(np.uint8, "narrow", (10, 12, 3), rng)
    result, expected = run_both(cp, images, reference, channel_axis=-1)
    assert_same(result, expected)
    for image, got in zip(images, result.get()):
        np.testing.assert_array_equal(got, exposure.match_histograms(image, reference,
                                                                      channel_axis=-1))


def test_signed_zeros_and_ties(cp):
    images = np.array([[[0.0, -0.0, 1.0, -0.0], [2.0, 2.0, -3.0, 0.0]]])
    reference = np.array([[-0.0, 0.0, 5.0], [5.0, -1.0, 0.0]])
    result, expected = run_both(cp, images, reference)
    np.testing.assert_array_equal(result.get(), expected.get())  # -0.0 == 0.0 on values


@pytest.mark.parametrize("where", ["images", "reference", "both"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_infinity_are_raised_by_the_kernel_path(cp, where, bad, dtype):
    images = np.linspace(0, 1, 2 * 5 * 6, dtype=dtype).reshape(2, 5, 6)
    reference = np.linspace(2, 3, 20, dtype=dtype).reshape(4, 5)
    if where in ("images", "both"):
        images[1, 2, 3] = bad
    if where in ("reference", "both"):
        reference[3, 4] = bad
    name = "images" if where != "reference" else "reference"
    with pytest.raises(ValueError, match=f"`{name}` must not contain NaN or infinity") as caught:
        match_histograms(cp.asarray(images), cp.asarray(reference))
    assert raised_in_kernel_path(caught.value)
    with _engine.portable(), pytest.raises(ValueError, match=f"`{name}` must not contain"):
        match_histograms(cp.asarray(images), cp.asarray(reference))


@pytest.mark.parametrize("dtypes", [(np.uint8, np.uint16), (np.int16, np.float64),
                                    (np.int64, np.int64), (np.float16, np.float16)], ids=str)
def test_other_dtypes_decline_before_any_launch(cp, dtypes):
    rng = np.random.default_rng(4)
    images = make(dtypes[0], "narrow", (2, 6, 7), rng) if dtypes[0] != np.float16 else \
        rng.random((2, 6, 7)).astype(np.float16)
    reference = make(dtypes[1], "narrow", (5, 5), rng) if dtypes[1] != np.float16 else \
        rng.random((5, 5)).astype(np.float16)
    before = launches(cp, "gpu_histeq_")
    with _engine.recording() as steps:
        result = match_histograms(cp.asarray(images), cp.asarray(reference))
    assert [s.outcome.reason for s in steps] == ["uncovered"]
    if before is not None:
        assert launches(cp, "gpu_histeq_") == before
    with _engine.portable():
        assert_same(result, match_histograms(cp.asarray(images), cp.asarray(reference)))


def test_planes_beyond_the_sort_limit_decline(cp, monkeypatch):
    from gpu_histeq._cuda import _ranks
    monkeypatch.setattr(_ranks, "MAX_PIXELS", 16)
    images = make(np.uint8, "random", (2, 5, 5), np.random.default_rng(5))
    with _engine.recording() as steps:
        match_histograms(cp.asarray(images), cp.asarray(images[0]))
    assert [s.outcome.reason for s in steps] == ["uncovered"]


@pytest.mark.parametrize("dtype, syncs", [(np.uint8, 0), (np.int32, 0), (np.float32, 1)])
@pytest.mark.parametrize("shared", [True, False], ids=["images-sorted-in-block", "both-sorted"])
def test_launches_and_synchronisations(cp, dtype, syncs, shared, monkeypatch):
    """Planes whose keys fit MATCH_SHARED_BYTES: the reference sorted, then one block per plane
    sorts its keys in shared memory and matches (2 kernels); larger: sort both, match (3)."""
    if not is_emulated(cp):
        pytest.skip("counted on the emulated CuPy")
    from emulation.counting import counting
    from gpu_histeq._cuda import _ranks
    if not shared:
        monkeypatch.setattr(_ranks, "MATCH_SHARED_BYTES", 0)
    rng = np.random.default_rng(6)
    images = cp.asarray(make(dtype, "random", (8, 24, 24), rng))
    reference = cp.asarray(make(dtype, "random", (8, 24, 24), rng))
    match_histograms(images, reference)  # compiled and cached
    with counting() as tally:
        match_histograms(images, reference)
    match = "gpu_histeq_match_shared" if shared else "gpu_histeq_match"
    assert sorted(k.split("<")[0] for k in tally.kernels) == [match, "gpu_histeq_sort_keys"]
    assert tally.kernel_launches == (2 if shared else 3), tally.kernels
    assert len(tally.syncs) == syncs, tally.sync_sites()
    assert "bincount" not in tally.operations and tally.h2d_bytes == 0, tally.uploads


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint8], ids=str)
@pytest.mark.parametrize("shared_bytes", [40 << 10, 0], ids=["images-sorted-in-block", "global"])
def test_sizes_that_are_not_powers_of_two(cp, dtype, shared_bytes, monkeypatch):
    """The keys are sorted unpadded (gpu_histeq_bitonic_sort_n: comparators past n skipped), in
    the matching block's shared memory or in global memory: rows of 1 to 4097 values, ties
    included, against the portable path bit for bit; float32 images get their float32 result
    from the kernel itself."""
    from gpu_histeq._cuda import _ranks
    monkeypatch.setattr(_ranks, "MATCH_SHARED_BYTES", shared_bytes)
    rng = np.random.default_rng(11)
    for ns, nt in ((1, 1), (2, 3), (3, 2), (7, 31), (33, 100), (257, 5), (1000, 4097), (4097, 999)):
        images = cp.asarray(make(dtype, "random", (2, 1, ns), rng))
        reference = cp.asarray(make(dtype, "random", (2, 1, nt), rng))
        with _engine.recording() as steps:
            result = match_histograms(images, reference)
        assert [s.outcome for s in steps if s.name == "match"] == [True]
        with _engine.portable():
            expected = match_histograms(images, reference)
        assert result.dtype == expected.dtype == (np.float32 if dtype == np.float32 else np.float64)
        np.testing.assert_array_equal(result.get(), expected.get())
