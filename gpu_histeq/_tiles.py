"""The tiles of both CLAHEs: the tiled (padded) image, per-tile offsets and counts, and the
bilinear blend weights (OpenCV's float32 arithmetic)."""

import numpy as np

from . import _planes
from ._engine.portable import count


def reflect101(index, size):
    """OpenCV's ``BORDER_REFLECT_101`` (NumPy's ``"reflect"``): the source of each padded index.

    The reflection is periodic with period ``2 * (size - 1)``, which also covers borders wider
    than the image; a single row or column repeats itself.
    """
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    folded = np.mod(index, period)
    return np.where(folded >= size, period - folded, folded)


def tiled_source(shape, tile_counts, tile_shape, source_index):
    """Where each pixel of the tiled image comes from, and which tile it belongs to.

    Parameters
    ----------
    shape : tuple of int
        The image shape.
    tile_counts, tile_shape : tuple of int
        Tiles per axis and pixels per tile per axis; the tiled image covers
        ``tile_counts * tile_shape`` pixels per axis from the image's origin.
    source_index : callable
        ``source_index(index, size)``: the image index of each tiled index along one axis.

    Returns
    -------
    source : (M,) intp ndarray or None
        Flat image index of each tiled pixel in C order; None when the tiled image is the
        image itself.
    tile : (M,) intp ndarray
        Flat tile number (C order over `tile_counts`) of each tiled pixel.
    """
    extents = [n * t for n, t in zip(tile_counts, tile_shape)]
    ndim = len(shape)
    source = np.zeros(extents, np.intp)
    tile = np.zeros(extents, np.intp)
    stride, tile_stride = 1, 1
    for axis in reversed(range(ndim)):
        view = [1] * ndim
        view[axis] = extents[axis]
        positions = np.arange(extents[axis])
        source += (source_index(positions, shape[axis]) * stride).reshape(view)
        tile += ((positions // tile_shape[axis]) * tile_stride).reshape(view)
        stride *= shape[axis]
        tile_stride *= tile_counts[axis]
    identity = tuple(extents) == tuple(shape)
    return (None if identity else source.ravel()), tile.ravel()


def offsets_for(xp, nplanes, tile, ntiles, nbins):
    """``(nplanes, M)`` intp offsets ``nbins * (plane * ntiles + tile)``."""
    tiles = xp.asarray(tile * nbins)
    return _planes.plane_offsets(xp, nplanes, ntiles * nbins) + tiles[None, :]


def count_tiles(xp, binned, offsets, ntiles, nbins):
    """``(n, ntiles, nbins)`` int64 histograms of every tile of a block of planes."""
    n = binned.shape[0]
    index = xp.add(binned, offsets[:n], dtype=np.intp)
    return count(xp, index, None, n * ntiles, nbins).reshape(n, ntiles, nbins)


def blend_weights(dtype, positions, tile_size, ntiles):
    """Per-pixel neighbour tiles and weights along one axis, OpenCV's float32 arithmetic.

    ``t = float32(x) * (1 / tile_size) - 0.5``, neighbours ``floor(t)`` and ``floor(t) + 1``
    clamped to the grid, weights ``1 - a`` and ``a`` with ``a = t - floor(t)``.
    """
    f32 = np.float32
    inverse = f32(1.0) / f32(tile_size)
    scaled = positions.astype(f32) * inverse - f32(0.5)
    first = np.floor(scaled).astype(np.intp)
    weight = (scaled - first.astype(f32)).astype(f32)
    second = np.minimum(first + 1, ntiles - 1)
    first = np.maximum(first, 0)
    return first, second, (f32(1.0) - weight).astype(dtype), weight.astype(dtype)
