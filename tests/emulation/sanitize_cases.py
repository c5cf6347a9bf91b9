"""Cases for the sanitizer runs (tests/test_cuda_sanitizers.py), run in a subprocess with the
sanitizer runtime preloaded and ``GPU_HISTEQ_EMU_SANITIZER`` set.

``python sanitize_cases.py cases`` runs a small set that reaches every kernel and every branch
of the launchers (one-block and multi-block, cached and uncached, aligned and unaligned, private
and global histograms, shared and global tables, masks, the status bits) and checks each result
against the portable path bit for bit; it prints ``CASES OK <n>`` at the end.

The ragged cases (:func:`ragged`) run the same kernels over packed planes of different sizes
(per-plane spans: 0-pixel, 1-pixel and odd planes whose heads are peeled, one-block and
multi-block launches, unaligned bases) against ``gpu_histeq._interop._packed``.

``python sanitize_cases.py planted <bug>`` runs a small kernel with a planted bug, for the
self-test that each detector fires: ``race`` (missing __syncthreads: ThreadSanitizer),
``overflow`` (write past the dynamic shared memory asked for: AddressSanitizer), ``cast``
(out-of-range float -> integer conversion: UBSan), ``divergent`` (a __syncthreads only some
threads reach: the emulator's barrier).
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulation import fake_cupy as cp  # noqa: E402

PLANTED = {
    "race": ("""
extern "C" __global__ void planted(int* out) {
    __shared__ int values[256];
    values[threadIdx.x] = threadIdx.x;
    // missing __syncthreads()
    out[threadIdx.x] = values[(threadIdx.x + 1) % 256];
}""", 0),
    "overflow": ("""
extern "C" __global__ void planted(int* out) {
    extern __shared__ int scratch[];
    scratch[threadIdx.x] = threadIdx.x;  // 256 ints, but the launch asks for 64 ints
    __syncthreads();
    out[threadIdx.x] = scratch[threadIdx.x];
}""", 64 * 4),
    "cast": ("""
extern "C" __global__ void planted(int* out) {
    volatile float big = 1e30f;
    out[threadIdx.x] = (int)big;
}""", 0),
    "divergent": ("""
extern "C" __global__ void planted(int* out) {
    if (threadIdx.x < 32) __syncthreads();
    out[threadIdx.x] = 1;
}""", 0),
}


def planted(name):
    code, shared = PLANTED[name]
    kernel = cp.RawModule(code=code, options=("--std=c++17", "--fmad=false"), name_expressions=("planted",))
    out = cp.zeros(256, np.int32)
    kernel.get_function("planted")((1,), (256,), (out,), shared_mem=shared)
    print("PLANTED RAN", name)


def cases():
    from emulation import build
    build.build_sources(cp.SANITIZER)  # both files at once: one compiler per core
    import gpu_histeq
    from gpu_histeq import _engine
    from gpu_histeq._cuda import _kernels

    rng = np.random.default_rng(0)
    count = 0

    def same(call, *args, **kwargs):
        nonlocal count
        with _engine.portable():
            try:
                expected, expected_error = call(*args, **kwargs), None
            except ValueError as error:
                expected, expected_error = None, str(error)
        try:
            result, error = call(*args, **kwargs), None
        except ValueError as caught:
            result, error = None, str(caught)
        assert error == expected_error, (error, expected_error)
        results = result if isinstance(result, tuple) else (result,)
        expecteds = expected if isinstance(expected, tuple) else (expected,)
        for r, e in zip(results, expecteds):
            if r is not None:
                r, e = np.asarray(r.get()), np.asarray(e.get())
                assert r.dtype == e.dtype and r.tobytes() == e.tobytes(), call
        count += 1

    def images(dtype, shape, offset=0):
        size = int(np.prod(shape))
        if np.dtype(dtype).kind == "f":
            host = rng.normal(0, 2, size + offset).astype(dtype)
        else:
            host = rng.integers(0, np.iinfo(dtype).max, size + offset, endpoint=True).astype(dtype)
        return cp.asarray(host)[offset:].reshape(shape)

    equalize = gpu_histeq.equalize_hist
    for offset in (0, 1):
        for shape in ((3, 40, 40), (2, 37, 41), (1, 200, 180)):  # cached, odd, larger than the cache
            u8 = images(np.uint8, shape, offset)
            mask = cp.asarray(rng.random(shape) < 0.5)
            mask[..., 0, 0] = True
            for method in ("opencv", "pil", "skimage"):
                same(equalize, u8, method=method)
            same(equalize, u8, mask=mask)
            for dtype in (np.float32, np.float64):
                floats = images(dtype, shape, offset)
                same(equalize, floats)
                same(equalize, floats, 70, mask=mask)
    # multi-block kernels: uint16 levels, float min/max, private and global histograms, tables
    # in shared memory (<= 256 bins) and global memory
    saved = _kernels.SMALL_PIXELS
    _kernels.SMALL_PIXELS = 0
    try:
        u16 = images(np.uint16, (2, 70, 90))
        same(equalize, u16)
        same(equalize, u16, method="skimage")
        same(equalize, images(np.uint8, (2, 70, 90), 1), method="pil")
        for dtype in (np.float32, np.float64):
            floats = images(dtype, (2, 70, 90))
            for nbins in (200, 1500):
                same(equalize, floats, nbins)
            same(equalize, images(dtype, (2, 71, 89), 1), 300)
            same(gpu_histeq.histogram, floats, 2000)
            same(equalize, cp.asarray(np.array([[[1.0, 1e30, 2.0, 3.0]]], dtype)), 8,
                 mask=cp.asarray(np.array([[[True, False, True, True]]])))
            same(equalize, cp.asarray(np.full((1, 3, 3), 1e8 if dtype == np.float32 else 1e17, dtype)))
    finally:
        _kernels.SMALL_PIXELS = saved
    same(gpu_histeq.histogram, images(np.uint8, (3, 33, 40)))
    same(gpu_histeq.histogram, images(np.uint16, (3, 33, 40)))  # wide levels: global histogram
    same(gpu_histeq.histogram, images(np.float32, (3, 33, 40), 1), 100,
         mask=cp.asarray(rng.random((3, 33, 40)) < 0.5) | cp.asarray(np.eye(33, 40, dtype=bool)))
    lut8 = cp.asarray(rng.integers(0, 255, (3, 256)).astype(np.float32))
    same(gpu_histeq.apply_lut, images(np.uint8, (3, 17, 19), 1), lut8)
    lut16 = cp.asarray(rng.integers(0, 60000, 65536).astype(np.uint16))
    same(gpu_histeq.apply_lut, images(np.uint16, (3, 17, 19)), lut16)
    # the status bits: NaN, repeated edges, an irregular subnormal plane
    nan = images(np.float32, (2, 9, 9))
    nan[1, 3, 3] = np.nan
    same(equalize, nan)
    same(equalize, cp.asarray(np.array([[[0.0, 392553, 396459, 1000000]]]) * 5e-324))
    # CLAHE (clahe.cu): the one-launch kernel of small uint8 planes (tables in shared memory),
    # the tile tables (shared-memory uint8 with more tiles than it takes, global uint16
    # histograms) and the blend; clip and no clip, padded grids, one-pixel planes; uint16: the
    # one-launch sorted tiles, sorted tiles one block each and the ranked blend, tables holding
    # their own 16-bit counts, uint32 histograms of a 65536-pixel tile
    for dtype, shape, clip, grid in ((np.uint8, (2, 37, 41), 2.0, (8, 8)), (np.uint8, (2, 1, 1), 2.0, (3, 3)),
                                     (np.uint8, (1, 30, 50), 0.0, (2, 5)), (np.uint8, (1, 40, 70), 2.0, (9, 16)),
                                     (np.uint16, (2, 33, 20), 3.0, (3, 4)), (np.uint16, (1, 1, 1), 2.0, (2, 2)),
                                     (np.uint16, (1, 120, 110), 2.0, (8, 8)),
                                     (np.uint16, (1, 150, 130), 0.0, (1, 1)),
                                     (np.uint16, (1, 256, 256), 2.0, (1, 1))):
        same(gpu_histeq.clahe, images(dtype, shape), clip, grid)
    # luminance=True (color.cu): the one-launch uint8 kernel (every method, channels last and
    # first), split and merge (large uint8 planes, uint16 and floats, a mask, the CDF to levels)
    for method in ("opencv", "pil", "skimage"):
        same(equalize, images(np.uint8, (2, 13, 17, 3), 1), channel_axis=-1, luminance=True,
             method=method)
        same(equalize, images(np.uint8, (1, 300, 230, 3)), channel_axis=-1, luminance=True,
             method=method)
    same(equalize, images(np.uint8, (2, 3, 9, 11)), channel_axis=1, luminance=True)
    for method in ("opencv", "skimage"):
        same(equalize, images(np.uint16, (2, 9, 10, 3), 1), channel_axis=-1, luminance=True,
             method=method)
    # uint16 past the planes sorted by rank: the level kernels; floats in one launch, and with
    # more bins than it takes, split, the uniform kernels and merge
    same(equalize, images(np.uint16, (1, 130, 130, 3)), channel_axis=-1, luminance=True)
    for dtype in (np.float32, np.float64):
        for nbins in (256, 300):
            same(equalize, cp.abs(images(dtype, (2, 9, 10, 3))) / 8, channel_axis=-1,
                 luminance=True, nbins=nbins)
    colour_mask = cp.asarray(rng.random((2, 9, 10, 3)) < 0.5)
    colour_mask[:, 0, 0] = True
    same(equalize, images(np.uint8, (2, 9, 10, 3)), mask=colour_mask, channel_axis=-1,
         luminance=True)
    same(gpu_histeq.clahe, images(np.uint8, (2, 30, 20, 3)), 2.0, (3, 3), channel_axis=-1,
         luminance=True)
    ragged(rng, images, same)
    ranked(rng, same)
    adapthist(rng, images, same)
    histograms(rng, same)
    launched = set(cp.LAUNCHES)
    from gpu_histeq._cuda import _sources
    kernels = {name.split("<")[0] for names in _sources.INSTANTIATIONS.values() for name in names}
    missing = kernels - {name.split("<")[0] for name in launched}
    assert not missing, f"kernels no case reached: {sorted(missing)}"
    print("CASES OK", count, "launches", sum(cp.LAUNCHES.values()))


def ragged(rng, images, same):
    """Packed planes of different sizes through ``_cuda.equalize_packed`` / ``packed_counts`` /
    ``apply_packed``, each against the portable ``_packed`` function (through `same`)."""
    from gpu_histeq import _cuda
    from gpu_histeq._cuda import _kernels
    from gpu_histeq._interop import _packed

    sizes = [0, 1, 37, 0, 300, 1029, 5]
    starts = _packed.plane_starts(sizes)
    total = int(starts[-1])

    def equalize(values, mask, method, nbins, out_dtype, offset=0):
        def call():
            from gpu_histeq import _engine
            if _engine.cuda_enabled():
                result = cp.empty(total + offset, out_dtype)[offset:]
                assert _cuda.equalize_packed(values, mask, starts, method, nbins, result)
                return result
            return _packed.equalize(cp, values, mask, starts, method, nbins, out_dtype)
        same(call)

    saved = _kernels.SMALL_PIXELS
    try:
        for small in (saved, 100):  # one-block kernels for all, then for the planes <= 100
            _kernels.SMALL_PIXELS = small
            for offset in (0, 1):
                mask = cp.asarray(rng.random(total + offset) < 0.5)[offset:]
                mask[starts[:-1][np.diff(starts) > 0]] = True
                u8 = images(np.uint8, (total,), offset)
                for method in ("opencv", "pil", "skimage"):
                    out = np.uint8 if method != "skimage" else np.float64
                    equalize(u8, None, method, 256, out, offset)
                equalize(u8, mask, "opencv", 256, np.uint8, offset)
                equalize(images(np.uint16, (total,), offset), mask, "opencv", 65536, np.uint16)
                for dtype in (np.float32, np.float64):
                    floats = images(dtype, (total,), offset)
                    equalize(floats, None, "skimage", 70, dtype, offset)
                    equalize(floats, mask, "skimage", 300, dtype, offset)
    finally:
        _kernels.SMALL_PIXELS = saved

    def counts(values, mask, nbins, level_indexed):
        bins = _packed.binning(cp, values, mask, starts, nbins, level_indexed)

        def call():
            from gpu_histeq import _engine
            if _engine.cuda_enabled():
                return _cuda.packed_counts(values, mask, starts, bins)
            return _packed.histograms(cp, values, mask, starts, bins)
        same(call)

    mask = cp.asarray(rng.random(total) < 0.5)
    mask[starts[:-1][np.diff(starts) > 0]] = True
    counts(images(np.uint8, (total,), 1), mask, 256, False)
    counts(images(np.uint16, (total,)), None, 65536, True)
    counts(images(np.float32, (total,), 1), mask, 2000, False)

    def apply(values, tables):
        def call():
            from gpu_histeq import _engine
            if _engine.cuda_enabled():
                result = cp.empty(total, tables.dtype)
                assert _cuda.apply_packed(values, starts, tables, result)
                return result
            return _packed.apply_tables(cp, values, starts, tables)
        same(call)

    apply(images(np.uint8, (total,), 1),
          cp.asarray(rng.integers(0, 255, (7, 256)).astype(np.float32)))
    apply(images(np.uint16, (total,)),
          cp.asarray(rng.integers(0, 60000, (1, 65536)).astype(np.uint16)))


def histograms(rng, same):
    """histogram / cumulative_distribution (``_cuda.histogram``: level range or minmax, the
    count, histogram.cu's finish): every integer dtype of the level range, masks, unaligned
    bases, private and global histograms, and the errors found from the status word."""
    import gpu_histeq
    for dtype in (np.int8, np.int16, np.uint32, np.int32):
        host = rng.integers(-300 if np.dtype(dtype).kind == "i" else 0, 120, 2 * 19 * 23 + 1)
        images = cp.asarray(host.astype(dtype))[1:].reshape(2, 19, 23)
        mask = cp.asarray(rng.random(images.shape) < 0.4)
        mask[..., 0, 0] = True
        same(gpu_histeq.cumulative_distribution, images, mask=mask)
        same(gpu_histeq.histogram, images)
    for dtype in (np.float32, np.float64):
        floats = cp.asarray(rng.normal(0, 2, (3, 21, 20)).astype(dtype))
        same(gpu_histeq.cumulative_distribution, floats, 1500)  # global histogram
        floats[1, 2, 3] = np.nan
        same(gpu_histeq.histogram, floats, 10)
        empty = cp.asarray(np.ones((3, 21, 20), bool))
        empty[2] = False
        same(gpu_histeq.histogram, floats, 10, mask=empty)
    # equalize_hist of float16 (uniform.cu's one-block kernel over gpu_histeq_half)
    halves = cp.asarray(rng.normal(0, 2, 3 * 17 * 19 + 1).astype(np.float16))[1:].reshape(3, 17, 19)
    mask = cp.asarray(rng.random(halves.shape) < 0.5)
    mask[..., 0, 0] = True
    same(gpu_histeq.equalize_hist, halves, 100, mask=mask)
    same(gpu_histeq.equalize_hist, cp.asarray(np.resize(np.float16([-65504, 0, 65504]), (2, 5, 5))))
    large = cp.asarray(rng.uniform(-1, 1, (1, 260, 257)).astype(np.float16))  # multi-block kernels
    same(gpu_histeq.equalize_hist, large, 300, mask=large > -0.5)
    same(gpu_histeq.cumulative_distribution, large, 40)


def ranked(rng, same):
    """equalize_hist by rank (ranks.cu): small 8/16-bit and 32-bit planes, small uint16 planes; the sort
    in shared memory and in a global scratch, masks, unaligned bases, packed planes."""
    import gpu_histeq
    from gpu_histeq._cuda import _ranks

    def values(dtype, shape, offset=0):
        info = np.iinfo(dtype)
        low, high = max(int(info.min), -(1 << 22)), min(int(info.max), 1 << 22)
        host = rng.integers(low, high, int(np.prod(shape)) + offset, endpoint=True)
        return cp.asarray(host.astype(dtype))[offset:].reshape(shape)

    for dtype in (np.int8, np.int16, np.int32, np.uint32):  # keys in shared memory
        for offset, shape in ((0, (3, 9, 16)), (1, (2, 13, 7)), (0, (2, 1, 1))):
            images = values(dtype, shape, offset)
            mask = cp.asarray(rng.random(shape) < 0.4)
            mask[..., 0, 0] = True
            same(gpu_histeq.equalize_hist, images, mask=mask if offset else None)
    for method in ("opencv", "skimage"):
        same(gpu_histeq.equalize_hist, values(np.uint16, (2, 21, 19), 1), method=method)
    saved = _ranks.SHARED_BYTES
    try:  # keys in a global scratch
        _ranks.SHARED_BYTES = 0
        for dtype in (np.int8, np.int32):
            images = values(dtype, (2, 13, 7), 1)
            mask = cp.asarray(rng.random(images.shape) < 0.4)
            mask[..., 0, 0] = True
            same(gpu_histeq.equalize_hist, images, mask=mask)
    finally:
        _ranks.SHARED_BYTES = saved
    ragged_list = [values(np.int16, s) for s in ((1, 1), (7, 5), (3, 40))]
    same(lambda: tuple(gpu_histeq.equalize_hist(ragged_list)))
    # int8 planes past _ranks.SHARED_PIXELS[1]: the uint8 level kernels, sign bit flipped
    same(gpu_histeq.equalize_hist, values(np.int8, (1, 190, 190)))
    # 16-bit planes past _ranks.SHARED_PIXELS[2] keep the level histograms and tables (int16: bins
    # v + 32768)
    same(gpu_histeq.equalize_hist, values(np.uint16, (1, 130, 130)))
    large = values(np.int16, (1, 130, 130))
    same(gpu_histeq.equalize_hist, large, mask=large > 0)
    # match_histograms: sorted keys of images and references, the match through shared,
    # per-plane and broadcast references; floats with the status word
    for dtype in (np.uint8, np.int32, np.float64):
        if np.dtype(dtype).kind == "f":
            images, reference = (cp.asarray(rng.normal(0, 2, s).astype(dtype))
                                 for s in ((2, 3, 17, 13), (2, 1, 9, 10)))
        else:
            images, reference = values(dtype, (2, 3, 17, 13)), values(dtype, (2, 1, 9, 10))
        same(gpu_histeq.match_histograms, images, reference)
        if dtype != np.int32:
            same(gpu_histeq.match_histograms, images, reference[0, 0])
    nan = cp.asarray(np.array([[[1.0, np.nan], [2.0, 3.0]]], np.float32))
    same(gpu_histeq.match_histograms, nan, nan[0])
    saved = _ranks.MATCH_SHARED_BYTES
    try:  # the images' keys sorted in global memory too, then gpu_histeq_match
        _ranks.MATCH_SHARED_BYTES = 0
        for dtype in (np.uint8, np.float32):
            images = cp.asarray(rng.integers(0, 200, (2, 1, 37, 29)).astype(dtype))
            same(gpu_histeq.match_histograms, images, images[::-1, :, ::2] + 1)
        same(gpu_histeq.match_histograms, nan, nan[0])
    finally:
        _ranks.MATCH_SHARED_BYTES = saved


def adapthist(rng, images, same):
    """equalize_adapthist (adapthist.cu): every input dtype, 2-D and 3-D, shared and global region
    histograms, the device clip loop (clumped values, small clip), the status word."""
    import gpu_histeq
    run = gpu_histeq.equalize_adapthist
    for dtype in (np.uint8, np.uint16, np.int8, np.int16):
        same(run, images(dtype, (2, 19, 23)), 6, 0.01, 64)
    unit = [cp.asarray(rng.random((2, 37, 41)).astype(t)) for t in (np.float32, np.float64)]
    clumped = cp.asarray((rng.choice([0.1, 0.8], (2, 40, 50)) + rng.random((2, 40, 50)) * 1e-3))
    for planes in unit + [clumped]:
        same(run, planes, 10, 0.002, 16)  # the redistribution loop runs
    same(run, unit[1], (12, 14), 0.003, 9000)  # histograms in global memory
    same(run, cp.asarray(rng.random((1, 9, 10, 11))), (3, 4, 5), 0.01, 32, axes=(1, 2, 3))
    same(run, images(np.uint8, (1, 4, 5, 6, 7)), (2, 3, 3, 4), 0.05, 32, axes=(1, 2, 3, 4))
    bad = cp.asarray(np.array([[[0.5, np.nan], [0.2, 0.1]]]))
    same(run, bad, 1)
    same(run, bad * 4, 1)  # NaN first, as the portable check


if __name__ == "__main__":
    sys.modules["cupy"] = cp
    if sys.argv[1] == "cases":
        cases()
    else:
        planted(sys.argv[2])
