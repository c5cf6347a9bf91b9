"""Build and launch the CUDA kernels on CuPy arrays (imported only for CuPy input).

Each launcher takes C-contiguous ``(P, N)`` planes and writes into preallocated arrays; the only
device memory it adds is per-plane scratch, at most ``_planes.CHUNK_BINS`` bins at a time.
"""

import cupy
import numpy as np

from .. import _planes
from . import _sources

#: Threads of every block (GPU_HISTEQ_THREADS in common.cuh).
THREADS = 256
WARPS = THREADS // 32
#: Planes of at most this many pixels are equalized by one block each, in one launch.
SMALL_PIXELS = 1 << 16
#: Bins of the shared-memory tables of the one-block kernels (GPU_HISTEQ_SMALL_BINS).
SMALL_BINS = 256
#: Plane bytes the one-block kernels keep in shared memory (their static shared memory plus this
#: stays under the 48 KiB a block gets without opting in).
CACHE_BYTES_U8 = 32 << 10
CACHE_BYTES_FLOAT = 38 << 10
#: Bins up to which the multi-block histograms are private to each warp in shared memory.
PRIVATE_BINS = 1024
#: 16-byte packs each thread of a multi-block kernel handles.
PACKS_PER_THREAD = 8
#: Counts are 32-bit: planes must have fewer pixels.
MAX_PIXELS = (1 << 31) - 1
#: Bits of the status word of the float kernels (GPU_HISTEQ_* in uniform.cu): NaN or infinity;
#: repeated bin edges; a plane the portable path interpolates with numpy.interp's own search.
STATUS_NOT_FINITE = 1
STATUS_REPEATED_EDGES = 2
STATUS_IRREGULAR = 4

_NULL = np.uint64(0)  # a null pointer argument (no mask, no per-plane low level)


@cupy.memoize(for_each_device=True)
def kernel(filename, name):
    """The compiled instantiation `name` (a name expression of `filename`) on this device."""
    if name not in _sources.INSTANTIATIONS[filename]:
        raise KeyError(f"{name} is not an instantiation listed in _sources.INSTANTIATIONS")
    module = cupy.RawModule(code=_sources.source(filename), options=_sources.OPTIONS,
                            name_expressions=(name,))
    return module.get_function(name)


def _launch(filename, kernel_name, template_args, grid, args, shared_mem=0):
    name = _sources.expression(kernel_name, *template_args)
    kernel(filename, name)(grid, (THREADS,), args, shared_mem=shared_mem)


def _pointer(array):
    return _NULL if array is None else array


def aligned(planes, mask_planes=None, out=None):
    """1 when every plane row (and its mask and output rows) starts on a 16-byte pack."""
    per_pack = 16 // planes.itemsize
    ok = planes.data.ptr % 16 == 0 and planes.shape[1] % per_pack == 0
    if mask_planes is not None:
        ok = ok and mask_planes.data.ptr % per_pack == 0
    if out is not None:
        ok = ok and out.data.ptr % min(16, per_pack * out.itemsize) == 0
    return np.int32(ok)


def blocks_per_plane(npixels, itemsize):
    """Blocks of a multi-block kernel for one plane: PACKS_PER_THREAD packs per thread."""
    per_block = THREADS * (16 // itemsize) * PACKS_PER_THREAD
    return max(1, min(65535, -(-npixels // per_block)))


def plane_groups(nplanes, bins):
    """Slices of planes whose per-plane scratch (``bins`` entries each) stays under CHUNK_BINS."""
    size = max(1, _planes.CHUNK_BINS // max(bins, 1))
    return [slice(p, min(p + size, nplanes)) for p in range(0, nplanes, size)]


def _rows(array, rows):
    return None if array is None else array[rows]


# ---- integer levels (levels.cu)

def level_histograms(planes, mask_planes, low, nbins, hists):
    """Add the counts of ``clamp(value - low[p], 0, nbins - 1)`` into ``(P, nbins)`` uint32 `hists`."""
    nplanes, npixels = planes.shape
    private = nbins <= PRIVATE_BINS
    _launch("levels.cu", "gpu_histeq_level_histogram", (planes.dtype,),
            (nplanes, blocks_per_plane(npixels, planes.itemsize)),
            (planes, _pointer(mask_planes), np.int64(npixels), aligned(planes, mask_planes),
             _pointer(low), np.int32(nbins), np.int32(private), hists),
            shared_mem=WARPS * nbins * 4 if private else 0)


def remap(planes, tables, table_stride, result):
    """``result[p, i] = tables[p * table_stride + planes[p, i]]`` (stride 0: one shared table)."""
    nplanes, npixels = planes.shape
    _launch("levels.cu", "gpu_histeq_remap", (planes.dtype, result.dtype),
            (nplanes, blocks_per_plane(npixels, planes.itemsize)),
            (planes, np.int64(npixels), aligned(planes, None, result), tables,
             np.int64(table_stride), np.int32(tables.shape[-1]), result))


def equalize_levels(planes, mask_planes, method, result):
    """Equalize uint8 / uint16 planes with one bin per level (opencv, pil, skimage)."""
    nplanes, npixels = planes.shape
    method_id = _sources.METHODS[method]
    if planes.dtype == np.uint8 and npixels <= SMALL_PIXELS:
        is_aligned = aligned(planes, mask_planes, result)
        cache = bool(is_aligned) and npixels <= CACHE_BYTES_U8
        _launch("levels.cu", "gpu_histeq_equalize_small_u8", (method_id, result.dtype), (nplanes,),
                (planes, _pointer(mask_planes), np.int64(npixels), is_aligned, np.int32(cache),
                 result),
                shared_mem=npixels if cache else 0)
        return
    levels = 1 << (8 * planes.itemsize)
    for rows in plane_groups(nplanes, levels):
        count = rows.stop - rows.start
        hists = cupy.zeros((count, levels), np.uint32)
        level_histograms(planes[rows], _rows(mask_planes, rows), None, levels, hists)
        tables = cupy.empty((count, levels), result.dtype)
        _launch("levels.cu", "gpu_histeq_level_tables", (method_id, result.dtype), (count,),
                (hists, np.int32(levels), tables))
        remap(planes[rows], tables, levels, result[rows])


# ---- floating values, uniform bins (uniform.cu)

def uniform_histograms(planes, mask_planes, low, high, widen, nbins, hists):
    """Add numpy.histogram's counts over ``[low[p], high[p]]`` into ``(P, nbins)`` uint32 `hists`."""
    nplanes, npixels = planes.shape
    private = nbins <= PRIVATE_BINS
    _launch("uniform.cu", "gpu_histeq_uniform_histogram", (planes.dtype,),
            (nplanes, blocks_per_plane(npixels, planes.itemsize)),
            (planes, _pointer(mask_planes), np.int64(npixels), aligned(planes, mask_planes),
             low, high, np.int32(widen), np.int32(nbins), np.int32(private), hists),
            shared_mem=WARPS * nbins * 4 if private else 0)


def equalize_uniform(planes, mask_planes, nbins, result, status):
    """Equalize float32 / float64 planes as scikit-image; ORs STATUS_* bits into ``status[0]``."""
    nplanes, npixels = planes.shape
    dtype = planes.dtype
    if npixels <= SMALL_PIXELS and nbins <= SMALL_BINS:
        is_aligned = aligned(planes, mask_planes, result)
        cache = bool(is_aligned) and npixels * planes.itemsize <= CACHE_BYTES_FLOAT
        _launch("uniform.cu", "gpu_histeq_equalize_small_float", (dtype,), (nplanes,),
                (planes, _pointer(mask_planes), np.int64(npixels), is_aligned, np.int32(cache),
                 np.int32(nbins), status, result),
                shared_mem=npixels * planes.itemsize if cache else 0)
        return
    grid_blocks = blocks_per_plane(npixels, planes.itemsize)
    for rows in plane_groups(nplanes, nbins):
        count = rows.stop - rows.start
        group, group_mask = planes[rows], _rows(mask_planes, rows)
        low = cupy.full(count, np.inf, dtype)
        high = cupy.full(count, -np.inf, dtype)
        _launch("uniform.cu", "gpu_histeq_minmax", (dtype,), (count, grid_blocks),
                (group, _pointer(group_mask), np.int64(npixels), aligned(group, group_mask),
                 low, high, status))
        hists = cupy.zeros((count, nbins), np.uint32)
        uniform_histograms(group, group_mask, low, high, 1, nbins, hists)
        values, positions, slopes = (cupy.empty((count, nbins), np.float64) for _ in range(3))
        _launch("uniform.cu", "gpu_histeq_uniform_tables", (dtype,), (count,),
                (hists, low, high, np.int32(nbins), values, positions, slopes, status))
        _launch("uniform.cu", "gpu_histeq_uniform_remap", (dtype,), (count, grid_blocks),
                (group, np.int64(npixels), aligned(group, None, result[rows]), low, high,
                 np.int32(nbins), values, positions, slopes, result[rows]))
