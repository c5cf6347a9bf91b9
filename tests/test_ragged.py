"""Ragged batches: a list or tuple of arrays of any sizes gives, entry for entry, exactly what the
per-image calls give (every method and dtype, masks, batch axes of an entry, zero-size and empty
inputs), on NumPy and on the emulated CuPy backend; bad lists are refused clearly."""

import numpy as np
import pytest
from conftest import assert_backend, assert_declined, expect_decline, to_numpy
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import contextlib

import gpu_histeq
from gpu_histeq import _cpu, _engine, _planes
from gpu_histeq._interop import _lists, _packed, ragged

AXES = (-2, -1)


def ragged_images(dtype, seed=0, count=9, high=None):
    """Images of many sizes: 1x1, constant, two-level, narrow range, a (3, H, W) entry whose
    planes join the batch, a zero-size one, and random sizes."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)

    def draw(shape, low=0, top=None):
        if dtype.kind == "f":
            return (rng.random(shape) * 2 - 0.5).astype(dtype)
        info = np.iinfo(dtype)
        top = min(info.max, 1000 if high is None else high) if top is None else top
        return rng.integers(max(info.min, -50 if dtype.kind == "i" else 0), top + 1, shape,
                            dtype=dtype)

    images = [draw((1, 1)), np.full((5, 7), 3, dtype), draw((6, 5), top=1), draw((2, 9, 11)),
              np.zeros((0, 4), dtype), draw((40, 33))]
    images += [draw(tuple(rng.integers(1, 60, 2))) for _ in range(count)]
    return images


def same(result, expected):
    result = to_numpy(result)
    assert result.dtype == expected.dtype and result.shape == expected.shape
    np.testing.assert_array_equal(result, expected)


def device_list(xp, images):
    return [xp.asarray(image) for image in images]


CASES = [(np.uint8, "opencv", 256), (np.uint8, "pil", 256), (np.uint8, "skimage", 256),
         (np.uint16, "opencv", 256), (np.uint16, "skimage", 256), (np.int16, "skimage", 256),
         (np.int32, "skimage", 256), (np.float16, "skimage", 64), (np.float32, "skimage", 256),
         (np.float64, "skimage", 100)]


def engine(portable):
    """The portable packed path, or the selected engine (the compiled buckets on the CPU)."""
    return _engine.portable() if portable else contextlib.nullcontext()


@pytest.mark.parametrize("portable", [False, True], ids=["selected", "portable"])
@pytest.mark.parametrize("dtype, method, nbins", CASES)
def test_equalize_list_equals_per_image(xp, dtype, method, nbins, portable):
    images = ragged_images(dtype)
    with engine(portable):
        results = gpu_histeq.equalize_hist(device_list(xp, images), nbins, axes=AXES,
                                           method=method)
    assert isinstance(results, list) and len(results) == len(images)
    for result, image in zip(results, images):
        assert_backend(result, xp)
        same(result, gpu_histeq.equalize_hist(image, nbins, axes=AXES, method=method))


@pytest.mark.parametrize("portable", [False, True], ids=["selected", "portable"])
@pytest.mark.parametrize("dtype, method", [(np.uint8, "opencv"), (np.uint8, "pil"),
                                           (np.uint16, "skimage"), (np.float32, "skimage")])
def test_equalize_masks_equal_per_image(xp, dtype, method, portable):
    images = ragged_images(dtype, seed=1)
    rng = np.random.default_rng(2)
    masks = [rng.random(image.shape) < 0.6 for image in images]
    for mask in masks:
        if mask.size:  # every plane keeps a selected pixel
            mask[..., 0, 0] = True
    masks[3] = None  # every pixel of that image
    masks[5] = np.ones(images[5].shape[-1], bool)  # broadcast like the per-image call
    with engine(portable):
        results = gpu_histeq.equalize_hist(
            device_list(xp, images), axes=AXES, method=method,
            mask=[None if m is None else xp.asarray(m) for m in masks])
    for result, image, mask in zip(results, images, masks):
        same(result, gpu_histeq.equalize_hist(image, axes=AXES, method=method, mask=mask))


@pytest.mark.parametrize("luminance", [True, "bgr"])
@pytest.mark.parametrize("portable", [False, True], ids=["selected", "portable"])
@pytest.mark.parametrize("dtype, method", [(np.uint8, "opencv"), (np.uint8, "pil"),
                                           (np.uint16, "skimage"), (np.float32, "skimage")])
def test_equalize_luminance_equals_per_image(xp, dtype, method, portable, luminance):
    rng = np.random.default_rng(15)
    shapes = [(7, 5, 3), (40, 9, 3), (1, 1, 3), (0, 4, 3), (2, 17, 6, 3)]
    if np.dtype(dtype).kind == "f":
        images = [rng.random(shape).astype(dtype) for shape in shapes]
    else:
        images = [rng.integers(0, 200, shape).astype(dtype) for shape in shapes]
    masks = [rng.random(image.shape[:-1] + (1,)) < 0.7 for image in images]
    for mask in masks:
        if mask.size:
            mask[..., 0, 0, :] = True
    for mask_list in (None, masks):
        with engine(portable):
            results = gpu_histeq.equalize_hist(
                device_list(xp, images), axes=(-3, -2), channel_axis=-1, luminance=luminance,
                method=method, mask=None if mask_list is None else device_list(xp, mask_list))
        for k, (result, image) in enumerate(zip(results, images)):
            assert_backend(result, xp)
            same(result, gpu_histeq.equalize_hist(
                image, axes=(-3, -2), channel_axis=-1, luminance=luminance, method=method,
                mask=None if mask_list is None else mask_list[k]))


def test_luminance_buckets_in_several_groups(monkeypatch):
    """Colour lists cut into several padded luma buckets and groups give the per-image results."""
    rng = np.random.default_rng(16)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
              for h, w in [(5, 6), (30, 2), (9, 9), (1, 1), (40, 33), (8, 9), (0, 3)]]
    monkeypatch.setattr(ragged, "BUCKET_PIXELS", 60)
    monkeypatch.setattr(ragged, "BUCKETS_PER_OCTAVE", 1)
    results = gpu_histeq.equalize_hist(images, axes=(0, 1), channel_axis=2, luminance=True)
    for result, image in zip(results, images):
        same(result, gpu_histeq.equalize_hist(image, axes=(0, 1), channel_axis=2,
                                              luminance=True))


def test_mask_selecting_nothing_names_the_image():
    images = ragged_images(np.uint8)
    masks = [np.ones(image.shape, bool) for image in images]
    masks[3][1] = False  # plane 1 of the (2, 9, 11) entry
    with pytest.raises(ValueError, match="`mask` selects no pixel of plane 1 of image 3"):
        gpu_histeq.equalize_hist(images, axes=AXES, mask=masks)


@pytest.mark.parametrize("dtype, nbins", [(np.uint8, 256), (np.uint16, 256), (np.int16, 7),
                                          (np.float32, 30), (np.float64, 256)])
@pytest.mark.parametrize("function", ["histogram", "cumulative_distribution"])
@pytest.mark.parametrize("portable", [False, True], ids=["selected", "portable"])
def test_histograms_equal_per_image(xp, dtype, nbins, function, portable):
    images = ragged_images(dtype, seed=3)
    rng = np.random.default_rng(4)
    masks = [rng.random(image.shape) < 0.7 for image in images]
    for mask in masks:
        if mask.size:
            mask[..., -1, -1] = True
    fn = getattr(gpu_histeq, function)
    for mask_list in (None, masks):
        device_masks = None if mask_list is None else device_list(xp, mask_list)
        with engine(portable):
            results = fn(device_list(xp, images), nbins, axes=AXES, mask=device_masks)
        for k, (image, pair) in enumerate(zip(images, results)):
            mask = None if mask_list is None else mask_list[k]
            expected = fn(image, nbins, axes=AXES, mask=mask)
            assert isinstance(pair, tuple) and len(pair) == 2
            for part, want in zip(pair, expected):
                assert_backend(part, xp)
                same(part, want)


def test_apply_lut_shared_and_per_image(xp):
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 200, shape, dtype=np.uint8)
              for shape in [(1, 1), (3, 8, 9), (0, 3), (17, 4), (2, 0, 5)]]
    shared = rng.random(200).astype(np.float32)
    for result, image in zip(gpu_histeq.apply_lut(device_list(xp, images), xp.asarray(shared),
                                                  axes=AXES), images):
        assert_backend(result, xp)
        same(result, gpu_histeq.apply_lut(image, shared, axes=AXES))
    tables = [rng.integers(-9, 9, image.shape[:-2] + (200 + 3 * k,)).astype(np.int16)
              for k, image in enumerate(images)]
    tables[0] = tables[0].reshape(-1)
    results = gpu_histeq.apply_lut(tuple(device_list(xp, images)), device_list(xp, tables),
                                   axes=AXES)
    for result, image, table in zip(results, images, tables):
        same(result, gpu_histeq.apply_lut(image, table, axes=AXES))


@pytest.mark.parametrize("dtype, ref_dtype", [(np.uint8, np.uint8), (np.uint16, np.uint8),
                                               (np.int16, np.float32), (np.float32, np.float32),
                                               (np.float64, np.uint8)])
def test_match_histograms_equals_per_image(xp, dtype, ref_dtype):
    images = ragged_images(dtype, seed=12, count=6)
    rng = np.random.default_rng(13)

    def reference(shape):
        if np.dtype(ref_dtype).kind == "f":
            return rng.random(shape).astype(ref_dtype)
        return rng.integers(3, 250, shape).astype(ref_dtype)

    shared = reference((23, 31))
    # one reference per image: any size, one per plane for the (2, 9, 11) entry
    own = [reference((2, 7, 5) if image.ndim == 3 else tuple(rng.integers(1, 40, 2)))
           for image in images]
    for refs in (shared, own):
        device_refs = xp.asarray(refs) if refs is shared else device_list(xp, refs)
        results = gpu_histeq.match_histograms(device_list(xp, images), device_refs, axes=AXES)
        for k, (result, image) in enumerate(zip(results, images)):
            assert_backend(result, xp)
            same(result, gpu_histeq.match_histograms(
                image, refs if refs is shared else refs[k], axes=AXES))


def test_match_histograms_channels_and_wide_integers():
    rng = np.random.default_rng(14)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(5, 9), (30, 2)]]
    reference = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    results = gpu_histeq.match_histograms(images, reference, axes=(0, 1), channel_axis=2)
    for result, image in zip(results, images):
        same(result, gpu_histeq.match_histograms(image, reference, axes=(0, 1), channel_axis=2))
    # one image's range is too wide for level tables: the batch sorts, each image alone may not
    wide = [rng.integers(0, 100, (20, 30)).astype(np.int32),
            rng.integers(-3_000_000, 3_000_000, (25, 17)).astype(np.int32)]
    reference = rng.integers(0, 50, (10, 10)).astype(np.int32)
    for result, image in zip(gpu_histeq.match_histograms(wide, reference, axes=AXES), wide):
        same(result, gpu_histeq.match_histograms(image, reference, axes=AXES))
    with pytest.raises(TypeError, match="`reference` arrays must share one dtype"):
        gpu_histeq.match_histograms(wide, [reference, reference.astype(np.int64)], axes=AXES)
    with pytest.raises(TypeError, match="`reference` must be unsigned like `images`"):
        gpu_histeq.match_histograms(images, reference, axes=(0, 1), channel_axis=2)
    assert gpu_histeq.match_histograms([], reference) == []


def test_apply_lut_refusals():
    images = [np.array([[0, 5]], np.uint8), np.array([[0, 9]], np.uint8)]
    with pytest.raises(ValueError, match=r"values must lie in \[0, 8\) .* in image 1"):
        gpu_histeq.apply_lut(images, [np.arange(10), np.arange(8)])
    with pytest.raises(TypeError, match="`lut` tables must share one dtype"):
        gpu_histeq.apply_lut(images, [np.arange(10), np.arange(10.0)])
    with pytest.raises(ValueError, match=r"one table \(L,\) shared by every image"):
        gpu_histeq.apply_lut(images, np.zeros((2, 10)))
    with pytest.raises(ValueError, match="`lut` must have one entry per image"):
        gpu_histeq.apply_lut(images, [np.arange(10)])


def test_empty_lists_and_zero_size_images(xp):
    for function in (gpu_histeq.equalize_hist, gpu_histeq.histogram,
                     gpu_histeq.cumulative_distribution):
        assert function([]) == [] and function(()) == []
    assert gpu_histeq.apply_lut([], np.arange(3)) == []
    empty = [xp.zeros((0, 5), np.float32), xp.zeros((2, 0, 3), np.float32)]
    for result, image in zip(gpu_histeq.equalize_hist(empty, axes=AXES), empty):
        assert_backend(result, xp)
        same(result, gpu_histeq.equalize_hist(to_numpy(image), axes=AXES))
    for pair, image in zip(gpu_histeq.histogram(empty, 5, axes=AXES), empty):
        for part, want in zip(pair, gpu_histeq.histogram(to_numpy(image), 5, axes=AXES)):
            same(part, want)


def test_out_list_and_inputs_untouched():
    images = ragged_images(np.uint8, seed=6)
    copies = [image.copy() for image in images]
    outs = [np.empty_like(image) for image in images]
    results = gpu_histeq.equalize_hist(images, axes=AXES, out=outs)
    for result, out, image, copy in zip(results, outs, images, copies):
        assert result is out
        same(out, gpu_histeq.equalize_hist(copy, axes=AXES))
        np.testing.assert_array_equal(image, copy)


def test_channel_axis_planes_join_the_batch():
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, (h, w, 2), dtype=np.uint8) for h, w in [(5, 6), (30, 2), (9, 9)]]
    results = gpu_histeq.equalize_hist(images, axes=(0, 1), channel_axis=2)
    for result, image in zip(results, images):
        same(result, gpu_histeq.equalize_hist(image, axes=(0, 1), channel_axis=2))


def test_blocks_split_planes_and_pack_groups(monkeypatch):
    """Small chunk sizes: planes split into column ranges (count all, then remap) and several
    packed groups of whole images give the same numbers."""
    cases = [(np.uint8, "opencv"), (np.uint8, "skimage"), (np.float64, "skimage")]
    expected = {case: [gpu_histeq.equalize_hist(image, axes=AXES, method=case[1])
                       for image in ragged_images(case[0], seed=8)] for case in cases}
    monkeypatch.setattr(_planes, "CHUNK_PIXELS", 97)
    monkeypatch.setattr(_lists, "PACK_PIXELS", 500)
    for (dtype, method), portable in [(case, p) for case in cases for p in (False, True)]:
        images = ragged_images(dtype, seed=8)
        with engine(portable):
            results = gpu_histeq.equalize_hist(images, axes=AXES, method=method)
        for result, want in zip(results, expected[dtype, method]):
            same(result, want)
    images = ragged_images(np.float32, seed=9)
    expected = [gpu_histeq.histogram(image, 17, axes=AXES) for image in images]
    for portable in (False, True):
        with engine(portable):
            results = gpu_histeq.histogram(images, 17, axes=AXES)
        for pair, want in zip(results, expected):
            for part, part_want in zip(pair, want):
                same(part, part_want)


@pytest.mark.skipif(not _cpu.BUILT, reason="the compiled extension is not built")
def test_engine_choice(monkeypatch):
    """NumPy lists take the compiled kernels: unmasked uint8/uint16 "opencv"/"pil" planes where
    they lie (no packing copy, one result array per image), masked or float planes packed
    (per-plane offsets, no padding); inside `portable()` the packed bincount path; all give the
    per-image results."""
    images = ragged_images(np.uint8, seed=11)
    expected = [gpu_histeq.equalize_hist(image, axes=AXES) for image in images]
    masks = [np.ones(image.shape, bool) for image in images]

    def refuse(*args, **kwargs):
        raise AssertionError("the other path ran")

    calls = {"separate": [], "packed": []}
    separate, packed = _cpu.equalize_separate, _cpu.equalize_packed
    with monkeypatch.context() as patch:
        patch.setattr(_packed, "equalize", refuse)
        patch.setattr(_packed, "histograms", refuse)
        patch.setattr(_cpu, "equalize_separate",
                      lambda *a: calls["separate"].append(a) or separate(*a))
        patch.setattr(_cpu, "equalize_packed", lambda *a: calls["packed"].append(a) or packed(*a))
        with monkeypatch.context() as no_pack:
            no_pack.setattr(_lists, "pack", refuse)
            results = gpu_histeq.equalize_hist(images, axes=AXES)
        assert len(calls["separate"]) == 1 and not calls["packed"]
        for result, want in zip(results, expected):
            same(result, want)
            assert result.base is None or result.base.size == result.size  # its own memory
        masked = gpu_histeq.equalize_hist(images, axes=AXES, mask=masks)
        gpu_histeq.histogram(images, axes=AXES)
        gpu_histeq.histogram([image.astype(np.float32) for image in images], axes=AXES)
    assert len(calls["separate"]) == 1 and len(calls["packed"]) == 1
    assert calls["packed"][0][2].tolist()[-1] == sum(i.size for i in images)
    for result, want in zip(masked, expected):
        same(result, want)
    with monkeypatch.context() as patch, _engine.portable():
        patch.setattr(_cpu, "equalize_packed", refuse)
        patch.setattr(_cpu, "count_packed", refuse)
        gpu_histeq.equalize_hist(images, axes=AXES)
        gpu_histeq.histogram(images, axes=AXES)


@pytest.mark.skipif(not _cpu.BUILT, reason="the compiled extension is not built")
@pytest.mark.parametrize("dtype, method", [(np.uint8, "opencv"), (np.uint8, "pil"),
                                           (np.uint16, "opencv")])
def test_planes_read_where_they_lie(monkeypatch, dtype, method):
    """The unpacked compiled path (each plane read from its own array, written to its own
    result): views that are not C-contiguous (transposed, strided, a channel axis first or
    last), entries with batch axes, empty and 1x1 images, planes past the pipelined kernel's
    remap-at-once size (2**17 pixels), blocks of single planes: per-image results, inputs
    untouched."""
    rng = np.random.default_rng(31)
    top = 255 if dtype == np.uint8 else 4000
    draw = lambda *shape: rng.integers(0, top + 1, shape).astype(dtype)  # noqa: E731
    big = draw(400, 360)
    images = [draw(30, 20).T, draw(41, 37)[::2, 1::3], draw(3, 17, 9), draw(1, 1),
              np.zeros((0, 5), dtype), big, draw(2, 0, 4), draw(12, 7)[:, ::-1], big[::-1]]
    copies = [image.copy() for image in images]
    expected = [gpu_histeq.equalize_hist(image, axes=AXES, method=method) for image in images]
    calls = []
    separate = _cpu.equalize_separate
    monkeypatch.setattr(_cpu, "equalize_separate", lambda *a: calls.append(a) or separate(*a))
    monkeypatch.setattr(_planes, "CHUNK_PIXELS", 64)  # a block per plane or so
    results = gpu_histeq.equalize_hist(images, axes=AXES, method=method)
    assert len(calls) == 1
    for result, want, image, copy in zip(results, expected, images, copies):
        same(result, want)
        np.testing.assert_array_equal(image, copy)
    colour = [draw(9, 11, 3), draw(3, 20, 6), draw(1, 1, 3)]
    for channel_axis, axes in ((-1, (0, 1)), (0, (1, 2))):
        items = colour if channel_axis == -1 else [np.moveaxis(c, -1, 0) for c in colour]
        results = gpu_histeq.equalize_hist(items, axes=axes, channel_axis=channel_axis,
                                           method=method)
        for result, item in zip(results, items):
            same(result, gpu_histeq.equalize_hist(item, axes=axes, channel_axis=channel_axis,
                                                  method=method))
    assert len(calls) == 3


@pytest.mark.parametrize("dtype, method", [(np.uint8, "opencv"), (np.uint16, "skimage"),
                                           (np.float32, "skimage")])
def test_cupy_lists_take_the_cuda_kernels(cp, monkeypatch, dtype, method):
    """CuPy lists run the CUDA kernels over the packed planes (per-plane offsets), not the
    portable packed path, for equalize_hist, histogram and apply_lut; same numbers as per image."""
    from gpu_histeq import _cuda

    def refuse(*args, **kwargs):
        raise AssertionError("the portable packed path ran")

    images = ragged_images(dtype, seed=12)
    ran = []
    for name in ("equalize_packed", "packed_counts", "apply_packed"):
        kernel = getattr(_cuda, name)
        monkeypatch.setattr(_cuda, name, lambda *a, _k=kernel, _n=name: ran.append(_n) or _k(*a))
    for name in ("equalize", "histograms", "apply_tables"):
        monkeypatch.setattr(_packed, name, refuse)
    device = device_list(cp, images)
    results = gpu_histeq.equalize_hist(device, axes=AXES, method=method)
    counts = gpu_histeq.histogram(device, 64, axes=AXES)
    for k, image in enumerate(images):
        same(results[k], gpu_histeq.equalize_hist(image, axes=AXES, method=method))
        for part, want in zip(counts[k], gpu_histeq.histogram(image, 64, axes=AXES)):
            same(part, want)
    if np.dtype(dtype).kind == "u":
        table = cp.asarray(np.arange(np.iinfo(dtype).max + 1)[::-1].astype(np.float32))
        remapped = gpu_histeq.apply_lut(device, table, axes=AXES)
        for k, image in enumerate(images):
            same(remapped[k], gpu_histeq.apply_lut(image, to_numpy(table), axes=AXES))
    assert {"equalize_packed", "packed_counts"} <= set(ran)
    assert ("apply_packed" in ran) == (np.dtype(dtype).kind == "u")


def test_cupy_list_with_an_irregular_plane_is_redone_portably(cp, monkeypatch):
    """A float64 plane whose bins are a few subnormals wide makes the CUDA kernels decline after
    writing; the portable path then rewrites the same buffer in full: every image equals its
    own call."""
    from gpu_histeq import _cuda
    tiny = np.array([0.0, 392553, 396459, 1000000]).reshape(2, 2) * 5e-324
    images = [np.linspace(0, 1, 50).reshape(5, 10), tiny, np.linspace(-3, 2, 7).reshape(1, 7)]
    answers = []
    kernel = _cuda.equalize_packed
    monkeypatch.setattr(_cuda, "equalize_packed", lambda *a: answers.append(kernel(*a)) or
                        answers[-1])
    expect_decline("irregular")
    results = gpu_histeq.equalize_hist(device_list(cp, images), axes=AXES)
    assert len(answers) == 1
    assert_declined(answers[0], "irregular")
    for result, image in zip(results, images):
        same(result, gpu_histeq.equalize_hist(image, axes=AXES))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16])
@pytest.mark.parametrize("masked", [False, True])
def test_compiled_packed_planes_larger_than_a_chunk(dtype, masked):
    """Planes above the compiled kernels' 65536-pixel chunk (binned twice) beside small and
    empty ones, packed at odd offsets: per image and against the portable packed path."""
    rng = np.random.default_rng(21)
    shapes = [(3, 5), (301, 257), (0, 9), (1, 1), (2, 263, 251), (17, 3)]
    if np.dtype(dtype).kind == "f":
        images = [(rng.random(shape) * 3 - 1).astype(dtype) for shape in shapes]
    else:
        images = [rng.integers(0, 5000, shape).astype(dtype) for shape in shapes]
    masks = None
    if masked:
        masks = [rng.random(shape) < 0.5 for shape in shapes]
        for mask in masks:
            mask[..., :1, :1] = True
    nbins = 300 if np.dtype(dtype).kind == "f" else 256
    results = gpu_histeq.equalize_hist(images, nbins, axes=AXES, mask=masks)
    with _engine.portable():
        portable = gpu_histeq.equalize_hist(images, nbins, axes=AXES, mask=masks)
    for k, image in enumerate(images):
        expected = gpu_histeq.equalize_hist(image, nbins, axes=AXES,
                                            mask=None if masks is None else masks[k])
        same(results[k], expected)
        same(portable[k], expected)
    # the counts too, and more uint16 planes than one block of level counts holds
    images += [image[..., :3, :4] + k for k, image in enumerate(images * 30) if image.size]
    if masks is not None:
        masks += [mask[..., :3, :4] for mask in masks * 30 if mask.size]
    for function in (gpu_histeq.histogram, gpu_histeq.cumulative_distribution):
        results = function(images, nbins, axes=AXES, mask=masks)
        for k, image in enumerate(images):
            expected = function(image, nbins, axes=AXES, mask=None if masks is None else masks[k])
            for part, want in zip(results[k], expected):
                same(part, want)


@pytest.mark.parametrize("portable", [False, True], ids=["selected", "portable"])
def test_list_errors_as_the_portable_path_orders_them(portable):
    """An earlier image whose range is too narrow for `nbins` and a later one with a NaN: every
    engine reports the NaN (values are checked before bins), as the portable packed path does;
    alone, the narrow image reports its repeated edges."""
    narrow = np.full((4, 4), 1.0, np.float32)
    narrow[0, 0] = np.nextafter(np.float32(1), np.float32(2))
    broken = np.random.default_rng(3).random((9, 9)).astype(np.float32)
    broken[4, 4] = np.nan
    with engine(portable):
        with pytest.raises(ValueError, match="NaN"):
            gpu_histeq.equalize_hist([narrow, broken, broken[:2]], 256, axes=AXES)
        with pytest.raises(ValueError, match="edges|bins"):
            gpu_histeq.equalize_hist([broken[:4, :4], narrow], 256, axes=AXES)


def test_blocks_cover_every_pixel_once():
    starts = _packed.plane_starts([0, 5, 0, 0, 300, 7, 0, 90, 90, 0])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_planes, "CHUNK_PIXELS", 100)
        block_list = _packed.blocks(np, starts, 256)
    covered = np.zeros(starts[-1], int)
    for p0, p1, a, b in block_list:
        covered[a:b] += 1
        assert b - a <= 200 and starts[p0] <= a and b <= starts[p1]
        local = _packed.local_planes(np, starts, (p0, p1, a, b))
        expected = np.searchsorted(starts, np.arange(a, b), side="right") - 1 - p0
        np.testing.assert_array_equal(local, expected)
    np.testing.assert_array_equal(covered, 1)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_tiled_segment_reduction_equals_reduceat(dtype):
    """The sort-free reduction CuPy uses gives NumPy's reduceat (run here on NumPy)."""
    rng = np.random.default_rng(10)
    sizes = np.array([1, 255, 256, 257, 70000, 3, 513, 65536])
    values = (rng.random(sizes.sum()) * 1000 - 500).astype(dtype)
    starts = _packed.plane_starts(sizes)[:-1]
    for reduce, ufunc in ((np.min, np.minimum), (np.max, np.maximum)):
        tiled = _packed.segment_reduce(np, reduce, values, starts, sizes)
        np.testing.assert_array_equal(tiled, ufunc.reduceat(values, starts))


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.float16, np.float64])
def test_segment_argsort_sorts_each_plane_in_place(monkeypatch, dtype):
    monkeypatch.setattr(_planes, "CHUNK_PIXELS", 300)  # several blocks per size class
    rng = np.random.default_rng(16)
    sizes = np.array([0, 1, 5, 130, 0, 131, 140, 7, 600, 3, 0])
    starts = _packed.plane_starts(sizes)
    if np.dtype(dtype).kind == "f":
        values = rng.standard_normal(starts[-1]).astype(dtype)
    else:  # the dtype's maximum occurs: it ties with the padding
        info = np.iinfo(dtype)
        values = rng.integers(info.max - 20, info.max, starts[-1], dtype=dtype, endpoint=True)
    order = _packed.segment_argsort(np, values, starts)
    for a, b in zip(starts[:-1], starts[1:]):
        np.testing.assert_array_equal(np.sort(order[a:b]), np.arange(a, b))
        np.testing.assert_array_equal(values[order[a:b]], np.sort(values[a:b]))


def test_refusals(cp):
    images = [np.zeros((4, 4), np.uint8), np.zeros((5, 5), np.uint8)]
    with pytest.raises(TypeError, match=r"all numpy.ndarray or all cupy.ndarray, got both "
                                        r"numpy.ndarray \(entry 0\) and cupy.ndarray \(entry 1\)"):
        gpu_histeq.equalize_hist([images[0], cp.asarray(images[1])])
    with pytest.raises(TypeError, match=r"share one dtype, got uint8 \(entry 0\) and uint16"):
        gpu_histeq.histogram([images[0], images[1].astype(np.uint16)])
    with pytest.raises(TypeError, match="or a list of them; entry 1 of the list is builtins.list"):
        gpu_histeq.equalize_hist([images[0], [[1, 2]]])
    with pytest.raises(TypeError, match="`mask` must be a list or tuple"):
        gpu_histeq.equalize_hist(images, mask=np.ones((4, 4), bool))
    with pytest.raises(ValueError, match=r"`mask` must have one entry per image \(2\), got 1"):
        gpu_histeq.equalize_hist(images, mask=[np.ones((4, 4), bool)])
    with pytest.raises(ValueError, match="`luminance=True` needs 3"):
        gpu_histeq.equalize_hist([np.zeros((4, 4, 2), np.uint8)], axes=(0, 1), luminance=True,
                                 channel_axis=-1)
    for function in (gpu_histeq.clahe, gpu_histeq.equalize_adapthist):
        with pytest.raises(TypeError, match=f"must be one array for {function.__name__}"):
            function(images)
    with pytest.raises(TypeError, match="`method='pil'` needs uint8"):
        gpu_histeq.equalize_hist([np.zeros((2, 2), np.float32)], method="pil")


def test_parameters_the_list_path_does_not_know():
    """A public parameter the list path lacks is refused unless left at its default."""
    def equalize_hist(images, nbins=256, *, axes=None, mask=None, method=None,
                      channel_axis=None, luminance=False, out=None, sparkle=False):
        raise AssertionError("the list path calls its own implementation")

    images = [np.arange(12, dtype=np.uint8).reshape(3, 4)]
    with pytest.raises(TypeError, match="`sparkle` is not supported by equalize_hist when "
                                        "`images` is a list"):
        ragged.call(equalize_hist, images, sparkle=True)
    (result,) = ragged.call(equalize_hist, images, axes=AXES)
    same(result, gpu_histeq.equalize_hist(images[0], axes=AXES))


def test_dask_lists_are_refused():
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match="entry 1 is a Dask array: .* call gpu_histeq.equalize_hist "
                                        "on each Dask array"):
        gpu_histeq.equalize_hist([np.zeros((2, 2), np.uint8), da.zeros((3, 3), np.uint8)])


DTYPES = [np.uint8, np.uint16, np.int8, np.float32, np.float64]


@st.composite
def ragged_batches(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shapes = draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 12), st.integers(1, 12)),
                           min_size=0, max_size=6))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    images = []
    for planes, height, width in shapes:
        shape = (height, width) if planes == 0 else (planes, height, width)
        if dtype.kind == "f":
            images.append((rng.random(shape) * draw(st.sampled_from([1e-3, 1.0, 1e6]))).astype(dtype))
        else:
            info = np.iinfo(dtype)
            images.append(rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True))
    return dtype, images


def outcome(call):
    """What `call` returns, or the ValueError it raises (a data error, e.g. bins too narrow)."""
    try:
        return call()
    except ValueError as error:
        return error


#: A float32 plane whose two values are one unit apart at 1e6: 16 or 256 bins over that range
#: would repeat bin edges, which every call refuses (numpy.histogram does too).
_NARROW = np.array([[1e6, np.nextafter(np.float32(1e6), np.float32(2e6))]], np.float32)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ragged_batches(), st.sampled_from([None, "skimage"]), st.sampled_from([16, 256]),
       st.booleans())
@example((np.dtype(np.float32), [np.ones((2, 3), np.float32), _NARROW]), None, 256, False)
@example((np.dtype(np.float32), [_NARROW[None], np.zeros((0, 4), np.float32)]), "skimage", 16,
         True)
def test_property_list_equals_per_image_loop(batch, method, nbins, portable):
    """The rule: a list gives each image's own result; where an image's own call raises a
    ValueError (a float32 plane too narrow for `nbins`: its bin edges would repeat), the list
    call raises that error, with its message, in any order of the list."""
    dtype, images = batch
    if dtype.kind == "f" or method == "skimage":
        nbins_used = nbins
    else:
        nbins_used = 256
    own = [outcome(lambda image=image: gpu_histeq.equalize_hist(image, nbins_used, axes=AXES,
                                                                method=method))
           for image in images]
    errors = [str(o) for o in own if isinstance(o, ValueError)]
    order = list(reversed(range(len(images))))
    with engine(portable):
        results = outcome(lambda: gpu_histeq.equalize_hist(images, nbins_used, axes=AXES,
                                                           method=method))
        permuted = outcome(lambda: gpu_histeq.equalize_hist([images[k] for k in order],
                                                            nbins_used, axes=AXES, method=method))
    if errors:
        assert "bin edges would repeat" in errors[0], errors
        for listed in (results, permuted):
            assert isinstance(listed, ValueError) and str(listed) in errors, listed
        return
    assert not isinstance(results, ValueError), results
    assert not isinstance(permuted, ValueError), permuted
    assert len(results) == len(images)
    for result, expected in zip(results, own):
        same(result, expected)
    # permuting the list permutes the results
    for k, result in zip(order, permuted):
        same(result, to_numpy(results[k]))
