"""Launch the CLAHE kernels of ``clahe.cu`` on CuPy planes (imported only for CuPy input).

Small uint8 planes (at most SMALL_PIXELS pixels, at most SMALL_TILES tiles) take one launch of
``gpu_histeq_clahe_small`` (one block per plane, the tile tables in shared memory). Small uint16
planes (each tile's sorted values and the plane's distinct values per tile within RANKED_BYTES
of shared memory, :func:`ranked_shared_bytes`) take one launch of ``gpu_histeq_clahe_ranked``
(one block per plane, no 65536-entry table: each table value a binary search). Larger uint16
planes whose tiles sort in shared memory (2 bytes per sort slot within TILE_SORT_BYTES) take two
launches per group of planes, ``gpu_histeq_clahe_rank_tiles`` (one block per tile: its distinct
values and clipped cumulative counts, 4 bytes per padded pixel) and
``gpu_histeq_clahe_ranked_blend``. Others take two launches per group of planes: ``gpu_histeq_clahe_tables`` (one block per tile) and
``gpu_histeq_clahe_blend`` (a grid over the pixels of every plane). The only device memory
added is the tile tables (``planes x tiles x L`` of the pixel type) and, for uint16 tiles of
65536 pixels or more, the ``planes x tiles x 65536`` uint32 tile histograms (smaller tiles count
in 16 bits in their own tables), in groups of planes whose scratch stays under SCRATCH_BYTES. Nothing is copied from the host but scalars.
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
#: Dynamic shared memory of the one-launch uint16 kernel at most (its static part is under
#: 1 KiB: the block reduction and scan of common.cuh).
RANKED_BYTES = 44 << 10
#: Dynamic shared memory of the keys of one tile's sort in ``gpu_histeq_clahe_rank_tiles`` at
#: most (2 bytes per slot: tiles of up to 16384 pixels).
TILE_SORT_BYTES = 32 << 10
#: Tile pixels the 32-bit tile histograms count at most.
MAX_TILE_PIXELS = (1 << 32) - 1
#: Pixels each thread of the blend handles (its grid-stride loop), and the most blocks per plane.
BLEND_PIXELS_PER_THREAD = 4
MAX_BLEND_BLOCKS = 65535


def ranked_shared_bytes(grid, tile_shape):
    """``(bytes, size)``: the dynamic shared memory ``gpu_histeq_clahe_ranked`` needs for one
    plane (16 bytes per tile, 4 per padded pixel, 2 per sort slot) and its sort slots (the next
    power of two at least the tile's pixels)."""
    area = tile_shape[0] * tile_shape[1]
    size = 1 << max(0, area - 1).bit_length()
    ntiles = grid[0] * grid[1]
    return 16 * ntiles + 4 * ntiles * area + 2 * size, size


@planned(lambda: (SMALL_PIXELS, SMALL_TILES, SCRATCH_BYTES, RANKED_BYTES, TILE_SORT_BYTES))
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
    shared, size = ranked_shared_bytes(grid, tile_shape)
    if nbins == 65536 and shared <= RANKED_BYTES:
        with planes.device:
            _launch("clahe.cu", "gpu_histeq_clahe_ranked", (dtype,), (nplanes,),
                    (planes, *geometry, *clip, row_inverse, col_inverse, np.int64(size), result),
                    shared_mem=shared)
        return True
    area = tile_shape[0] * tile_shape[1]
    blocks = max(1, min(MAX_BLEND_BLOCKS, -(-npixels // (THREADS * BLEND_PIXELS_PER_THREAD))))
    if nbins == 65536 and 2 * size <= TILE_SORT_BYTES:  # each tile sorts in shared memory
        per_group = _group(nplanes, ntiles, ntiles * (4 * area + 16))
        entries = cupy.empty((per_group * ntiles, area), np.uint32)
        tiles = cupy.empty((per_group * ntiles, 4), np.int32)  # gpu_histeq_clahe_tile_ranks
        with planes.device:
            for rows in _slices(nplanes, per_group):
                count = rows.stop - rows.start
                _launch("clahe.cu", "gpu_histeq_clahe_rank_tiles", (dtype,), (count * ntiles,),
                        (planes[rows], *geometry, *clip[:3], np.int64(size), entries, tiles),
                        shared_mem=2 * size)
                _launch("clahe.cu", "gpu_histeq_clahe_ranked_blend", (dtype,), (blocks, count),
                        (planes[rows], *geometry, np.int64(area), clip[3], row_inverse,
                         col_inverse, entries, tiles, result[rows]))
        return True
    wide = nbins > 256 and area > 65535  # counts past 16 bits: uint32 tile histograms
    per_group = _group(nplanes, ntiles, ntiles * nbins * (dtype.itemsize + (4 if wide else 0)))
    tables = cupy.empty((per_group * ntiles, nbins), dtype)
    scratch = cupy.empty((per_group * ntiles, nbins), np.uint32) if wide else np.uint64(0)
    with planes.device:
        for rows in _slices(nplanes, per_group):
            count = rows.stop - rows.start
            values = planes[rows]
            _launch("clahe.cu", "gpu_histeq_clahe_tables", (dtype,), (count * ntiles,),
                    (values, *geometry, *clip, scratch, tables))
            _launch("clahe.cu", "gpu_histeq_clahe_blend", (dtype,), (blocks, count),
                    (values, *geometry, row_inverse, col_inverse, tables, result[rows]))
    return True


def _group(nplanes, ntiles, per_plane):
    """Planes per launch: scratch of `per_plane` bytes each under SCRATCH_BYTES, at most 65535
    (grid.y of the blend) and 2**31 - 1 tiles (grid.x of the tile pass)."""
    return max(1, min(65535, nplanes, SCRATCH_BYTES // per_plane, MAX_GRID_BLOCKS // ntiles))


def _slices(nplanes, per_group):
    return [slice(start, min(start + per_group, nplanes)) for start in range(0, nplanes, per_group)]
