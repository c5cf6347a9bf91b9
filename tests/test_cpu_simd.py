"""The compiled CPU kernels' SIMD loops (AVX-512, AVX2, chosen at run time) give the generic
loops' bits: every level ``GPU_HISTEQ_CPU_SIMD`` allows, against the portable path."""

import numpy as np
import pytest

from gpu_histeq import _cpu, _engine, equalize_hist

pytestmark = pytest.mark.skipif(not _cpu.BUILT, reason="the compiled extension is not built")
LEVELS = ["0", "avx2", "auto"]


def planes(dtype, seed):
    rng = np.random.default_rng(seed)
    values = [rng.normal(0, 3, (7, 61, 67)), rng.integers(0, 256, (7, 61, 67)) / 255,
              1.0 + rng.integers(0, 40, (7, 61, 67)) * 1e-3]
    stack = np.concatenate(values).astype(dtype)
    stack[3, 0, :5] = stack[3].max()  # ties on the last edge
    return stack


def at_level(monkeypatch, level, function):
    if level == "auto":
        monkeypatch.delenv("GPU_HISTEQ_CPU_SIMD", raising=False)
    else:
        monkeypatch.setenv("GPU_HISTEQ_CPU_SIMD", level)
    return function()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nbins", [256, 7, 1000])
def test_float_equalize_is_the_same_at_every_simd_level(monkeypatch, dtype, nbins):
    images = planes(dtype, nbins)
    mask = np.random.default_rng(1).random(images.shape[1:]) < 0.6
    with _engine.portable():
        expected = equalize_hist(images, nbins), equalize_hist(images, nbins, mask=mask)
    for level in LEVELS:
        result = at_level(monkeypatch, level, lambda: (equalize_hist(images, nbins),
                                                       equalize_hist(images, nbins, mask=mask)))
        for got, want in zip(result, expected):
            assert got.tobytes() == want.tobytes(), level


def test_luminance_is_the_same_at_every_simd_level(monkeypatch):
    rgb = np.random.default_rng(2).integers(0, 256, (5, 33, 47, 3), dtype=np.uint8)
    with _engine.portable():
        expected = equalize_hist(rgb, channel_axis=-1, luminance=True)
    for level in LEVELS:
        result = at_level(monkeypatch, level,
                          lambda: equalize_hist(rgb, channel_axis=-1, luminance=True))
        np.testing.assert_array_equal(result, expected, err_msg=level)


def test_level_remap_is_the_same_at_every_simd_level(monkeypatch):
    """uint8 planes of 64-pixel pieces and a remainder (the AVX-512 VBMI table lookup and its
    scalar tail), one call and block by block, against the portable path."""
    rng = np.random.default_rng(3)
    cases = [rng.integers(0, 256, (5, 61, 67), dtype=np.uint8),  # every level, a tail
             rng.integers(120, 136, (4, 64, 64), dtype=np.uint8),  # top bit set and not
             rng.integers(0, 256, (2, 512, 700), dtype=np.uint8)]  # several blocks
    for images in cases:
        for method in ("opencv", "pil"):
            with _engine.portable():
                expected = equalize_hist(images, method=method)
            for level in LEVELS:
                got = at_level(monkeypatch, level, lambda: equalize_hist(images, method=method))
                np.testing.assert_array_equal(got, expected, err_msg=f"{level} {method}")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_clahe_is_the_same_at_every_simd_level(monkeypatch, dtype):
    """The AVX-512 blend (gathers) and tile tables against the portable path: widths with and
    without a remainder of 16 pixels, padded and exact grids, clipping on and off."""
    from gpu_histeq import clahe
    rng = np.random.default_rng(4)
    top = 256 if dtype == np.uint8 else 4096
    for shape, grid, limit in [((3, 96, 96), (8, 8), 2.0), ((2, 37, 53), (3, 5), 40.0),
                               ((2, 64, 48), (4, 2), 0.0)]:
        images = rng.integers(0, top, shape).astype(dtype)
        with _engine.portable():
            expected = clahe(images, limit, grid)
        for level in LEVELS:
            got = at_level(monkeypatch, level, lambda: clahe(images, limit, grid))
            np.testing.assert_array_equal(got, expected, err_msg=f"{level} {shape}")
