"""Launch the kernels of ``adapthist.cu`` on CuPy planes (imported only for CuPy input).

scikit-image's ``equalize_adapthist`` of ``(P, prod(shape))`` planes of 2 to 6 axes in
four kernel launches (prepare, tables, interpolation, rescale) into the caller's zeroed stats
array: no host synchronisation for integer input, one status word for floating input (read by
the caller), nothing copied from the host but scalars; a configuration already seen replays its
launch plan. Device memory added: the planes' uint16 levels (2
bytes per pixel), the region tables (``planes x regions x nbins`` uint16) and, for more bins
than shared memory holds, ``planes x regions x nbins`` uint32 region histograms; tables and
histograms in groups of planes under SCRATCH_BYTES (a group costs two more launches).
"""

import math

import numpy as np

from . import _sources
from . import _kernels
from ._kernels import _NULL, MAX_GRID_BLOCKS, MAX_PIXELS, THREADS, _launch

#: Image axes the kernels take (template parameter D of adapthist.cu, at most its
#: GPU_HISTEQ_ADAPT_AXES geometry arguments).
DIMENSIONS = _sources.ADAPT_DIMENSIONS
MAX_AXES = DIMENSIONS[-1]
#: Input dtypes (float16 goes through float32, as the portable path scales it).
DTYPES = (*_sources.ADAPT_DTYPES, np.dtype(np.float16))
#: Bins whose uint32 region histogram is kept in dynamic shared memory (32 KiB, beside the
#: static shared memory of the block reductions); more bins count in a global scratch.
SHARED_BINS = 8192
#: Device bytes of region tables (and global region histograms) one launch group may hold.
SCRATCH_BYTES = 1 << 28
#: Region pixels the 32-bit region histograms count at most.
MAX_TILE_PIXELS = (1 << 32) - 1
#: Pixels each thread of the per-pixel kernels handles (their grid-stride loop).
PIXELS_PER_THREAD = 4
#: Status bits of the prepare kernel (GPU_HISTEQ_ADAPT_* in adapthist.cu).
STATUS_NOT_FINITE = 1
STATUS_OUT_OF_RANGE = 2
#: Planes of one launch along grid.y.
MAX_GRID_PLANES = 65535


def covers(planes, shape, kernel, nbins, result):
    """None when the kernels cover this call, else why not (a short phrase)."""
    dtype = np.dtype(planes.dtype)
    if dtype not in DTYPES or np.dtype(result.dtype) not in (np.float32, np.float64):
        return f"{dtype} planes"
    if len(shape) not in DIMENSIONS:
        return f"{len(shape)}-D images (the kernels take 2 to {MAX_AXES} image axes)"
    if not (planes.flags.c_contiguous and result.flags.c_contiguous):
        return "arrays that are not C-contiguous"
    if not 0 < planes.shape[1] <= MAX_PIXELS or math.prod(kernel) > MAX_TILE_PIXELS:
        return f"planes of {planes.shape[1]} pixels in regions of {kernel}"
    if nbins > np.iinfo(np.int32).max:
        return f"{nbins} bins"
    return None


def _plane_chunks(start, stop):
    return [(p, min(p + MAX_GRID_PLANES, stop)) for p in range(start, stop, MAX_GRID_PLANES)]


def _tuning():
    """The constants this launcher reads (tests change them), with ``_kernels``': its plan key."""
    return (SHARED_BINS, SCRATCH_BYTES, MAX_GRID_PLANES, PIXELS_PER_THREAD, _kernels._tuning())


@_kernels.planned(_tuning)
def adapthist(planes, stats, result, shape, kernel, nbins, clip):
    """scikit-image's CLAHE of every row of `planes` into `result` (covered by :func:`covers`).

    Parameters
    ----------
    planes : (P, N) C-contiguous cupy.ndarray
        uint8, uint16, int8, int16, float32 or float64 planes of ``N = prod(shape)`` pixels
        (float16: the caller's float32 copy).
    stats : (4 P + 1,) uint32 cupy.ndarray
        Zeroed: the status word (STATUS_* bits, floating planes) and four range words per
        plane, which the kernels fill.
    result : (P, N) C-contiguous float32 / float64 cupy.ndarray
    shape, kernel : tuple of int
        The image shape (2 to MAX_AXES axes) and the contextual region shape.
    nbins : int
    clip : (int, int, float)
        The clip limit in counts, the bin width in gray levels and the table scale
        ``16383 / prod(kernel)``, as the portable path computes them (``adaptive._adapthist``).

    Notes
    -----
    Launches on whole arrays (the first plane of each launch is an argument), so a configuration
    already seen replays its launches (``_kernels.planned``); the levels, the region tables and
    the global histograms are ``_kernels.scratch`` arrays, made again at each call.
    """
    dtype = np.dtype(planes.dtype)
    nplanes, npixels = planes.shape
    ndim = len(shape)
    sizes = tuple(np.int64(s) for s in (1,) * (MAX_AXES - ndim) + tuple(shape))
    kernels = tuple(np.int64(k) for k in (1,) * (MAX_AXES - ndim) + tuple(kernel))
    ntiles = math.prod(-(-s // k) for s, k in zip(shape, kernel))
    limit, bin_size, scale = clip
    shared = nbins <= SHARED_BINS
    levels = _kernels.scratch((nplanes, npixels), np.uint16)
    # uint16 planes are their own levels; others are converted once into `levels`, which the
    # interpolation then overwrites in place
    source = planes if dtype == np.uint16 else levels
    blocks = max(1, min(65535, -(-npixels // (THREADS * PIXELS_PER_THREAD))))
    n = np.int64(npixels)
    per_plane = ntiles * nbins * (2 + (0 if shared else 4))
    per_group = max(1, min(nplanes, SCRATCH_BYTES // per_plane, MAX_GRID_BLOCKS // ntiles))
    tables = _kernels.scratch((per_group * ntiles, nbins), np.uint16)
    scratch = _NULL if shared else _kernels.scratch(tables.shape, np.uint32)
    geometry = (*sizes, *kernels, np.int32(nbins), np.int32(bin_size))
    for start, stop in _plane_chunks(0, nplanes):
        _launch("adapthist.cu", "gpu_histeq_adapt_prepare", (dtype,), (blocks, stop - start),
                (planes, n, np.int64(start), _NULL if source is planes else levels, stats))
    for group in range(0, nplanes, per_group):
        end = min(group + per_group, nplanes)
        _launch("adapthist.cu", "gpu_histeq_adapt_tables", (ndim,), ((end - group) * ntiles,),
                (source, stats, *geometry, np.int64(limit), np.float64(scale), np.int64(group),
                 scratch, tables), shared_mem=nbins * 4 if shared else 0)
        for start, stop in _plane_chunks(group, end):
            _launch("adapthist.cu", "gpu_histeq_adapt_interp", (ndim,), (blocks, stop - start),
                    (source, stats, *geometry, np.int64(start), np.int64(group), tables, levels))
    for start, stop in _plane_chunks(0, nplanes):
        _launch("adapthist.cu", "gpu_histeq_adapt_rescale", (result.dtype,), (blocks, stop - start),
                (levels, stats, n, np.int64(start), result))
