"""``luminance=True`` on CUDA (``gpu_histeq/_cuda/color.cu``): the RGB <-> YCrCb round trip
fused with the count and the remap, bit for bit the portable path (``gpu_histeq/color.py``),
which is OpenCV's ``COLOR_RGB2YCrCb`` / ``COLOR_YCrCb2RGB`` for uint8.

Every case proves the kernels wrote the result: direct calls answer True (``assert_wrote``), and
public calls are recorded (``_engine.recording``) with the luma steps answered True by the CUDA
engine and the luma kernels counted in the emulator's launches.
"""

import contextlib

import numpy as np
import pytest

from conftest import CUPY, assert_declined, assert_wrote, expect_decline, is_emulated
from gpu_histeq import _cuda, _engine, clahe, color, equalize_hist

cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")

DTYPES = [np.uint8, np.uint16, np.float32, np.float64]


def pixels(dtype, shape, kind="random", seed=0):
    """Host RGB of `dtype`: random, constant, extremes (only the lowest and highest values)."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        values = {"random": lambda: rng.random(shape), "constant": lambda: np.full(shape, 0.3),
                  "extremes": lambda: rng.choice([0.0, 1.0], shape)}[kind]()
        return values.astype(dtype)
    top = np.iinfo(dtype).max
    values = {"random": lambda: rng.integers(0, top, shape, endpoint=True),
              "constant": lambda: np.full(shape, top // 3),
              "extremes": lambda: rng.choice([0, top], shape)}[kind]()
    return values.astype(dtype)


def launched(cp, before):
    """Kernels the emulator ran since the copy `before` of its launch counts (None on a GPU)."""
    if before is None:
        return None
    return {k for k, n in cp.LAUNCHES.items() if n > before.get(k, 0)}


def run(cp, function, images, **options):
    """`function` on `images`, the engine steps it recorded and the kernels it launched."""
    before = dict(cp.LAUNCHES) if is_emulated(cp) else None
    with _engine.recording() as steps:
        result = function(images, **options)
    return result, [(s.name, s.outcome) for s in steps], launched(cp, before)


def portable(function, images, **options):
    with _engine.portable():
        return function(images, **options)


def assert_same(result, expected):
    assert result.dtype == expected.dtype and result.shape == expected.shape
    np.testing.assert_array_equal(result.get().view(np.uint8), expected.get().view(np.uint8))


# ---- the entry points, against color.py on the host

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ["rgb", "bgr"])
@pytest.mark.parametrize("inner", [1, 37])
def test_split_and_merge_equal_color_py(cp, dtype, order, inner):
    host = pixels(dtype, (23, 3, inner))
    new_host = pixels(dtype, (23, inner), seed=5)
    rgb, new_luma = cp.asarray(host), cp.asarray(new_host)
    view = host[:, ::-1] if order == "bgr" else host
    luma = cp.empty((23, inner), dtype)
    assert_wrote(_cuda.split_luma(rgb, order, luma))
    expected_luma, chroma = color.split_luma(np, view)
    np.testing.assert_array_equal(luma.get(), expected_luma)

    out = cp.empty_like(rgb)
    assert_wrote(_cuda.merge_luma(rgb, new_luma, order, out))
    expected = np.empty_like(host)
    with np.errstate(all="ignore"):
        color.merge_luma(np, new_host, chroma, expected[:, ::-1] if order == "bgr" else expected)
    np.testing.assert_array_equal(out.get().view(np.uint8), expected.view(np.uint8))
    np.testing.assert_array_equal(rgb.get(), host)  # the input is left alone


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_merge_takes_skimage_cdf_values_to_levels(cp, dtype):
    host = pixels(dtype, (40, 3, 1), kind="extremes")
    cdf = np.random.default_rng(2).random((40, 1))
    cdf[:4, 0] = (0.0, 1.0, 0.5 / np.iinfo(dtype).max, 1.5 / np.iinfo(dtype).max)  # halves: even
    out = cp.empty((40, 3, 1), dtype)
    assert_wrote(_cuda.merge_luma(cp.asarray(host), cp.asarray(cdf), "rgb", out))
    levels = np.rint(cdf * np.iinfo(dtype).max).astype(dtype)
    expected = np.empty_like(host)
    color.merge_luma(np, levels, color.split_luma(np, host)[1], expected)
    np.testing.assert_array_equal(out.get(), expected)


def test_entry_points_decline_what_they_do_not_cover(cp):
    half = cp.zeros((4, 3, 1), np.float16)
    assert_declined(_cuda.split_luma(half, "rgb", cp.empty((4, 1), np.float16)), "uncovered")
    rgb = cp.zeros((4, 3, 2), np.uint8)
    assert_declined(_cuda.split_luma(rgb, "rbg", cp.empty((4, 2), np.uint8)), "uncovered")
    assert_declined(_cuda.merge_luma(rgb, cp.zeros((4, 2), np.float32), "rgb",
                                     cp.empty_like(rgb)), "uncovered")
    assert_declined(_cuda.merge_luma(rgb, cp.zeros((4, 2), np.uint8), "rgb",
                                     cp.empty((4, 3, 4), np.uint8)[:, :, ::2]), "uncovered")
    floats = cp.zeros((8, 3, 1), np.float32)  # floats past one block: split, uniform, merge
    for nplanes, method, nbins in ((2, "skimage", 257), (2, "opencv", 256)):
        assert_declined(_cuda.equalize_luma(floats, nplanes, method, "rgb",
                                            cp.empty_like(floats), nbins), "uncovered")
    large = cp.zeros((65537, 3, 1), np.float32)
    assert_declined(_cuda.equalize_luma(large, 1, "skimage", "rgb", cp.empty_like(large)),
                    "uncovered")
    wide = cp.zeros((8, 3, 1), np.uint16)
    assert_declined(_cuda.equalize_luma(wide, 2, "pil", "rgb", cp.empty_like(wide)), "uncovered")
    assert_declined(_cuda.equalize_luma(wide, 3, "opencv", "rgb", cp.empty_like(wide)),
                    "uncovered")  # planes that do not divide the pixels


@pytest.mark.parametrize("method", ["opencv", "pil", "skimage"])
@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_fused_entry_point_equals_portable_luma_path(cp, method, order):
    host = pixels(np.uint8, (3, 20, 30, 3))
    images = cp.asarray(host)
    out = cp.empty_like(images)
    assert_wrote(_cuda.equalize_luma(images.reshape(-1, 3, 1), 3, method, order,
                                     out.reshape(-1, 3, 1)))
    flipped = cp.asarray(np.ascontiguousarray(host[..., ::-1])) if order == "bgr" else images
    expected = portable(lambda x: equalize_hist(x, channel_axis=-1, luminance=True,
                                                method=method), flipped)
    expected = expected.get()[..., ::-1] if order == "bgr" else expected.get()
    np.testing.assert_array_equal(out.get(), expected)


# ---- the public calls

def photographs():
    return {"astronaut": skimage_data.astronaut(), "chelsea": skimage_data.chelsea(),
            "coffee": skimage_data.coffee()}


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_photographs_equal_opencv_and_the_portable_path(cp, name):
    host = photographs()[name]  # more than 65536 pixels: luma histograms, tables, remap
    small = np.ascontiguousarray(host[::4, ::4])  # below: the one-launch kernel
    for image, kernels in ((host, {"gpu_histeq_luma_histogram<unsigned char>",
                                   "gpu_histeq_level_tables<0, unsigned char>",
                                   "gpu_histeq_luma_remap<unsigned char, unsigned char>"}),
                           (small, {"gpu_histeq_equalize_luma_small_u8<0, unsigned char>"})):
        images = cp.asarray(np.stack([image, image[::-1]]))
        result, steps, ran = run(cp, equalize_hist, images, channel_axis=-1, luminance=True)
        assert_same(result, portable(equalize_hist, images, channel_axis=-1, luminance=True))
        for plane, picture in zip(result.get(), (image, image[::-1])):
            ycrcb = cv2.cvtColor(np.ascontiguousarray(picture), cv2.COLOR_RGB2YCrCb)
            ycrcb[..., 0] = cv2.equalizeHist(np.ascontiguousarray(ycrcb[..., 0]))
            np.testing.assert_array_equal(plane, cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB))
        assert steps == [("equalize_luma", True)], steps
        assert ran is None or ran == kernels, ran


CASES = {  # name: (shape, channel axis, kind)
    "1x1": ((1, 1, 3), -1, "random"),
    "one-row": ((5, 1, 7, 3), -1, "random"),
    "constant": ((2, 9, 11, 3), -1, "constant"),
    "extremes": ((3, 16, 16, 3), -1, "extremes"),
    "channels-first": ((3, 3, 17, 19), 1, "random"),
    "large-plane": ((1, 260, 270, 3), -1, "random"),
}


#: The methods of each dtype (pil: uint8 only; floats: skimage only).
DTYPE_METHODS = [(np.uint8, "opencv"), (np.uint8, "pil"), (np.uint8, "skimage"),
                 (np.uint16, "opencv"), (np.uint16, "skimage"), (np.float32, "skimage"),
                 (np.float64, "skimage")]


@pytest.mark.parametrize("dtype, method", DTYPE_METHODS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_edge_cases_equal_the_portable_path(cp, dtype, case, method):
    shape, channel_axis, kind = CASES[case]
    images = cp.asarray(pixels(dtype, shape, kind))
    options = dict(channel_axis=channel_axis, luminance=True, method=method)
    result, steps, ran = run(cp, equalize_hist, images, **options)
    with np.errstate(all="ignore"):
        assert_same(result, portable(equalize_hist, images, **options))
    large = case == "large-plane"  # 70200 pixels
    if np.dtype(dtype).kind == "u" or not large:  # Y computed in the kernels, never stored
        assert steps == [("equalize_luma", True)], steps
        if ran is not None:
            one = {np.dtype(np.uint8): "gpu_histeq_equalize_luma_small_u8",
                   np.dtype(np.uint16): "gpu_histeq_equalize_luma_ranked",
                   np.dtype(np.float32): "gpu_histeq_equalize_luma_small_float",
                   np.dtype(np.float64): "gpu_histeq_equalize_luma_small_float"}[np.dtype(dtype)]
            assert all("luma" in k or "level_tables" in k for k in ran), ran
            assert {k.split("<")[0] for k in ran} == (
                {"gpu_histeq_luma_histogram", "gpu_histeq_level_tables", "gpu_histeq_luma_remap"}
                if large else {one}), ran
    else:  # large float planes: Y stored, the uniform kernels, then the round trip
        assert steps[0][0] == "equalize_luma" and steps[1:] == [
            ("split_luma", True), ("equalize", True), ("merge_luma", True)], steps


@pytest.mark.parametrize("dtype", DTYPES)
def test_masks_take_the_split_and_merge_kernels(cp, dtype):
    host = pixels(dtype, (3, 21, 22, 3))
    selected = np.random.default_rng(3).random((3, 21, 22, 1)) < 0.4
    selected[:, 0, 0] = True
    images, mask = cp.asarray(host), cp.asarray(np.broadcast_to(selected, host.shape).copy())
    result, steps, _ = run(cp, equalize_hist, images, mask=mask, channel_axis=-1, luminance=True)
    with np.errstate(all="ignore"):
        expected = portable(lambda x: equalize_hist(x, mask=mask, channel_axis=-1,
                                                    luminance=True), images)
    assert_same(result, expected)
    assert [s for s in steps if "luma" in s[0]] == [("split_luma", True), ("merge_luma", True)]


@pytest.mark.parametrize("dtype, shape", [(np.uint8, (4, 12, 13, 3)), (np.uint8, (1, 300, 230, 3)),
                                          (np.uint16, (2, 12, 13, 3)), (np.float32, (2, 12, 13, 3))])
def test_out_and_in_place_receive_the_kernels_result(cp, dtype, shape):
    """Into `out`, and into the images themselves (each pixel is read before its thread writes
    it; the counts are complete before the first write)."""
    images = cp.asarray(pixels(dtype, shape))
    expected = portable(equalize_hist, images, channel_axis=-1, luminance=True)
    out = cp.zeros_like(images)
    with _engine.recording() as steps:
        assert equalize_hist(images, channel_axis=-1, luminance=True, out=out) is out
        assert equalize_hist(images, channel_axis=-1, luminance=True, out=images) is images
    assert_same(out, expected)
    assert_same(images, expected)
    assert steps and all(s.outcome is True for s in steps), steps


def test_float16_is_uncovered_and_equals_the_portable_path(cp):
    images = cp.asarray(pixels(np.float16, (2, 10, 10, 3)))
    result, steps, _ = run(cp, equalize_hist, images, channel_axis=-1, luminance=True)
    assert_same(result, portable(equalize_hist, images, channel_axis=-1, luminance=True))
    assert ("split_luma", True) not in steps and steps, steps
    assert all(not outcome for name, outcome in steps if "luma" in name), steps


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_clahe_luminance_converts_in_the_kernels(cp, dtype):
    images = cp.asarray(pixels(dtype, (2, 40, 50, 3)))
    def call(x):
        return clahe(x, 2.0, (4, 4), channel_axis=-1, luminance=True)

    result, steps, _ = run(cp, call, images)
    assert_same(result, portable(call, images))
    assert ("split_luma", True) in steps and ("merge_luma", True) in steps, steps


def test_shared_memory_within_48_kib(monkeypatch):
    """Static shared memory of every color.cu kernel as NVRTC compiles it for sm_90 (the
    ``.nv.shared.<kernel>`` section of the cubin), plus the most dynamic shared memory its
    launcher asks (the uint8 luma histograms: GPU_HISTEQ_WARPS x 256 counts; the uint16 keys of
    the rank kernel: _ranks.SHARED_BYTES), within the 48 KiB a block gets without opting in."""
    pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-bindings (NVRTC) is not installed")
    from emulation import build
    from gpu_histeq._cuda import _sources
    names = _sources.INSTANTIATIONS["color.cu"]
    static = build.static_shared(_sources.source("color.cu"), _sources.OPTIONS, names, "color.cu")
    small = "gpu_histeq_equalize_luma_small_u8<2, double>"
    assert static[small] >= 8 * 256 * 4 + 256 * 8  # warp histograms and the double table
    if CUPY is None:  # the launcher module imports cupy: the stand-in, for its constant
        from emulation import fake_cupy
        fake_cupy.install(monkeypatch)
    from gpu_histeq._cuda._ranks import SHARED_BYTES  # the uint16 keys sorted by rank
    dynamic = {"gpu_histeq_luma_histogram<unsigned char>": 8 * 256 * 4,
               "gpu_histeq_equalize_luma_ranked<unsigned short, 0>": SHARED_BYTES,
               "gpu_histeq_equalize_luma_ranked<unsigned short, 2>": SHARED_BYTES}
    for name in names:
        assert static[name] + dynamic.get(name, 0) <= 48 * 1024, (name, static[name])


@pytest.mark.parametrize("dtype", DTYPES)
def test_engine_steps_take_the_bgr_order_on_every_engine(cp, dtype):
    """``order="bgr"``: the CUDA kernels swap the channel offsets, the compiled ones (NumPy
    uint8/uint16) start at the third channel, the portable path takes a reversed view. Each
    equals the portable RGB path on the channels reversed."""
    host = pixels(dtype, (30, 3, 2))
    new_luma = pixels(dtype, (30, 2), seed=4)
    flipped = np.ascontiguousarray(host[:, ::-1])
    with _engine.portable(), np.errstate(all="ignore"):
        expected_luma, chroma = _engine.split_luma(np, flipped)
        expected = np.empty_like(flipped)
        _engine.merge_luma(np, flipped, new_luma, chroma, expected)
    for xp in (np, cp):
        rgb = xp.asarray(host)
        with _engine.recording() as steps, np.errstate(all="ignore"):
            luma, state = _engine.split_luma(xp, rgb, "bgr")
            out = xp.empty_like(rgb)
            _engine.merge_luma(xp, rgb, xp.asarray(new_luma), state, out, "bgr")
        luma, out = (a.get() if hasattr(a, "get") else a for a in (luma, out))
        np.testing.assert_array_equal(luma, expected_luma)
        np.testing.assert_array_equal(out[:, ::-1].view(np.uint8), expected.view(np.uint8))
        if xp is cp:
            assert [(s.name, s.outcome) for s in steps] == [("split_luma", True),
                                                            ("merge_luma", True)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_floats_equal_the_flushed_reference(cp, dtype):
    """Pixels near and below the smallest normal among normal ones: float32 arithmetic flushes
    subnormals on the GPU (-ftz=true, as CuPy's own kernels), so on the emulator the portable
    reference runs with the x86 FTZ / DAZ bits (``fake_cupy.flushed_float32``); float64 keeps
    them on both. (Here the subnormal terms vanish against the equalized, normal luma, so the
    unflushed reference agrees too: the case guards the conversion, not the flush.)"""
    tiny = np.finfo(dtype).tiny
    host = pixels(dtype, (2, 9, 10, 3))
    corner = np.array([tiny, tiny / 2, tiny / 8, 0, 3 * tiny, tiny * 1e-3], dtype)
    host[:, :6, 0] = np.random.default_rng(8).permutation(np.tile(corner, 3)).reshape(6, 3)
    images = cp.asarray(host)
    result, steps, _ = run(cp, equalize_hist, images, channel_axis=-1, luminance=True)
    flushed = is_emulated(cp) and dtype == np.float32
    with (cp.flushed_float32() if flushed else contextlib.nullcontext()), \
            np.errstate(all="ignore"):
        expected = portable(equalize_hist, images, channel_axis=-1, luminance=True)
    assert_same(result, expected)
    assert steps == [("equalize_luma", True)], steps


# ---- uint16 by rank and small floats: one launch, Y never stored

@pytest.mark.parametrize("method", ["opencv", "skimage"])
@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_uint16_planes_by_rank_equal_the_portable_path(cp, method, order):
    """uint16 planes of at most _ranks.SHARED_PIXELS[2] pixels: one launch of
    gpu_histeq_equalize_luma_ranked (no 65536-bin histogram or table); one more pixel takes the
    luma histograms, the tables and the remap. Extremes 0 / 65535 and a narrow band, either
    channel order, against the portable path (OpenCV's YCrCb conversion, the method's table)."""
    from gpu_histeq._cuda._ranks import SHARED_PIXELS
    rng = np.random.default_rng(11)
    limit = SHARED_PIXELS[2]
    for pixels_per_plane, kernel in ((limit, "gpu_histeq_equalize_luma_ranked"),
                                     (limit + 1, "gpu_histeq_luma_remap")):
        host = rng.choice(np.array([0, 1, 65534, 65535, 30000, 30001], np.uint16),
                          (2, pixels_per_plane, 1, 3))
        host[1] = rng.integers(40000, 40100, host.shape[1:])
        images = cp.asarray(host)
        before = dict(cp.LAUNCHES) if is_emulated(cp) else None
        out = cp.empty_like(images)
        assert_wrote(_cuda.equalize_luma(images.reshape(-1, 3, 1), 2, method, order,
                                         out.reshape(-1, 3, 1)))
        ran = launched(cp, before)
        assert ran is None or any(k.startswith(kernel) for k in ran), ran
        flipped = cp.asarray(np.ascontiguousarray(host[..., ::-1])) if order == "bgr" else images
        expected = portable(lambda x: equalize_hist(x, channel_axis=-1, luminance=True,
                                                    method=method), flipped).get()
        np.testing.assert_array_equal(out.get(), expected[..., ::-1] if order == "bgr" else expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nbins", [1, 7, 256])
def test_small_float_planes_in_one_launch(cp, dtype, nbins):
    """Float planes of at most 65536 pixels with at most 256 bins: one launch of
    gpu_histeq_equalize_luma_small_float (Y recomputed at each pass, never stored), one status
    word read; larger bins counts take the split, the uniform kernels and the merge."""
    host = pixels(dtype, (3, 17, 23, 3))
    host[1] = 0.25  # a constant plane: its range widened by 0.5 each side
    images = cp.asarray(host)
    result, steps, ran = run(cp, equalize_hist, images, channel_axis=-1, luminance=True,
                             nbins=nbins)
    assert_same(result, portable(equalize_hist, images, channel_axis=-1, luminance=True,
                                 nbins=nbins))
    assert steps == [("equalize_luma", True)], steps
    assert ran is None or ran == {f"gpu_histeq_equalize_luma_small_float<"
                                  f"{'float' if dtype == np.float32 else 'double'}>"}, ran
    out = cp.empty_like(images)  # BGR order: the kernel swaps the channel offsets
    assert_wrote(_cuda.equalize_luma(images.reshape(-1, 3, 1), 3, "skimage", "bgr",
                                     out.reshape(-1, 3, 1), nbins))
    flipped = cp.asarray(np.ascontiguousarray(host[..., ::-1]))
    expected = portable(equalize_hist, flipped, channel_axis=-1, luminance=True, nbins=nbins)
    np.testing.assert_array_equal(out.get().view(np.uint8),
                                  np.ascontiguousarray(expected.get()[..., ::-1]).view(np.uint8))
    result, steps, _ = run(cp, equalize_hist, images, channel_axis=-1, luminance=True, nbins=300)
    assert_same(result, portable(equalize_hist, images, channel_axis=-1, luminance=True,
                                 nbins=300))
    assert steps[0][0] == "equalize_luma" and steps[1:] == [
        ("split_luma", True), ("equalize", True), ("merge_luma", True)], steps


def test_small_float_errors_are_the_portable_errors(cp):
    """NaN in the pixels and bins too many for a plane's range of Y raise as the portable path
    does; a plane a few float64 subnormals wide is declined as "irregular" after the kernel ran
    and redone by the portable interpolation (equal to it)."""
    nan = pixels(np.float32, (2, 5, 6, 3))
    nan[1, 2, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity") as raised:
        equalize_hist(cp.asarray(nan), channel_axis=-1, luminance=True)
    import traceback  # found by the kernel's status word, not by a check before it
    assert any(f.filename.endswith("_luma.py")
               for f in traceback.extract_tb(raised.value.__traceback__))
    with _engine.portable(), pytest.raises(ValueError, match="NaN or infinity"):
        equalize_hist(cp.asarray(nan), channel_axis=-1, luminance=True)
    narrow = np.full((1, 4, 4, 3), 1.0, np.float32)
    narrow[0, 0, 0] = np.nextafter(np.float32(1.0), np.float32(2.0))
    for call in (lambda: equalize_hist(cp.asarray(narrow), channel_axis=-1, luminance=True,
                                       nbins=256),):
        with pytest.raises(ValueError, match="too many"):
            call()
        with _engine.portable(), pytest.raises(ValueError, match="too many"):
            call()
    expect_decline("irregular")
    subnormal = np.array([0.0, 392553, 396459, 1000000]) * 5e-324
    tiny = cp.asarray(np.repeat(subnormal.reshape(1, 4, 1, 1), 3, axis=3).copy())
    result, steps, _ = run(cp, equalize_hist, tiny, channel_axis=-1, luminance=True)
    with np.errstate(all="ignore"):
        assert_same(result, portable(equalize_hist, tiny, channel_axis=-1, luminance=True))
    assert steps[0][0] == "equalize_luma" and steps[0][1].reason == "irregular", steps
