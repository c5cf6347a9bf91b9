"""Launch the CLAHE kernels of ``clahe.cu`` on CuPy planes (imported only for CuPy input).

Two launches per group of planes: ``gpu_histeq_clahe_tables`` (one block per tile) and
``gpu_histeq_clahe_blend`` (a grid over the pixels of every plane). The only device memory
added is the tile tables (``planes x tiles x L`` of the pixel type) and, for uint16, the
``planes x tiles x 65536`` uint32 tile histograms, in groups of planes whose scratch stays
under ``_planes.CHUNK_BINS`` entries. Nothing is copied from the host but scalars.
"""

import cupy
import numpy as np

from .. import _planes
from ._kernels import THREADS, _launch

#: Tile pixels the 32-bit tile histograms count at most.
MAX_TILE_PIXELS = (1 << 32) - 1
#: Pixels each thread of the blend handles (its grid-stride loop), and the most blocks per plane.
BLEND_PIXELS_PER_THREAD = 4
MAX_BLEND_BLOCKS = 65535


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
    """
    dtype = np.dtype(planes.dtype)
    nbins = 256 if dtype == np.uint8 else 65536
    nplanes, npixels = planes.shape
    ntiles = grid[0] * grid[1]
    per_group = max(1, min(65535, _planes.CHUNK_BINS // (ntiles * nbins)))
    per_group = min(per_group, nplanes)
    tables = cupy.empty((per_group * ntiles, nbins), dtype)
    scratch = (cupy.empty((per_group * ntiles, nbins), np.uint32) if nbins > 256
               else np.uint64(0))
    row_inverse = np.float32(1.0) / np.float32(tile_shape[0])
    col_inverse = np.float32(1.0) / np.float32(tile_shape[1])
    blocks = max(1, min(MAX_BLEND_BLOCKS, -(-npixels // (THREADS * BLEND_PIXELS_PER_THREAD))))
    geometry = (np.int64(shape[0]), np.int64(shape[1]), np.int32(grid[0]), np.int32(grid[1]))
    with planes.device:
        for start in range(0, nplanes, per_group):
            rows = slice(start, min(start + per_group, nplanes))
            count = rows.stop - rows.start
            values = planes[rows]
            _launch("clahe.cu", "gpu_histeq_clahe_tables", (dtype,), (count * ntiles,),
                    (values, *geometry, np.int64(tile_shape[0]), np.int64(tile_shape[1]),
                     np.int64(limit), np.float32(scale), scratch, tables))
            _launch("clahe.cu", "gpu_histeq_clahe_blend", (dtype,), (blocks, count),
                    (values, *geometry, row_inverse, col_inverse, tables, result[rows]))
