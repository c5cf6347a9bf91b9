"""equalize_hist against the libraries it promises to reproduce, on real and edge-case images."""

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import assert_backend, expect_decline, is_emulated, to_numpy

import gpu_histeq
from gpu_histeq import _cpu, _engine, _planes, equalize_hist

cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")
from PIL import Image, ImageOps  # noqa: E402
from skimage import exposure  # noqa: E402


def real_gray_images():
    """Real uint8 grayscale images from scikit-image, cropped to one shape."""
    images = [skimage_data.camera(), skimage_data.moon(), skimage_data.coins(), skimage_data.page(),
              skimage_data.text(), skimage_data.brick(), skimage_data.grass(), skimage_data.gravel()]
    images += [skimage_data.astronaut()[..., c] for c in range(3)]
    images += [skimage_data.chelsea()[..., c] for c in range(3)]
    return np.stack([image[:150, :200] for image in images])


def edge_case_images(rng):
    """Constant, two-level, narrow, full-range and rounding-prone 96x96 planes."""
    planes = [np.full((96, 96), 0), np.full((96, 96), 255), np.full((96, 96), 77),
              np.where(rng.random((96, 96)) < 0.5, 10, 200),
              np.where(rng.random((96, 96)) < 0.999, 3, 4),
              rng.integers(100, 104, (96, 96)), rng.integers(0, 256, (96, 96)),
              np.tile(np.arange(96), (96, 1)), (np.arange(96 * 96) % 256).reshape(96, 96)]
    ties = np.zeros((96, 96), int)  # 9216 = 2 x 4608 pixels: halves that land on .5 exactly
    ties.flat[: 9216 // 2] = 7
    ties.flat[9216 // 2:] = 9
    planes.append(ties)
    return np.stack(planes).astype(np.uint8)


@pytest.fixture(params=["compiled", "portable"])
def engine(request):
    """Run on the compiled CPU path and on the portable bincount path (which CuPy always uses)."""
    if request.param == "compiled":
        if not _cpu.BUILT:
            pytest.skip("the compiled extension gpu_histeq._cpu_kernels is not built")
        yield request.param
    else:
        with _engine.portable():
            yield request.param


def portable(images, *args, **kwargs):
    """equalize_hist on the portable bincount path (the compiled CPU path switched off)."""
    with _engine.portable():
        return equalize_hist(images, *args, **kwargs)


def opencv_loop(images):
    return np.stack([cv2.equalizeHist(plane) for plane in images.reshape(-1, *images.shape[-2:])]
                    ).reshape(images.shape)


def pil_loop(images):
    return np.stack([np.asarray(ImageOps.equalize(Image.fromarray(plane)))
                     for plane in images.reshape(-1, *images.shape[-2:])]).reshape(images.shape)


def skimage_loop(images, nbins=256, mask=None):
    planes = images.reshape(-1, *images.shape[-2:])
    masks = [None] * len(planes) if mask is None else np.broadcast_to(mask, images.shape).reshape(planes.shape)
    return np.stack([exposure.equalize_hist(p, nbins, mask=m) for p, m in zip(planes, masks)]
                    ).reshape(images.shape)


def opencv_formula_u16(plane):
    """cv2.equalizeHist's algorithm written out per plane, for 65536 levels."""
    counts = np.bincount(plane.ravel(), minlength=65536)
    first = int(np.flatnonzero(counts)[0])
    if counts[first] == plane.size:
        return plane.copy()
    scale = np.float32(65535.0) / np.float32(plane.size - counts[first])
    total, lut = 0, np.zeros(65536, np.uint16)
    cumulative = np.cumsum(counts) - counts[first]
    for level in range(first + 1, 65536):
        lut[level] = min(65535, int(np.rint(np.float32(cumulative[level]) * scale)))
    del total
    return lut[plane]


def test_opencv_bit_exact_on_real_images(xp, engine):
    images = real_gray_images()
    result = equalize_hist(xp.asarray(images))
    assert_backend(result, xp)
    np.testing.assert_array_equal(to_numpy(result), opencv_loop(images))


def test_opencv_bit_exact_on_edge_cases(xp, engine):
    images = edge_case_images(np.random.default_rng(1))
    result = to_numpy(equalize_hist(xp.asarray(images), method="opencv"))
    np.testing.assert_array_equal(result, opencv_loop(images))
    assert result[0].min() == result[0].max() == 0  # constant planes stay as they are
    assert result[2].min() == 77


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (3, 3), (17, 33)])
def test_opencv_tiny_planes(xp, engine, shape):
    images = np.random.default_rng(2).integers(0, 256, (6, *shape), dtype=np.uint8)
    np.testing.assert_array_equal(to_numpy(equalize_hist(xp.asarray(images))), opencv_loop(images))


def test_seed_shape_faces_like_stack(xp, engine):
    rng = np.random.default_rng(3)
    base = rng.integers(40, 90, (60, 1, 1, 1))
    images = np.clip(base + rng.normal(0, 12, (60, 1, 96, 96)), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(to_numpy(equalize_hist(xp.asarray(images))), opencv_loop(images))


def test_uint16_uses_opencv_formula_over_65536_levels(xp, engine):
    rng = np.random.default_rng(4)
    images = np.stack([rng.integers(1000, 3000, (40, 50)), rng.integers(0, 65536, (40, 50)),
                       np.full((40, 50), 513), rng.integers(60000, 60002, (40, 50))]).astype(np.uint16)
    result = to_numpy(equalize_hist(xp.asarray(images)))
    assert result.dtype == np.uint16
    np.testing.assert_array_equal(result, np.stack([opencv_formula_u16(p) for p in images]))


def test_pil_bit_exact(xp, engine):
    images = np.concatenate([real_gray_images()[:, :96, :96],
                             edge_case_images(np.random.default_rng(5))])
    result = equalize_hist(xp.asarray(images), method="pil")
    assert_backend(result, xp)
    np.testing.assert_array_equal(to_numpy(result), pil_loop(images))


def test_pil_rgb_per_channel_matches_imageops(xp, engine):
    rgb = skimage_data.astronaut()[::2, ::2]
    expected = np.asarray(ImageOps.equalize(Image.fromarray(rgb)))
    result = equalize_hist(xp.asarray(rgb), axes=(0, 1), method="pil")
    np.testing.assert_array_equal(to_numpy(result), expected)


def test_pil_with_mask_matches_imageops(xp, engine):
    image = skimage_data.camera()[::2, ::2]
    mask = np.zeros(image.shape, bool)
    mask[40:200, 30:150] = True
    expected = np.asarray(ImageOps.equalize(Image.fromarray(image), Image.fromarray(mask.astype(np.uint8) * 255)))
    result = equalize_hist(xp.asarray(image), method="pil", mask=xp.asarray(mask))
    np.testing.assert_array_equal(to_numpy(result), expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int8, np.int16, np.int32, np.int64, np.uint32])
def test_skimage_integer_dtypes(xp, engine, dtype):
    rng = np.random.default_rng(6)
    info = np.iinfo(dtype)
    low, high = max(info.min, -3000), min(info.max, 3000)
    images = rng.integers(low, high, (5, 30, 40)).astype(dtype)
    images[1] = rng.integers(low, low + 3, (30, 40))  # narrow range
    result = equalize_hist(xp.asarray(images), method="skimage")
    expected = skimage_loop(images)
    assert result.dtype == expected.dtype == np.float64
    np.testing.assert_allclose(to_numpy(result), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-6), (np.float32, 1e-5), (np.float16, 1e-5)])
@pytest.mark.parametrize("nbins", [256, 1, 2, 37, 1000])
def test_skimage_float(xp, engine, dtype, atol, nbins):
    rng = np.random.default_rng(7)
    images = rng.normal(0.3, 2.0, (6, 33, 47)).astype(dtype)
    images[1] = 0.25  # constant: numpy widens the range by 0.5 on each side
    images[2] = np.round(images[2])  # many values exactly on bin edges
    images[3, ::2] = images[3].min()
    result = equalize_hist(xp.asarray(images), nbins)
    expected = skimage_loop(images, nbins)
    assert result.dtype == expected.dtype
    np.testing.assert_allclose(to_numpy(result), expected, rtol=0, atol=atol)


def test_skimage_float_real_images_exact(xp, engine):
    images = real_gray_images()[:6].astype(np.float32) / 255
    result = to_numpy(equalize_hist(xp.asarray(images)))
    np.testing.assert_array_equal(result, skimage_loop(images))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64, np.int16])
def test_skimage_with_mask_clamps_outside_masked_range(xp, engine, dtype):
    rng = np.random.default_rng(8)
    images = (rng.random((4, 40, 50)) * 200).astype(dtype)
    mask = np.zeros((40, 50), bool)
    mask[10:30, 5:45] = True
    images[:, 0, 0] = 0  # values outside the masked range are clamped to the ends
    images[:, 0, 1] = 199
    result = equalize_hist(xp.asarray(images), method="skimage", mask=xp.asarray(mask))
    tolerance = 1e-5 if dtype == np.float32 else 1e-6
    np.testing.assert_allclose(to_numpy(result), skimage_loop(images, mask=mask), rtol=0, atol=tolerance)


def test_opencv_with_mask_counts_selected_pixels_only(xp, engine):
    images = real_gray_images()[:4]
    mask = np.zeros(images.shape, bool)
    mask[:, 20:100, 30:170] = True
    result = to_numpy(equalize_hist(xp.asarray(images), mask=xp.asarray(mask)))
    for plane, selected, got in zip(images, mask, result):
        inside = plane[selected].reshape(80, 140)
        lut = np.zeros(256, np.uint8)
        reference = cv2.equalizeHist(inside)
        lut[inside.ravel()] = reference.ravel()
        np.testing.assert_array_equal(got[selected], lut[plane[selected]])


def test_luminance_matches_opencv_ycrcb_round_trip(xp, engine):
    images = np.stack([skimage_data.astronaut()[:128, :128], skimage_data.chelsea()[:128, :128],
                       skimage_data.coffee()[:128, :128]])
    result = to_numpy(equalize_hist(xp.asarray(images), axes=(1, 2), channel_axis=3, luminance=True))
    for image, got in zip(images, result):
        ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
        ycrcb[..., 0] = cv2.equalizeHist(ycrcb[..., 0])
        expected = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)
        assert np.abs(got.astype(int) - expected).max() <= 1


def test_luminance_channels_first_and_float(xp, engine):
    image = skimage_data.astronaut()[:64, :64]
    channels_first = np.moveaxis(image, -1, 0)
    last = to_numpy(equalize_hist(xp.asarray(image), axes=(0, 1), channel_axis=2, luminance=True))
    first = to_numpy(equalize_hist(xp.asarray(channels_first), axes=(1, 2), channel_axis=0, luminance=True))
    np.testing.assert_array_equal(np.moveaxis(first, 0, -1), last)
    floating = to_numpy(equalize_hist(xp.asarray(image / 255.0), axes=(0, 1), channel_axis=2,
                                      luminance=True))
    assert floating.dtype == np.float64 and np.isfinite(floating).all()


def test_channel_axis_without_luminance_equalizes_each_channel(xp, engine):
    image = skimage_data.astronaut()[:64, :80]
    result = to_numpy(equalize_hist(xp.asarray(image), axes=(0, 1), channel_axis=2))
    np.testing.assert_array_equal(result, np.stack([cv2.equalizeHist(image[..., c]) for c in range(3)], -1))


def test_nhwc_layout_and_dataset_wide_table(xp, engine):
    rng = np.random.default_rng(9)
    nhwc = rng.integers(20, 120, (5, 24, 32, 3), dtype=np.uint8)
    per_channel = to_numpy(equalize_hist(xp.asarray(nhwc), axes=(1, 2)))
    np.testing.assert_array_equal(per_channel, np.moveaxis(
        opencv_loop(np.ascontiguousarray(np.moveaxis(nhwc, -1, 1))), 1, -1))
    everything = to_numpy(equalize_hist(xp.asarray(nhwc), axes=(0, 1, 2, 3)))
    np.testing.assert_array_equal(everything, cv2.equalizeHist(nhwc.reshape(-1, 3)).reshape(nhwc.shape))


def test_strided_fortran_bigendian_readonly_inputs(xp, engine):
    images = real_gray_images()[:4]
    expected = opencv_loop(images)
    fortran = np.asfortranarray(images)
    strided = np.zeros((8, 300, 400), np.uint8)[::2, ::2, ::2]
    strided[...] = images
    readonly = images.copy()
    readonly.flags.writeable = False
    for variant in (fortran, strided, readonly):
        np.testing.assert_array_equal(to_numpy(equalize_hist(xp.asarray(variant))), expected)
    if xp is np:  # CuPy has no big-endian arrays
        floats = images.astype(">f8") / 255
        np.testing.assert_array_equal(equalize_hist(floats), skimage_loop(images.astype(np.float64) / 255))


def test_inputs_are_not_mutated(xp, engine):
    images = xp.asarray(real_gray_images()[:3])
    mask = xp.asarray(np.random.default_rng(10).random(images.shape) < 0.5)
    before, mask_before = images.copy(), mask.copy()
    equalize_hist(images, mask=mask)
    equalize_hist(images.astype(np.float32), mask=mask)
    assert bool((images == before).all()) and bool((mask == mask_before).all())


def test_out_is_filled_and_returned(xp, engine):
    images = xp.asarray(real_gray_images()[:3])
    out = xp.zeros_like(images)
    assert equalize_hist(images, out=out) is out
    np.testing.assert_array_equal(to_numpy(out), opencv_loop(to_numpy(images)))
    nhwc = xp.asarray(np.random.default_rng(11).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8))
    out = xp.empty(nhwc.shape, np.uint8)
    assert equalize_hist(nhwc, axes=(1, 2), out=out) is out  # not a plane view: filled by a copy
    np.testing.assert_array_equal(to_numpy(out), to_numpy(equalize_hist(nhwc, axes=(1, 2))))


def test_empty_batches_and_zero_size_planes(xp, engine):
    for shape in [(0, 1, 96, 96), (3, 0, 5), (2, 4, 0)]:
        images = xp.zeros(shape, np.uint8)
        result = equalize_hist(images)
        assert result.shape == shape and result.dtype == np.uint8
        assert equalize_hist(images.astype(np.float32)).dtype == np.float32


def test_chunked_equals_unchunked(xp, engine, monkeypatch):
    rng = np.random.default_rng(12)
    cases = [(rng.integers(0, 256, (7, 33, 31)).astype(np.uint8), {}),
             (rng.integers(0, 65536, (3, 20, 20)).astype(np.uint16), {}),
             (rng.normal(size=(5, 21, 19)).astype(np.float32), {}),
             (rng.integers(-50, 50, (4, 10, 12)).astype(np.int16), {"method": "skimage"}),
             (rng.integers(0, 256, (7, 33, 31)).astype(np.uint8), {"method": "pil"})]
    masks = [None, xp.asarray(rng.random((33, 31)) < 0.7)]
    whole = [[to_numpy(equalize_hist(xp.asarray(images), mask=mask if images.shape[1:] == (33, 31) else None, **kw))
              for images, kw in cases] for mask in masks]
    # blocks of one plane, then column blocks smaller than a plane: the two-pass path
    for pixels, bins in [(400, 1 << 22), (64, 1 << 22), (1 << 19, 300)]:
        monkeypatch.setattr(_planes, "CHUNK_PIXELS", pixels)
        monkeypatch.setattr(_planes, "CHUNK_PIXELS_GPU", pixels)
        monkeypatch.setattr(_planes, "CHUNK_BINS", bins)
        for mask, expected in zip(masks, whole):
            for (images, kw), want in zip(cases, expected):
                got = equalize_hist(xp.asarray(images), mask=mask if images.shape[1:] == (33, 31) else None, **kw)
                np.testing.assert_array_equal(to_numpy(got), want)


def test_many_threads_and_one_thread_agree(engine, monkeypatch):
    images = np.random.default_rng(13).integers(0, 256, (300, 40, 40), dtype=np.uint8)
    monkeypatch.setattr(_planes, "CHUNK_PIXELS", 40 * 40 * 7)
    monkeypatch.setenv("GPU_HISTEQ_NUM_THREADS", "1")
    single = equalize_hist(images)
    monkeypatch.setenv("GPU_HISTEQ_NUM_THREADS", "4")
    np.testing.assert_array_equal(equalize_hist(images), single)


@pytest.mark.parametrize("value", ["0", "-2", "two", ""])
def test_bad_thread_count_is_refused_clearly(monkeypatch, value):
    monkeypatch.setenv("GPU_HISTEQ_NUM_THREADS", value)
    with pytest.raises(ValueError, match="GPU_HISTEQ_NUM_THREADS must be a positive integer"):
        equalize_hist(np.zeros((4, 8, 8), np.uint8))


def test_threads_stop_on_an_error_and_nest_serially(monkeypatch):
    """map_blocks re-raises a block's error only once no block runs any more (none starts after
    it), and a block that calls map_blocks again runs the inner blocks in its own thread."""
    import threading
    import time
    monkeypatch.setenv("GPU_HISTEQ_NUM_THREADS", "2")
    running, started, lock = [0], [], threading.Lock()

    def block(index):
        with lock:
            running[0] += 1
            started.append(index)
        try:
            if index == 3:
                raise ValueError("block 3")
            time.sleep(0.01)
            return _planes.map_blocks(np, lambda j: (j, threading.get_ident()), [0, 1, 2])
        finally:
            with lock:
                running[0] -= 1

    with pytest.raises(ValueError, match="block 3"):
        _planes.map_blocks(np, block, list(range(40)))
    assert running[0] == 0 and 3 in started and len(started) < 40
    results = _planes.map_blocks(np, block, [0, 1, 2, 4])
    assert [[j for j, _ in inner] for inner in results] == [[0, 1, 2]] * 4
    assert all(len({thread for _, thread in inner}) == 1 for inner in results)


def test_compiled_and_portable_paths_agree_bit_for_bit(monkeypatch):
    if not _cpu.BUILT:
        pytest.skip("the compiled extension gpu_histeq._cpu_kernels is not built")
    rng = np.random.default_rng(14)
    inputs = [rng.integers(0, 256, (9, 50, 60), dtype=np.uint8),
              rng.integers(0, 65536, (3, 50, 60), dtype=np.uint16),
              rng.normal(size=(9, 50, 60)).astype(np.float32),
              np.round(rng.normal(size=(9, 50, 60)) * 4) / 4,
              rng.random((9, 50, 60)) ** 7,
              edge_case_images(rng),  # constant, two-level, narrow planes, rounding ties
              rng.integers(0, 256, (5, 3, 4), dtype=np.uint8),  # PIL: step 0, unchanged
              rng.integers(0, 256, (4, 1, 1), dtype=np.uint8),
              np.stack([np.full((20, 30), 40000), rng.integers(7, 9, (20, 30)),
                        rng.integers(0, 65536, (20, 30))]).astype(np.uint16),
              # planes larger than the C code's 65536-pixel chunk: binned twice (count, remap)
              (rng.integers(0, 200, (2, 300, 301)) / 199).astype(np.float32),
              rng.normal(size=(2, 257, 259)) * 1e3,
              # fewer planes than threads: a plane larger than a block is split into column blocks
              rng.normal(size=(1, 50, 60)).astype(np.float32),
              rng.integers(0, 65536, (1, 50, 60), dtype=np.uint16)]
    monkeypatch.setenv("GPU_HISTEQ_NUM_THREADS", "2")
    variants = {"": {}, "mask": {"mask": True}, "13 bins": {"nbins": 13}, "pil": {"method": "pil"},
                "pil mask": {"method": "pil", "mask": True}}
    portable_results = {}
    # whole planes per block (fused per plane), then column blocks (count, then remap)
    for chunk_pixels in (_planes.CHUNK_PIXELS, 700):
        monkeypatch.setattr(_planes, "CHUNK_PIXELS", chunk_pixels)
        for case, images in enumerate(inputs):
            mask = np.random.default_rng(case).random(images.shape[1:]) < 0.4
            mask.flat[0] = True  # every plane keeps a selected pixel
            for name, variant in variants.items():
                if (images.dtype.kind == "u" and "nbins" in variant) or (
                        "method" in variant and images.dtype != np.uint8):
                    continue
                kwargs = {**variant, "mask": mask} if "mask" in variant else variant
                compiled = equalize_hist(images, **kwargs)
                if (case, name) not in portable_results:
                    portable_results[case, name] = portable(images, **kwargs)
                np.testing.assert_array_equal(compiled, portable_results[case, name],
                                              err_msg=f"{case} {name}")


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from([np.float32, np.float64]), offset=st.floats(-1e6, 1e6),
       step=st.floats(1e-3, 1e3), levels=st.integers(1, 300), nbins=st.integers(1, 400),
       masked=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_property_compiled_float_path_equals_bincount_path(dtype, offset, step, levels, nbins,
                                                           masked, seed):
    """Quantized planes (offset + step * level): many pixels exactly on bin edges and centers,
    ranges narrow or wide for their magnitude, and the exact and checked loops both."""
    if not _cpu.BUILT:
        pytest.skip("the compiled extension gpu_histeq._cpu_kernels is not built")
    rng = np.random.default_rng(seed)
    images = (offset + step * rng.integers(0, levels, (3, 17, 13))).astype(dtype)
    mask = rng.random((17, 13)) < 0.6 if masked else None
    if mask is not None:
        mask.flat[0] = True
    try:
        compiled = equalize_hist(images, nbins, mask=mask)
    except ValueError as error:  # bins too narrow for a plane's range: both paths refuse alike
        assert "bin edges would repeat" in str(error)
        with pytest.raises(ValueError) as refused:
            portable(images, nbins, mask=mask)
        assert str(refused.value) == str(error)
        return
    np.testing.assert_array_equal(compiled, portable(images, nbins, mask=mask))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nbins", [4, 60, 70, 256])
def test_compiled_float_path_on_subnormal_ranges(dtype, nbins):
    """Steps below the smallest normal number (edges rounded to a few units), a scale that
    overflows, repeated centers: the compiled path bins as numpy.histogram does (its guess, one
    correction, even when that leaves a value bins away) and interpolates as numpy.interp does
    (its own search of the centers, its exact hits and NaN fallbacks), as the portable path."""
    if not _cpu.BUILT:
        pytest.skip("the compiled extension gpu_histeq._cpu_kernels is not built")
    tiny = np.finfo(dtype).smallest_subnormal
    rng = np.random.default_rng(nbins)
    images = np.stack([rng.integers(0, 101, (9, 11)) * tiny, rng.integers(0, 7, (9, 11)) * tiny,
                       rng.random((9, 11)) * np.finfo(dtype).smallest_normal / 2,
                       np.array([np.finfo(dtype).smallest_normal * 0.8, 0] * 50)[:99].reshape(9, 11)]
                      ).astype(dtype)
    for plane in images[:, None]:
        try:
            expected = exposure.equalize_hist(plane[0], nbins)
        except ValueError:  # numpy.histogram refuses repeated edges: so do both paths
            with pytest.raises(ValueError, match="too many"):
                equalize_hist(plane, nbins)
            with pytest.raises(ValueError, match="too many"):
                portable(plane, nbins)
            continue
        compiled = equalize_hist(plane, nbins)
        np.testing.assert_array_equal(compiled, portable(plane, nbins))
        np.testing.assert_allclose(compiled[0], expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_subnormal_ranges_match_skimage_on_every_backend(xp, dtype):
    if dtype == np.float32 and is_emulated(xp):  # the real-GPU outcome: GPU-PENDING.md
        pytest.skip("float32 subnormals are flushed on a GPU (-ftz=true; emulated as x86 FTZ/DAZ)")
    if xp is not np and dtype == np.float64:  # bins a few subnormals wide: numpy.interp's search
        expect_decline("irregular")
    tiny = np.finfo(dtype).smallest_subnormal
    rng = np.random.default_rng(3)
    planes = [rng.integers(0, 101, (9, 11)) * tiny, rng.integers(0, 1000, (9, 11)) * tiny,
              np.array([np.finfo(dtype).smallest_normal * 0.8, 0] * 50)[:99].reshape(9, 11)]
    for plane in planes:
        plane = plane.astype(dtype)
        for nbins in (4, 70, 256):
            try:
                expected = exposure.equalize_hist(plane, nbins)
            except ValueError:
                with pytest.raises(ValueError, match="too many"):
                    equalize_hist(xp.asarray(plane), nbins)
                continue
            got = to_numpy(equalize_hist(xp.asarray(plane), nbins))
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_mixed_backends_raise(xp):
    if xp is np:
        pytest.skip("needs CuPy to mix backends")
    images = np.zeros((2, 4, 4), np.uint8)
    with pytest.raises(TypeError, match="`mask` must be a numpy array"):
        equalize_hist(images, mask=xp.zeros((4, 4), bool))
    with pytest.raises(TypeError, match="`out` must be a cupy array"):
        equalize_hist(xp.asarray(images), out=images)


def test_import_does_not_import_cupy():
    import subprocess
    import sys
    code = "import sys, gpu_histeq; print('cupy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
    assert gpu_histeq.__all__


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset, span", [(0.0, 1.0), (-3.0, 7.0), (1000.0, 0.1), (1e6, 16.0), (1000.0, 0.03), (-1e-30, 3e-30)])
def test_values_on_and_beside_bin_edges(dtype, offset, span, monkeypatch):
    """Pixels exactly on NumPy's bin edges and one ulp either side land in NumPy's bins, on both
    the compiled and the portable path, for small and for huge offsets relative to the range."""
    nbins = 37
    low, high = dtype(offset), dtype(offset + span)
    edges = np.linspace(low, high, nbins + 1, dtype=dtype)
    values = np.concatenate([edges, np.nextafter(edges, dtype(-np.inf)), np.nextafter(edges, dtype(np.inf))])
    values = np.clip(values, low, high)
    rng = np.random.default_rng(15)
    planes = np.stack([rng.permutation(values) for _ in range(4)]).reshape(4, 3, -1)
    expected = np.stack([exposure.equalize_hist(plane, nbins) for plane in planes])
    results = {}
    for engine_available in ([True, False] if _cpu.BUILT else [False]):
        switch = contextlib.nullcontext() if engine_available else _engine.portable()
        with switch:
            results[engine_available] = equalize_hist(planes, nbins)
        np.testing.assert_array_equal(results[engine_available], expected)


def test_too_many_bins_for_a_narrow_float_range_is_refused(xp):
    images = xp.asarray(np.array([[[1000.0, 1000.001]]], np.float32))
    with pytest.raises(ValueError, match="`nbins` 37 is too many for the range of a plane in float32"):
        equalize_hist(images, 37)
    assert equalize_hist(images.astype(np.float64), 37).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinity_in_any_pixel_is_refused(engine, dtype, bad):
    """Wherever it lies (first, middle or last plane, inside the vectorised part of a plane or in
    its tail, selected by the mask or not), one non-finite pixel refuses the whole call."""
    mask = np.ones((5, 7), bool)
    mask[2, 3] = mask[4, 6] = False
    for plane, row, col in [(0, 0, 0), (1, 2, 3), (2, 4, 6)]:
        images = np.random.default_rng(16).random((3, 5, 7)).astype(dtype)
        images[plane, row, col] = bad
        for kwargs in ({}, {"mask": mask}):
            with pytest.raises(ValueError, match="`images` must not contain NaN or infinity"):
                equalize_hist(images, **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nbins", [1, 2, 3, 37, 256, 1000])
def test_compiled_float_path_matches_portable_on_awkward_planes(dtype, nbins):
    """One block of very different planes: constant, two-valued, single-pixel-wide ranges, huge
    and tiny magnitudes, uint8 levels (pixels exactly on edges), with and without a mask that
    leaves pixels outside its range. The compiled path (whole planes, plane by plane) and the
    bincount path agree bit for bit, or refuse alike."""
    if not _cpu.BUILT:
        pytest.skip("the compiled extension gpu_histeq._cpu_kernels is not built")
    rng = np.random.default_rng(17)
    shape = (24, 31)
    planes = [np.full(shape, 3.5), rng.choice([-2.0, 7.0], shape), rng.random(shape) * 1e30,
              rng.random(shape) * 1e-30 - 5e-31, 1e6 + rng.integers(0, 17, shape),
              rng.integers(0, 256, shape) / 255, rng.integers(40, 90, shape) / 255,
              rng.normal(size=shape) * 1e3, np.linspace(-1, 1, 24 * 31).reshape(shape)]
    images = np.stack(planes).astype(dtype)
    mask = rng.random(shape) < 0.3
    for kwargs in ({}, {"mask": mask}):
        try:
            compiled = equalize_hist(images, nbins, **kwargs)
        except ValueError as error:
            with pytest.raises(ValueError, match=str(error).split(":")[0]):
                portable(images, nbins, **kwargs)
            continue
        np.testing.assert_array_equal(compiled, portable(images, nbins, **kwargs))
        for plane, got in zip(images, compiled):  # and each plane on its own: scikit-image's
            if not kwargs:
                np.testing.assert_array_equal(got, exposure.equalize_hist(plane, nbins))
