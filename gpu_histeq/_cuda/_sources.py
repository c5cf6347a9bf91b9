"""Kernel sources, their template instantiations and compile options, without CuPy.

One place for the loader (:mod:`gpu_histeq._cuda._kernels`, through CuPy) and for the NVRTC
compile test (through ``cuda.bindings.nvrtc``): what the test compiles is what CuPy builds.
"""

from pathlib import Path

import numpy as np

#: Compile options of every kernel. ``--fmad=false``: no multiply-add contraction, so each
#: product and sum rounds on its own as in CuPy's one-operation-per-kernel portable path.
#: ``-ftz=true``: CuPy appends it to every compile (its own elementwise kernels included), so the
#: kernels flush float32 subnormals exactly as the portable path does; named here so that the
#: NVRTC test builds what CuPy builds.
OPTIONS = ("--std=c++17", "--fmad=false", "-ftz=true")

#: Method ids, as the ``GPU_HISTEQ_*`` macros in common.cuh.
METHODS = {"opencv": 0, "pil": 1, "skimage": 2}

#: The one dtype -> C type table.
C_TYPES = {
    np.dtype(np.uint8): "unsigned char",
    np.dtype(np.int8): "signed char",
    np.dtype(np.uint16): "unsigned short",
    np.dtype(np.int16): "short",
    np.dtype(np.uint32): "unsigned int",
    np.dtype(np.int32): "int",
    np.dtype(np.uint64): "unsigned long long",
    np.dtype(np.int64): "long long",
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
}

LEVEL_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))
#: Signed levels the level kernels take with the sign bit flipped (``_cuda._sign_flipped``).
SIGNED_LEVEL_DTYPES = (np.dtype(np.int8), np.dtype(np.int16))
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: Integer dtypes equalized by rank (ranks.cu): int32 / uint32 planes, and int8 / uint16 / int16
#: planes of at most ``_ranks.SHARED_PIXELS`` pixels (larger ones: the level kernels).
RANK_DTYPES = (np.dtype(np.int8), np.dtype(np.uint16), np.dtype(np.int16), np.dtype(np.uint32),
               np.dtype(np.int32))

#: Integer dtypes whose histograms (one bin per level over each plane's range) the level kernels
#: count; float16 / float32 / float64 take the uniform ones (histogram.cu finishes both).
HISTOGRAM_LEVEL_DTYPES = (*LEVEL_DTYPES, *SIGNED_LEVEL_DTYPES, np.dtype(np.uint32),
                          np.dtype(np.int32))

_DIRECTORY = Path(__file__).parent


#: float16 in kernel templates: uniform.cu's gpu_histeq_half (2 bytes, numpy.float16's
#: arithmetic); not in C_TYPES, which lists the dtypes of tables and results of every kernel.
HALF = np.dtype(np.float16)
#: Bins of float16 planes the kernels take: up to here every bin index is a float16 integer, as
#: the portable numpy.arange(nbins + 1, dtype=float16) edges need (more: the portable path).
HALF_BINS = 2048
_TEMPLATE_TYPES = {**C_TYPES, HALF: "gpu_histeq_half"}


def expression(kernel, *template_args):
    """The name expression of one instantiation, e.g. ``gpu_histeq_remap<unsigned char, float>``."""
    args = ", ".join(str(_TEMPLATE_TYPES[np.dtype(a)] if not isinstance(a, int) else a)
                     for a in template_args)
    return f"{kernel}<{args}>"


#: Dtypes matched by rank (ranks.cu), images and reference of the same dtype.
MATCH_DTYPES = (np.dtype(np.uint8), *RANK_DTYPES, *FLOAT_DTYPES)


def _level_expressions():
    u8, u16, f64 = np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float64)
    opencv, pil, skimage = METHODS["opencv"], METHODS["pil"], METHODS["skimage"]
    names = [expression("gpu_histeq_equalize_small_u8", m, out)
             for m, out in ((opencv, u8), (pil, u8), (skimage, f64))]
    names += [expression("gpu_histeq_level_histogram", t) for t in HISTOGRAM_LEVEL_DTYPES]
    names += [expression("gpu_histeq_level_range", t) for t in HISTOGRAM_LEVEL_DTYPES]
    names += [expression("gpu_histeq_level_tables", m, out)
              for m, out in ((opencv, u8), (pil, u8), (skimage, f64), (opencv, u16))]
    names += [expression("gpu_histeq_remap", t, out) for t in LEVEL_DTYPES for out in C_TYPES]
    # large 16-bit planes, skimage: cumulative counts in place, entries made per pixel
    names += [expression("gpu_histeq_level_cumulative", np.uint32)]
    names += [expression("gpu_histeq_remap_cumulative", t) for t in (u16, np.int16)]
    return names


def _uniform_expressions():
    kernels = ("gpu_histeq_minmax", "gpu_histeq_uniform_histogram", "gpu_histeq_uniform_tables",
               "gpu_histeq_uniform_remap", "gpu_histeq_equalize_small_float")
    return [expression(kernel, t) for kernel in kernels for t in (*FLOAT_DTYPES, HALF)]


def _clahe_expressions():
    kernels = ("gpu_histeq_clahe_tables", "gpu_histeq_clahe_blend")
    return [expression(kernel, t) for kernel in kernels for t in LEVEL_DTYPES] + [
        expression("gpu_histeq_clahe_small", np.uint8),
        *(expression(kernel, np.uint16) for kernel in (
            "gpu_histeq_clahe_ranked", "gpu_histeq_clahe_rank_tiles",
            "gpu_histeq_clahe_ranked_blend"))]


#: Pixel dtypes of the luma round trip (color.cu), and the order of the channels -> its ``bgr``.
LUMA_DTYPES = LEVEL_DTYPES + FLOAT_DTYPES
ORDERS = {"rgb": 0, "bgr": 1}


def _color_expressions():
    u8, f64 = np.dtype(np.uint8), np.dtype(np.float64)
    names = [expression("gpu_histeq_split_luma", t) for t in LUMA_DTYPES]
    names += [expression("gpu_histeq_merge_luma", t, t) for t in LUMA_DTYPES]
    names += [expression("gpu_histeq_merge_luma", t, f64) for t in LEVEL_DTYPES]
    names += [expression("gpu_histeq_equalize_luma_small_u8", METHODS[m], out)
              for m, out in (("opencv", u8), ("pil", u8), ("skimage", f64))]
    names += [expression("gpu_histeq_luma_histogram", t) for t in LEVEL_DTYPES]
    names += [expression("gpu_histeq_luma_remap", t, table) for t in LEVEL_DTYPES
              for table in (t, f64)]
    names += [expression("gpu_histeq_equalize_luma_ranked", np.uint16, METHODS[m])
              for m in ("opencv", "skimage")]
    return names + [expression("gpu_histeq_equalize_luma_small_float", t) for t in FLOAT_DTYPES]


def _rank_expressions():
    skimage, f64 = METHODS["skimage"], np.dtype(np.float64)
    names = [expression("gpu_histeq_equalize_ranked", t, skimage, f64) for t in RANK_DTYPES]
    names += [expression("gpu_histeq_equalize_ranked", np.uint16, METHODS["opencv"], np.uint16)]
    names += [expression("gpu_histeq_sort_keys", t) for t in MATCH_DTYPES]
    f32 = np.dtype(np.float32)
    return names + [expression(kernel, t, t, f64) for kernel in MATCH_KERNELS
                    for t in MATCH_DTYPES] + [
        expression(kernel, f32, f32, f32) for kernel in MATCH_KERNELS]  # float32 result


#: The match after both sorts, and the one that sorts the images' keys in shared memory itself.
MATCH_KERNELS = ("gpu_histeq_match", "gpu_histeq_match_shared")


def _histogram_expressions():
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    return [expression("gpu_histeq_level_finish", f64)] + [
        expression("gpu_histeq_uniform_finish", t, cdf)
        for t, cdf in ((f32, f32), (f64, f64), (HALF, f32))]


#: Input dtypes of equalize_adapthist's prepare kernel (adapthist.cu; float16 through float32),
#: and the image axes of its region kernels (GPU_HISTEQ_ADAPT_AXES = 6 geometry arguments).
ADAPT_DTYPES = (*LEVEL_DTYPES, *SIGNED_LEVEL_DTYPES, *FLOAT_DTYPES)
ADAPT_DIMENSIONS = (2, 3, 4, 5, 6)


def _adapthist_expressions():
    names = [expression("gpu_histeq_adapt_prepare", t) for t in ADAPT_DTYPES]
    names += [expression(kernel, ndim) for kernel in ("gpu_histeq_adapt_tables",
                                                      "gpu_histeq_adapt_interp") for ndim in ADAPT_DIMENSIONS]
    return names + [expression("gpu_histeq_adapt_rescale", t) for t in FLOAT_DTYPES]


#: Every instantiation the loader may ask for, by source file: the compile test builds them all.
INSTANTIATIONS = {"levels.cu": _level_expressions(), "uniform.cu": _uniform_expressions(),
                  "histogram.cu": _histogram_expressions(),
                  "clahe.cu": _clahe_expressions(), "color.cu": _color_expressions(),
                  "ranks.cu": _rank_expressions(), "adapthist.cu": _adapthist_expressions()}
#: Files compiled in front of a file (after common.cuh) for the device functions it shares.
PRELUDES = {"color.cu": ("levels.cu", "ranks.cu", "uniform.cu"), "clahe.cu": ("ranks.cu",),
            "histogram.cu": ("uniform.cu",)}


def source(filename):
    """The text compiled for `filename`: common.cuh, its :data:`PRELUDES`, then the file (no
    #include, so a compile cache keyed on the text sees a change in any of them)."""
    text = (_DIRECTORY / "common.cuh").read_text()
    for name in (*PRELUDES.get(filename, ()), filename):
        text += "\n// ---- " + name + "\n" + (_DIRECTORY / name).read_text()
    return text
