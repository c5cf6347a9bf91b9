"""OpenCV's channel order (issue 22): ``luminance="bgr"`` on what ``cv2.imread`` gives is
bit-exact with OpenCV's ``COLOR_BGR2YCrCb -> equalizeHist / CLAHE of Y -> COLOR_YCrCb2BGR``,
on the compiled (fused and unfused, AVX2 and generic loops) and portable paths, the emulated GPU,
lists and Dask; the errors say what to pass.

One mechanism: the order goes down to the engine steps, whose kernels (``_color.c``,
``color.cu``) read and write the channels where they lie. The tests prove it: the compiled
bindings and the CUDA entry points are spied on (they get ``order="bgr"`` and the caller's own
pixels, not a reversed copy), and on the emulated CuPy a BGR call costs exactly what an RGB call
costs (the same launches, device bytes and allocations).
"""

import contextlib
import inspect

import cv2
import numpy as np
import pytest
from skimage import data

import gpu_histeq as gh
from conftest import is_emulated
from gpu_histeq import _cpu, _cuda, _engine

#: Three RGB photographs cropped to one size and reversed into OpenCV's B, G, R order: an NHWC
#: batch as a loop of cv2.imread calls gives it.
BGR = np.stack([np.ascontiguousarray(image[:96, :128, ::-1])
                for image in (data.astronaut(), data.chelsea(), data.coffee())])


def cv2_bgr_luma(image, apply):
    """OpenCV's luma round trip of one BGR image."""
    ycc = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)
    ycc[..., 0] = apply(np.ascontiguousarray(ycc[..., 0]))
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)


def engine(name):
    if name == "compiled" and not _cpu.BUILT:
        pytest.skip("the compiled extension is not built")
    return _engine.portable() if name == "portable" else contextlib.nullcontext()


def to_numpy(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)


@pytest.mark.parametrize("path", ["compiled", "portable"])
def test_bgr_luminance_is_cv2_bgr_ycrcb_round_trip(path):
    expected = np.stack([cv2_bgr_luma(image, cv2.equalizeHist) for image in BGR])
    nchw = np.moveaxis(BGR, -1, 1).copy()
    with engine(path):
        nhwc = gh.equalize_hist(BGR, channel_axis=-1, luminance="bgr")  # the fused kernel
        channels_first = gh.equalize_hist(nchw, channel_axis=1, luminance="bgr")
        into = np.empty_like(BGR)
        returned = gh.equalize_hist(BGR, channel_axis=-1, luminance="bgr", out=into)
        one = gh.equalize_hist(BGR[1], channel_axis=-1, luminance="bgr")
    assert nhwc.dtype == np.uint8 and nhwc.flags.c_contiguous
    np.testing.assert_array_equal(nhwc, expected)
    np.testing.assert_array_equal(np.moveaxis(channels_first, 1, -1), expected)
    assert returned is into
    np.testing.assert_array_equal(into, expected)
    np.testing.assert_array_equal(one, expected[1])
    # the RGB reading of the same pixels is OpenCV's other conversion, not this one
    assert np.abs(gh.equalize_hist(BGR, channel_axis=-1, luminance=True).astype(int)
                  - expected).max() > 10
    np.testing.assert_array_equal(gh.equalize_hist(BGR, channel_axis=-1, luminance="rgb"),
                                  gh.equalize_hist(BGR, channel_axis=-1, luminance=True))


@pytest.mark.parametrize("path", ["compiled", "portable"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_bgr_clahe_luminance_is_cv2_round_trip(path, dtype):
    apply = cv2.createCLAHE(2.0, (4, 4)).apply
    batch = BGR.astype(dtype) * (257 if dtype == np.uint16 else 1)
    with engine(path):
        result = gh.clahe(batch, 2.0, (4, 4), channel_axis=-1, luminance="bgr")
    assert result.dtype == dtype
    np.testing.assert_array_equal(result, np.stack([cv2_bgr_luma(i, apply) for i in batch]))


def test_bgr_uint16_and_float_are_cv2_conversions():
    wide = BGR.astype(np.uint16) * 257 + 3
    result = gh.equalize_hist(wide, channel_axis=-1, luminance="bgr", method="skimage")
    ycc = np.stack([cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb) for image in wide])
    luma = gh.equalize_hist(ycc[..., 0].copy(), method="skimage")
    ycc[..., 0] = np.rint(luma * 65535).astype(np.uint16)
    np.testing.assert_array_equal(
        result, np.stack([cv2.cvtColor(image, cv2.COLOR_YCrCb2BGR) for image in ycc]))
    floats = (BGR / 255).astype(np.float32)
    reversed_rgb = gh.equalize_hist(np.ascontiguousarray(floats[..., ::-1]), channel_axis=-1,
                                    luminance=True)
    np.testing.assert_array_equal(gh.equalize_hist(floats, channel_axis=-1, luminance="bgr"),
                                  reversed_rgb[..., ::-1])


def test_bgr_on_the_emulated_gpu_backend_lists_and_dask(xp):
    expected = np.stack([cv2_bgr_luma(image, cv2.equalizeHist) for image in BGR])
    result = gh.equalize_hist(xp.asarray(BGR), channel_axis=-1, luminance="bgr")
    np.testing.assert_array_equal(to_numpy(result), expected)
    sizes = [xp.asarray(BGR[0]), xp.asarray(BGR[1, :50, :70])]
    listed = gh.equalize_hist(sizes, channel_axis=-1, luminance="bgr")
    np.testing.assert_array_equal(to_numpy(listed[0]), expected[0])
    np.testing.assert_array_equal(to_numpy(listed[1]),
                                  cv2_bgr_luma(BGR[1, :50, :70].copy(), cv2.equalizeHist))


def test_bgr_dask_equals_in_memory():
    da = pytest.importorskip("dask.array")
    lazy = gh.equalize_hist(da.from_array(BGR, chunks=(1, 96, 128, 3)), channel_axis=-1,
                            luminance="bgr")
    np.testing.assert_array_equal(lazy.compute(),
                                  np.stack([cv2_bgr_luma(i, cv2.equalizeHist) for i in BGR]))
    for dtype in (np.uint16, np.float64):  # channels first, one image split over two chunks
        host = np.ascontiguousarray(np.moveaxis(bgr_pixels(dtype), -1, 1))
        lazy = gh.equalize_hist(da.from_array(host, chunks=(1, 2, 20, 53)), channel_axis=1,
                                luminance="bgr")
        np.testing.assert_array_equal(np.moveaxis(lazy.compute(), 1, -1),
                                      expected_bgr(bgr_pixels(dtype)))
    lazy = gh.clahe(da.from_array(BGR, chunks=(1, 96, 128, 3)), 2.0, (4, 4), channel_axis=-1,
                    luminance="bgr")
    np.testing.assert_array_equal(lazy.compute(), gh.clahe(BGR, 2.0, (4, 4), channel_axis=-1,
                                                           luminance="bgr"))


@pytest.mark.parametrize("luminance, error, match", [
    ("brg", ValueError, r"`luminance` must be True \(RGB\), 'rgb' or 'bgr' \(OpenCV's order"),
    ("BGR", ValueError, r"'bgr'"),
    (1, TypeError, r"`luminance` must be a bool or the channel order 'rgb' or 'bgr'"),
    (None, TypeError, r"`luminance` must be a bool"),
])
def test_bad_luminance_names_the_orders(luminance, error, match):
    for call in (lambda: gh.equalize_hist(BGR, channel_axis=-1, luminance=luminance),
                 lambda: gh.clahe(BGR, channel_axis=-1, luminance=luminance),
                 lambda: gh.equalize_hist(list(BGR), channel_axis=-1, luminance=luminance)):
        with pytest.raises(error, match=match):
            call()


def test_luminance_errors_say_how_to_pass_bgr():
    with pytest.raises(ValueError, match=r"needs `channel_axis`.*pass `luminance='bgr'`"):
        gh.equalize_hist(BGR, axes=(1, 2), luminance=True)
    bgra = np.concatenate([BGR, BGR[..., :1]], axis=-1)
    with pytest.raises(ValueError, match=r"got 4 \(for OpenCV's BGR images pass "
                                         r"`luminance='bgr'`; BGRA: drop the alpha channel"):
        gh.clahe(bgra, channel_axis=-1, luminance="bgr")


# ---- every engine, dtype, channel axis and kind of `out`, against OpenCV's BGR round trip

#: Two BGR images of 41 x 53 pixels: an odd pixel count (the AVX2 steps of 8 pixels leave a
#: tail) over more than one tile of the C loops (1024 pixels).
SMALL = np.ascontiguousarray(BGR[:2, 5:46, 7:60])
#: The channel axis and the moves from and to channels last.
LAYOUTS = {"last": (-1, lambda a: a, lambda a: a),
           "first": (0, lambda a: np.moveaxis(a, -1, 0), lambda a: np.moveaxis(a, 0, -1)),
           "middle": (1, lambda a: np.moveaxis(a, -1, 1), lambda a: np.moveaxis(a, 1, -1))}
OUTS = ["none", "contiguous", "strided", "in-place", "overlapping"]
DTYPES = [np.uint8, np.uint16, np.float32, np.float64]


def bgr_pixels(dtype):
    """`SMALL` as `dtype`: uint16 spread over the range, floats in [0, 1]."""
    if dtype == np.uint16:
        return SMALL.astype(np.uint16) * 257 + 3
    if np.dtype(dtype).kind == "f":
        return (SMALL / 255).astype(dtype)
    return SMALL.copy()


def expected_bgr(bgr, xp=np):
    """The reference of ``equalize_hist(bgr, channel_axis=-1, luminance="bgr")`` per image, on
    the host: OpenCV's BGR round trip with Y equalized by cv2.equalizeHist (uint8) or by the
    uint16 formula on the plain Y planes; floats (whose OpenCV conversion differs by an ulp) the
    RGB path of the portable engine of `xp` on the channels reversed by a copy."""
    if bgr.dtype.kind == "f":
        with _engine.portable():
            rgb = gh.equalize_hist(xp.asarray(np.ascontiguousarray(bgr[..., ::-1])),
                                   channel_axis=-1, luminance=True)
        return np.ascontiguousarray(to_numpy(rgb)[..., ::-1])
    apply = cv2.equalizeHist if bgr.dtype == np.uint8 else gh.equalize_hist
    return np.stack([cv2_bgr_luma(image, apply) for image in bgr])


def target_for(kind, images, xp=np):
    """`images` (possibly moved into a shared buffer) and the `out` of `kind`."""
    if kind == "none":
        return images, None
    if kind == "contiguous":
        return images, xp.empty_like(images)
    if kind == "strided":  # every other element of a wider array
        return images, xp.empty(images.shape[:-1] + (2 * images.shape[-1],), images.dtype)[..., ::2]
    if kind == "in-place":
        return images, images
    # `out` starts 7 elements into the images' own buffer: written directly, it would overwrite
    # pixels not yet read (_validate.out_overlaps sends the result through a temporary)
    buffer = xp.empty(images.size + 7, images.dtype)
    shared = buffer[:images.size].reshape(images.shape)
    shared[...] = images
    return shared, buffer[7:].reshape(images.shape)


class Spy:
    """Records each call of the colour kernels' entry points `names` of `module` (by default the
    compiled bindings): its name, the order it was given and whether the pixels it read are the
    caller's `images` (``inside(rgb, images)``), not a reversed copy."""

    COMPILED = ("rgb_luma", "replace_luma", "luma_counts", "replace_luma_lut")

    def __init__(self, monkeypatch, images, module=_cpu, names=COMPILED,
                 inside=np.shares_memory):
        self.calls = []
        for name in names:
            monkeypatch.setattr(module, name,
                                self._wrap(name, getattr(module, name), images, inside))

    def _wrap(self, name, function, images, inside):
        signature = inspect.signature(function)

        def call(*args, **kwargs):
            arguments = signature.bind(*args, **kwargs)
            arguments.apply_defaults()
            self.calls.append((name, arguments.arguments["order"],
                               inside(arguments.arguments["rgb"], images)))
            return function(*args, **kwargs)
        return call


@pytest.mark.parametrize("out_kind", OUTS)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", ["compiled", "compiled-generic", "portable"])
def test_bgr_every_engine_layout_and_out(monkeypatch, path, dtype, layout, out_kind):
    if path == "compiled-generic":  # the C loops without the AVX2 steps (_color.c)
        monkeypatch.setenv("GPU_HISTEQ_CPU_SIMD", "0")
    channel_axis, to_layout, to_last = LAYOUTS[layout]
    host = bgr_pixels(dtype)
    expected = expected_bgr(host)
    images, out = target_for(out_kind, np.ascontiguousarray(to_layout(host)))
    spy = Spy(monkeypatch, images)
    with engine(path.split("-")[0]):
        result = gh.equalize_hist(images, channel_axis=channel_axis, luminance="bgr", out=out)
    if out is not None:
        assert result is out
    assert result.dtype == dtype and result.shape == images.shape
    np.testing.assert_array_equal(to_last(result), expected)
    if path == "portable" or np.dtype(dtype).kind == "f":  # no compiled conversion of floats
        assert spy.calls == []
        return
    fused = dtype == np.uint8 and layout == "last"
    names = ["luma_counts", "replace_luma_lut"] if fused else ["rgb_luma", "replace_luma"]
    # the kernels read the caller's pixels in BGR order (an overlapping `out` is the one case
    # computed into a temporary; the pixels read are still the caller's)
    assert spy.calls == [(name, "bgr", True) for name in names], spy.calls


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("path", ["compiled", "compiled-generic", "portable"])
def test_bgr_clahe_every_layout(monkeypatch, path, layout):
    if path == "compiled-generic":
        monkeypatch.setenv("GPU_HISTEQ_CPU_SIMD", "0")
    channel_axis, to_layout, to_last = LAYOUTS[layout]
    apply = cv2.createCLAHE(2.0, (4, 4)).apply
    images = np.ascontiguousarray(to_layout(SMALL))
    spy = Spy(monkeypatch, images)
    with engine(path.split("-")[0]):
        result = gh.clahe(images, 2.0, (4, 4), channel_axis=channel_axis, luminance="bgr")
    np.testing.assert_array_equal(to_last(result),
                                  np.stack([cv2_bgr_luma(i, apply) for i in SMALL]))
    assert spy.calls == ([] if path == "portable"
                         else [("rgb_luma", "bgr", True), ("replace_luma", "bgr", True)])


def test_bgr_kernels_equal_rgb_kernels_on_reversed_pixels(monkeypatch):
    """The C kernels' own contract, every exported colour function, both loops: ``order="bgr"``
    on pixels equals ``order="rgb"`` on a reversed copy, reversed back (channels last and
    planar; tails that are not a multiple of 8 pixels)."""
    if not _cpu.BUILT:
        pytest.skip("the compiled extension is not built")
    rng = np.random.default_rng(5)
    for simd in ("1", "0"):
        monkeypatch.setenv("GPU_HISTEQ_CPU_SIMD", simd)
        for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
            for outer, inner in ((2083, 1), (3, 1031), (1, 5)):
                bgr = rng.integers(0, top, (outer, 3, inner), endpoint=True).astype(dtype)
                rgb = np.ascontiguousarray(bgr[:, ::-1])
                luma = _cpu.rgb_luma(bgr, "bgr")
                np.testing.assert_array_equal(luma, _cpu.rgb_luma(rgb))
                new = rng.integers(0, top, (outer, inner), endpoint=True).astype(dtype)
                out, reference = np.empty_like(bgr), np.empty_like(rgb)
                _cpu.replace_luma(bgr, new, out, "bgr")
                _cpu.replace_luma(rgb, new, reference)
                np.testing.assert_array_equal(out, reference[:, ::-1])
                assert not np.array_equal(luma, _cpu.rgb_luma(bgr))  # the order matters
        bgr = rng.integers(0, 255, (4 * 1037, 3, 1), endpoint=True).astype(np.uint8)
        rgb = np.ascontiguousarray(bgr[:, ::-1])
        counts = _cpu.luma_counts(bgr, 4, "bgr")
        np.testing.assert_array_equal(counts, _cpu.luma_counts(rgb, 4))
        tables = rng.integers(0, 255, (4, 256), endpoint=True).astype(np.uint8)
        out, reference = np.empty_like(bgr), np.empty_like(rgb)
        _cpu.replace_luma_lut(bgr, tables, 4, out, "bgr")
        _cpu.replace_luma_lut(rgb, tables, 4, reference)
        np.testing.assert_array_equal(out, reference[:, ::-1])


def starts_inside(array, images):
    """Whether `array`'s first byte lies in `images`' buffer (device pointers: no device work)."""
    first = images.data.ptr
    return first <= array.data.ptr < first + images.nbytes


@pytest.mark.parametrize("out_kind", OUTS)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_bgr_on_cupy_takes_the_kernels_order_without_a_copy(cp, dtype, layout, out_kind):
    """The public ``luminance="bgr"`` on CuPy: the CUDA entry points get ``order="bgr"`` and the
    caller's pixels (the step report shows the CUDA engine wrote), the result is OpenCV's BGR
    round trip, and on the emulated CuPy the call costs what the RGB call costs."""
    channel_axis, to_layout, to_last = LAYOUTS[layout]
    host = bgr_pixels(dtype)
    expected = expected_bgr(host, cp)
    layout_host = np.ascontiguousarray(to_layout(host))

    def call(order):
        images, out = target_for(out_kind, cp.asarray(layout_host), cp)
        return images, lambda: gh.equalize_hist(images, channel_axis=channel_axis,
                                                 luminance=order, out=out)

    images, run = call("bgr")
    with pytest.MonkeyPatch.context() as patch, _engine.recording() as steps:
        spy = Spy(patch, images, _cuda, ("split_luma", "merge_luma", "equalize_luma"),
                  starts_inside)
        result = run()
    assert result.dtype == dtype and result.shape == images.shape
    np.testing.assert_array_equal(to_last(to_numpy(result)), expected)
    # counted, tabled and converted back in the fused kernels (small float planes too: Y
    # recomputed from the pixels, never stored)
    assert [(s.name, s.engine, s.outcome) for s in steps] == [
        ("equalize_luma", "cuda", True)], steps
    assert spy.calls == [("equalize_luma", "bgr", True)]
    if not is_emulated(cp):
        return
    from emulation.counting import counting
    tallies = []
    for order in ("rgb", "rgb", "bgr"):  # the first call builds the kernels
        _, run = call(order)
        with counting() as tally:
            run()
        tallies.append(tally)
    rgb, bgr = tallies[1:]
    assert rgb.kernel_launches >= 1
    assert bgr.kernels == rgb.kernels and bgr.operations == rgb.operations
    assert (bgr.device_bytes, bgr.allocated_bytes, len(bgr.syncs), bgr.h2d_bytes) == (
        rgb.device_bytes, rgb.allocated_bytes, len(rgb.syncs), rgb.h2d_bytes)
    assert "ascontiguousarray" not in bgr.operations and "copy" not in bgr.operations


@pytest.mark.parametrize("dtype", [np.float16, np.uint32])
def test_bgr_without_conversion_kernels_takes_a_reversed_view(xp, dtype):
    """float16 and uint32 have no conversion kernel (C or CUDA: "uncovered"): the portable
    conversion reads the channels through a reversed view, as the RGB path on a reversed copy."""
    host = (SMALL / 255).astype(dtype) if dtype == np.float16 else SMALL.astype(dtype) * 4099
    with np.errstate(all="ignore"):
        result = gh.equalize_hist(xp.asarray(host), channel_axis=-1, luminance="bgr")
        with _engine.portable():
            reference = gh.equalize_hist(xp.asarray(np.ascontiguousarray(host[..., ::-1])),
                                         channel_axis=-1, luminance=True)
    assert result.dtype == (np.float32 if dtype == np.float16 else dtype)
    np.testing.assert_array_equal(to_numpy(result), to_numpy(reference)[..., ::-1])
    assert not np.array_equal(to_numpy(result), to_numpy(reference))  # the order mattered
