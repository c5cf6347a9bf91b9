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
