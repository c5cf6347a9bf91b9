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
from ._kernels import _NULL, _launch

#: Bytes of dynamic shared memory the sort may use (the kernel's static part is 64 bytes).
SHARED_BYTES = 32 << 10
#: Largest plane one block sorts (beyond it the portable path runs: one block per plane would
#: take log2(n)**2 / 2 passes over it).
MAX_PIXELS = 1 << 20
#: uint16 / int16 planes of at most this many pixels sort in shared memory (2-byte keys);
#: larger uint16 planes keep the 65536-level histograms of levels.cu.
SHARED_PIXELS = SHARED_BYTES // 2

_KEYS = {1: np.uint8, 2: np.uint16, 4: np.uint32}


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
