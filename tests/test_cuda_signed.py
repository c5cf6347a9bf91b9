"""equalize_hist of int8 / int16 on CUDA: planes whose keys sort in shared memory by rank
(ranks.cu), larger ones by level: int8 through the uint8 level kernels on the sign-flipped
values, int16 through the 65536-level ones (bin ``v + 32768``).

Flipping the sign bit (``v + 2**(bits - 1)``) turns int8 levels into uint8 levels in the same
order, so the skimage tables of the uint8 kernels are the portable path's tables over each
plane's own range, at every pixel (masks and pixels outside the mask's range included); the
histograms of both count the sign-flipped values. Each case compares the bytes with the portable path and checks that the level
kernels ran (on the emulated CuPy) and that the portable binning was not reached.
"""

import numpy as np
import pytest

from conftest import is_emulated
from gpu_histeq import _engine, equalize, equalize_hist

skimage_exposure = pytest.importorskip("skimage.exposure")


def make(dtype, kind, shape, seed=0):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    values = {"random": lambda: rng.integers(info.min, info.max, shape, endpoint=True),
              "narrow": lambda: rng.integers(-20, 21, shape),
              "constant": lambda: np.full(shape, -7),
              "extremes": lambda: rng.choice([info.min, info.max], shape),
              "negative": lambda: rng.integers(info.min, 0, shape)}[kind]()
    return values.astype(dtype)


def run_cuda(cp, monkeypatch, images, **kwargs):
    def refuse(*_, **__):
        raise AssertionError("the portable binning ran instead of the CUDA kernels")

    before = dict(cp.LAUNCHES) if is_emulated(cp) else None
    with monkeypatch.context() as patch:
        patch.setattr(equalize, "binning_for", refuse)
        out = equalize_hist(images, **kwargs)
    if before is not None:
        ran = {k for k, n in cp.LAUNCHES.items() if n > before.get(k, 0)}
        # small planes: the rank kernel; large ones: int8 the <unsigned char> level kernels
        # (sign bit flipped), int16 the <short> ones (bin v + 32768)
        ranked = f"gpu_histeq_equalize_ranked<{'signed char' if images.dtype == np.int8 else 'short'}"
        expected = ((ranked, "<unsigned char>") if images.dtype == np.int8 else
                    (ranked, "gpu_histeq_level_histogram<short>"))
        assert any(e in k for e in expected for k in ran), ran
    return out


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
@pytest.mark.parametrize("kind", ["random", "narrow", "constant", "extremes", "negative"])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("shape", [(4, 37, 41), (2, 1, 1), (1, 300, 260)])
def test_signed_levels_equal_portable_path(cp, monkeypatch, dtype, kind, masked, shape):
    host = make(dtype, kind, shape)
    images = cp.asarray(host)
    mask = None
    if masked:
        selected = np.random.default_rng(1).random(shape) < 0.3
        selected[..., 0, 0] = True
        mask = cp.asarray(selected)
    result = run_cuda(cp, monkeypatch, images, mask=mask)
    with _engine.portable():
        expected = equalize_hist(images, mask=mask)
    assert result.dtype == expected.dtype == np.float64
    np.testing.assert_array_equal(result.get().view(np.uint64), expected.get().view(np.uint64))
    np.testing.assert_array_equal(images.get(), host)
    reference = skimage_exposure.equalize_hist(host[0], mask=None if mask is None else mask.get()[0])
    np.testing.assert_allclose(result.get()[0], reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_signed_ragged_list_equals_per_image_calls(cp, dtype):
    rng = np.random.default_rng(4)
    info = np.iinfo(dtype)
    images = [cp.asarray(rng.integers(info.min, info.max, s, endpoint=True).astype(dtype))
              for s in ((1, 1), (5, 8), (40, 43), (300, 230))]
    results = equalize_hist(images)
    for image, result in zip(images, results):
        with _engine.portable():
            expected = equalize_hist(image)
        np.testing.assert_array_equal(result.get(), expected.get())


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
@pytest.mark.parametrize("kind", ["random", "narrow", "constant", "negative"])
@pytest.mark.parametrize("masked", [False, True])
def test_signed_histograms_equal_portable_path(cp, monkeypatch, dtype, kind, masked):
    """histogram / cumulative_distribution of int8 / int16 count with the level kernel on the
    sign-flipped values (the lowest level shifted alike), never with bincount."""
    from gpu_histeq import cumulative_distribution, histogram
    import importlib
    portable_engine = importlib.import_module("gpu_histeq._engine.portable")  # the module
    host = make(dtype, kind, (3, 33, 29), seed=2)
    images = cp.asarray(host)
    mask = None
    if masked:
        selected = np.random.default_rng(3).random(host.shape) < 0.4
        selected[..., 0, 0] = True
        mask = cp.asarray(selected)
    for function in (histogram, cumulative_distribution):
        def refuse(*_, **__):
            raise AssertionError("the portable bincount ran instead of the level kernel")

        with monkeypatch.context() as patch:
            patch.setattr(portable_engine, "count", refuse)
            result = function(images, mask=mask)
        with _engine.portable():
            expected = function(images, mask=mask)
        for got, want in zip(result, expected):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got.get(), want.get())
    counts, centers = histogram(images, mask=mask)
    plane = host[0] if mask is None else host[0][mask.get()[0]]
    sk_counts, sk_centers = skimage_exposure.histogram(plane)
    np.testing.assert_array_equal(counts.get()[0][:len(sk_counts)], sk_counts)
    np.testing.assert_array_equal(centers.get()[0][:len(sk_centers)], sk_centers)
