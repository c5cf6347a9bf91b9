"""The compiled CPU kernels' SIMD loops (AVX-512, AVX2, chosen at run time) give the generic
loops' bits: every level ``GPU_HISTEQ_CPU_SIMD`` allows, against the portable path."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def uint8_cases(seed):
    """Level-indexed stacks reaching every branch of the pipelined uint8 equalize (the remap of
    each plane inside the next plane's count) and of OpenCV's table 16 levels at a time: the
    benchmark's faces, planes of under 8 and under 64 pixels and sizes that are not multiples
    of them, one level, one pixel apart from the rest, two levels, only levels of 128 and up,
    level 0 present (h[first] at 0) or absent, nearly all pixels on one level, planes large
    enough to be remapped right after their own count."""
    rng = np.random.default_rng(seed)
    skewed = np.zeros((3, 50, 50), np.uint8)
    skewed[:, 0, :3] = [[1, 200, 255], [9, 9, 10], [0, 0, 255]]
    lone = np.full((2, 9, 9), 77, np.uint8)
    lone[1, 4, 4] = 78
    return [rng.integers(60, 120, (40, 96, 96), dtype=np.uint8),
            rng.integers(0, 256, (7, 13, 7), dtype=np.uint8),
            rng.integers(0, 256, (5, 1, 1), dtype=np.uint8),
            rng.integers(0, 256, (4, 2, 3), dtype=np.uint8),
            rng.integers(0, 4, (3, 8, 8), dtype=np.uint8),
            rng.integers(128, 256, (3, 9, 9), dtype=np.uint8),
            rng.integers(0, 256, (2, 130, 129), dtype=np.uint8) // 85 * 85,
            rng.integers(0, 256, (3, 400, 400), dtype=np.uint8),
            np.full((3, 20, 20), 7, np.uint8), lone, skewed,
            np.where(rng.random((2, 33, 31)) < 0.5, 0, 255).astype(np.uint8)]


def cv2_planes(images):
    cv2 = pytest.importorskip("cv2")
    return np.stack([cv2.equalizeHist(plane) for plane in images])


def pil_planes(images):
    image_module = pytest.importorskip("PIL.Image")
    ops = pytest.importorskip("PIL.ImageOps")
    return np.stack([np.asarray(ops.equalize(image_module.fromarray(plane)))
                     for plane in images])


def test_simd_names_the_loops_each_level_allows(monkeypatch):
    assert at_level(monkeypatch, "0", _cpu.simd) == "generic"
    assert at_level(monkeypatch, "avx2", _cpu.simd) in ("generic", "avx2")
    assert at_level(monkeypatch, "auto", _cpu.simd) in ("generic", "avx2", "avx512",
                                                        "avx512-vbmi")


@pytest.mark.parametrize("level", LEVELS)
def test_uint8_equalize_is_bit_exact_with_its_peers_at_every_simd_level(monkeypatch, level):
    """cv2.equalizeHist and PIL.ImageOps.equalize plane by plane, one call per stack, in place,
    and the stacks as one ragged list (packed planes of different sizes, an empty one)."""
    cases = uint8_cases(5)
    at_level(monkeypatch, level, lambda: None)
    for images in cases:
        expected = cv2_planes(images)
        np.testing.assert_array_equal(equalize_hist(images), expected, err_msg=level)
        in_place = images.copy()
        assert equalize_hist(in_place, out=in_place) is in_place
        np.testing.assert_array_equal(in_place, expected, err_msg=level)
        np.testing.assert_array_equal(equalize_hist(images, method="pil"), pil_planes(images),
                                      err_msg=level)
    ragged = [plane for images in cases for plane in images[:2]] + [np.zeros((0, 5), np.uint8)]
    for got, plane in zip(equalize_hist(ragged), ragged):
        np.testing.assert_array_equal(got, cv2_planes(plane[None])[0] if plane.size else plane)


def test_the_pipelined_uint8_equalize_runs_on_this_cpu(monkeypatch):
    """Where the CPU has AVX-512 VBMI, unmasked uint8 planes take the pipelined loop (the
    compiled equalize takes it whenever ``simd()`` says so): the comparisons above then tested
    it, and here a block of the benchmark's size does too."""
    monkeypatch.delenv("GPU_HISTEQ_CPU_SIMD", raising=False)
    if _cpu.simd() != "avx512-vbmi":
        pytest.skip(f"no AVX-512 VBMI here (the kernels use {_cpu.simd()!r} loops)")
    images = np.random.default_rng(6).integers(60, 120, (300, 96, 96), dtype=np.uint8)
    np.testing.assert_array_equal(equalize_hist(images), cv2_planes(images))


@settings(max_examples=60, deadline=None)
@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 40), st.integers(1, 70)),
       low=st.integers(0, 255), width=st.integers(0, 255), seed=st.integers(0, 2**32 - 1))
def test_uint8_equalize_matches_cv2_on_drawn_planes(shape, low, width, seed):
    """Any plane size and any band of levels: the selected (fastest) loops against cv2 and PIL."""
    high = min(255, low + width)
    images = np.random.default_rng(seed).integers(low, high + 1, shape, dtype=np.uint8)
    np.testing.assert_array_equal(equalize_hist(images), cv2_planes(images))
    np.testing.assert_array_equal(equalize_hist(images, method="pil"), pil_planes(images))
