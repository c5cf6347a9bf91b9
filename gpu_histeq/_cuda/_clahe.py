"""Launch the CLAHE kernels of ``clahe.cu`` on CuPy planes (imported only for CuPy input).

Small uint8 planes (at most SMALL_PIXELS pixels, at most SMALL_TILES tiles) take one launch of
``gpu_histeq_clahe_small`` (one block per plane, the tile tables in shared memory). Others
take two launches per group of planes: ``gpu_histeq_clahe_tables`` (one block per tile) and
``gpu_histeq_clahe_blend`` (a grid over the pixels of every plane). The only device memory
added is the tile tables (``planes x tiles x L`` of the pixel type) and, for uint16, the
``planes x tiles x 65536`` uint32 tile histograms, in groups of planes whose scratch stays
under SCRATCH_BYTES. Nothing is copied from the host but scalars.
"""

import cupy
import numpy as np

from . import _sources
from ._kernels import MAX_GRID_BLOCKS, MAX_PIXELS, THREADS, _launch, planned

#: Device bytes of tile tables (and uint16 tile histograms) one launch group may hold: 8 planes of
#: 1080p uint8 with 8x8 tiles take 128 KiB; uint16 planes with 8x8 tiles take 24 MiB each.
SCRATCH_BYTES = 1 << 28
#: Planes of at most this many pixels, with at most this many tiles (their uint8 tables in
#: 32 KiB of dynamic shared memory, beside 8.2 KiB of static), take the one-launch kernel.
SMALL_PIXELS = 1 << 16
SMALL_TILES = 128
#: Tile pixels the 32-bit tile histograms count at most.
MAX_TILE_PIXELS = (1 << 32) - 1
#: Pixels each thread of the blend handles (its grid-stride loop), and the most blocks per plane.
BLEND_PIXELS_PER_THREAD = 4
MAX_BLEND_BLOCKS = 65535


@planned(lambda: (SMALL_PIXELS, SMALL_TILES, SCRATCH_BYTES))
def clahe(planes, shape, grid, tile_shape, limit, scale, result):
    """OpenCV's CLAHE of every row of ``(P, H * W)`` uint8 / uint16 `planes` into `result`.

    Parameters
    ----------
    planes : (P, H * W) C-contiguous cupy.ndarray
    shape : (int, int)
        ``(H, W)``.
    grid : (int, int)
        Tiles along the rows and the columns.
    tile_shape : (int, int)
        Pixels of a tile along the rows and the columns (the padded extents over `grid`).
    limit : int
        The clip limit in counts (0: no clipping).
    scale : numpy.float32
        ``(L - 1) / tile pixels``, as the portable path computes it.
    result : (P, H * W) C-contiguous cupy.ndarray of ``planes.dtype``

    Returns
    -------
    bool
        False, writing nothing, for other dtypes, non-contiguous arrays, planes of 2**31 pixels
        or more, or tiles of 2**32 pixels or more (32-bit tile counts); else True.
    """
    dtype = np.dtype(planes.dtype)
    if (dtype not in _sources.LEVEL_DTYPES or result.dtype != dtype
            or not (planes.flags.c_contiguous and result.flags.c_contiguous)
            or not 0 < planes.shape[1] <= MAX_PIXELS
            or tile_shape[0] * tile_shape[1] > MAX_TILE_PIXELS):
        return False
    nbins = 256 if dtype == np.uint8 else 65536
    nplanes, npixels = planes.shape
    ntiles = grid[0] * grid[1]
    row_inverse = np.float32(1.0) / np.float32(tile_shape[0])
    col_inverse = np.float32(1.0) / np.float32(tile_shape[1])
    geometry = (np.int64(shape[0]), np.int64(shape[1]), np.int32(grid[0]), np.int32(grid[1]))
    clip = (np.int64(tile_shape[0]), np.int64(tile_shape[1]), np.int64(limit), np.float32(scale))
    if nbins == 256 and npixels <= SMALL_PIXELS and ntiles <= SMALL_TILES:
        with planes.device:
            _launch("clahe.cu", "gpu_histeq_clahe_small", (dtype,), (nplanes,),
                    (planes, *geometry, *clip, row_inverse, col_inverse, result),
                    shared_mem=ntiles * 256)
        return True
    per_plane = ntiles * nbins * (dtype.itemsize + (4 if nbins > 256 else 0))
    # grid.y of the blend holds at most 65535 planes, grid.x of the tables 2**31 - 1 tiles
    per_group = max(1, min(65535, nplanes, SCRATCH_BYTES // per_plane, MAX_GRID_BLOCKS // ntiles))
    tables = cupy.empty((per_group * ntiles, nbins), dtype)
    scratch = (cupy.empty((per_group * ntiles, nbins), np.uint32) if nbins > 256
               else np.uint64(0))
    blocks = max(1, min(MAX_BLEND_BLOCKS, -(-npixels // (THREADS * BLEND_PIXELS_PER_THREAD))))
    with planes.device:
        for start in range(0, nplanes, per_group):
            rows = slice(start, min(start + per_group, nplanes))
            count = rows.stop - rows.start
            values = planes[rows]
            _launch("clahe.cu", "gpu_histeq_clahe_tables", (dtype,), (count * ntiles,),
                    (values, *geometry, *clip, scratch, tables))
            _launch("clahe.cu", "gpu_histeq_clahe_blend", (dtype,), (blocks, count),
                    (values, *geometry, row_inverse, col_inverse, tables, result[rows]))
    return True
