"""Launch the rank equalization of ``ranks.cu`` on CuPy planes (imported only for CuPy input).

One launch per group of planes, one block per plane: the block sorts its plane's selected values
(bitonic, in dynamic shared memory when the padded plane's keys fit SHARED_BYTES, else in a
global scratch of ``planes x size`` keys per group, under _planes.CHUNK_BINS keys) and reads
each pixel's rank by binary search. No table per level, so int32 / uint32 planes of any range
take it, and no host synchronisation: the result's shape is known from the input.
"""

import cupy
import numpy as np

from . import _sources
from ._kernels import _NULL, THREADS, _launch

#: Bytes of dynamic shared memory the sort may use (the kernel's static part is 64 bytes).
SHARED_BYTES = 32 << 10
#: Largest plane one block sorts (beyond it the portable path runs: one block per plane would
#: take log2(n)**2 / 2 passes over it).
MAX_PIXELS = 1 << 20
#: 8-bit / 16-bit planes of at most this many pixels (by key size) sort in shared memory and take
#: the rank kernel; larger ones take the level kernels of levels.cu (int8 with its sign bit
#: flipped, int16 binned from -32768), which need no global sort scratch. Fixed here, not
#: derived from SHARED_BYTES at the call, so a test that shrinks SHARED_BYTES forces the scratch.
SHARED_PIXELS = {1: SHARED_BYTES, 2: SHARED_BYTES // 2}

_KEYS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def padded(npixels):
    """Slots of the sort of a plane of `npixels` pixels: the next power of two (at least 1)."""
    return 1 << max(0, int(npixels) - 1).bit_length()


def equalize_ranked(planes, method):
    """Equalize ``_kernels.Planes`` of a RANK_DTYPES dtype into ``planes.out`` by rank.

    Parameters
    ----------
    planes : _kernels.Planes
        Planes of at most MAX_PIXELS pixels (either layout).
    method : {"opencv", "skimage"}
        ``"opencv"`` for uint16 planes only.
    """
    dtype = np.dtype(planes.values.dtype)
    size = padded(planes.largest)
    args = (dtype, _sources.METHODS[method], planes.out.dtype)
    if size * dtype.itemsize <= SHARED_BYTES:
        grid, kernel_args = planes.one_block()
        _launch("ranks.cu", "gpu_histeq_equalize_ranked", args, grid,
                (*kernel_args, _NULL, np.int64(0), planes.out), shared_mem=size * dtype.itemsize)
        return
    for _, group in planes.groups(size):
        scratch = cupy.empty((group.count, size), _KEYS[dtype.itemsize])
        grid, kernel_args = group.one_block()
        _launch("ranks.cu", "gpu_histeq_equalize_ranked", args, grid,
                (*kernel_args, scratch, np.int64(size), group.out))


#: Bits of the status word of match (``flag`` of gpu_histeq_sort_keys): NaN or infinity in the
#: images, in the reference.
STATUS_IMAGES_NOT_FINITE = 1
STATUS_REFERENCE_NOT_FINITE = 2
#: Bytes of images' keys gpu_histeq_match_shared sorts in dynamic shared memory (its static part
#: is the block reduction's 32 bytes): float32 planes up to 10240 pixels, uint8 up to 40960.
MATCH_SHARED_BYTES = 40 << 10
#: Pixels each thread of gpu_histeq_match handles (its grid-stride loop).
MATCH_PIXELS_PER_THREAD = 4


def _sorted_keys(rows, flag, status):
    """``(R, N)`` keys of every row of C-contiguous ``(R, N)`` `rows`, sorted (one launch; no
    padding: gpu_histeq_bitonic_sort_n)."""
    dtype = np.dtype(rows.dtype)
    keys = cupy.empty(rows.shape, _KEYS[dtype.itemsize])
    _launch("ranks.cu", "gpu_histeq_sort_keys", (dtype,), (rows.shape[0],),
            (rows, np.int64(rows.shape[1]), keys, np.int64(rows.shape[1]), np.int32(flag),
             _NULL if status is None else status))
    return keys


def match(planes, ref_planes, owner, result):
    """scikit-image's histogram matching of every row of `planes` through row ``owner[p]`` of
    `ref_planes`, into `result`: sort the reference, then match in one block per plane that sorts
    its plane in shared memory (planes of at most MATCH_SHARED_BYTES of keys), else sort both
    and match (three launches).

    Parameters
    ----------
    planes : (P, N_s) C-contiguous cupy.ndarray
    ref_planes : (R, N_t) C-contiguous cupy.ndarray of the same dtype
        Rows of at most MAX_PIXELS pixels each, like `planes`.
    owner : (P,) int host numpy.ndarray
        Reference row of each plane: passed as a step (0: one reference, 1: one per plane) where
        it is one, else copied to the device.
    result : (P, N_s) float64 (or, for float32 planes, float32) C-contiguous cupy.ndarray

    Returns
    -------
    (1,) int32 cupy.ndarray or None
        The status word (STATUS_* bits) for floating planes, None for integers (nothing to
        check: no synchronisation).
    """
    floating = np.dtype(planes.dtype).kind == "f"
    status = cupy.zeros(1, np.int32) if floating else None
    nplanes, npixels = planes.shape
    key_bytes = npixels * np.dtype(_KEYS[planes.itemsize]).itemsize
    # the images' keys sorted by the matching block in shared memory where they fit
    source = None if key_bytes <= MATCH_SHARED_BYTES else _sorted_keys(
        planes, STATUS_IMAGES_NOT_FINITE, status)
    reference = _sorted_keys(ref_planes, STATUS_REFERENCE_NOT_FINITE, status)
    owner = np.asarray(owner, np.int64)
    if not owner.any():
        rows, step = _NULL, 0
    elif np.array_equal(owner, np.arange(nplanes)):
        rows, step = _NULL, 1
    else:  # a reference batch broadcast over some batch axes only: P int64 up
        rows, step = cupy.asarray(owner), 0
    types = (planes.dtype, ref_planes.dtype, result.dtype)
    if source is None:
        _launch("ranks.cu", "gpu_histeq_match_shared", types, (nplanes,),
                (planes, np.int64(npixels), reference, np.int64(reference.shape[1]),
                 np.int64(ref_planes.shape[1]), rows, np.int64(step),
                 np.int32(STATUS_IMAGES_NOT_FINITE), _NULL if status is None else status, result),
                shared_mem=key_bytes)
        return status
    per_block = THREADS * MATCH_PIXELS_PER_THREAD
    grid = (nplanes, max(1, min(65535, -(-npixels // per_block))))
    _launch("ranks.cu", "gpu_histeq_match", types, grid,
            (planes, np.int64(npixels), source, np.int64(source.shape[1]), reference,
             np.int64(reference.shape[1]), np.int64(ref_planes.shape[1]), rows, np.int64(step),
             result))
    return status
