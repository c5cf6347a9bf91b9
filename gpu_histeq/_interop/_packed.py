"""The pipeline over packed planes of different sizes: one buffer, per-plane offsets and counts.

Planes of many images lie one after the other in one 1-d buffer; plane ``p`` holds the pixels
``starts[p]:starts[p + 1]``. The steps are the ones of every other feature, on that layout:

* ranges -- per-plane minimum and maximum by a segmented reduction (:func:`plane_stats`);
* bins -- :func:`gpu_histeq._binning.packed_index` (``bin + nbins * plane`` of every pixel);
* counts -- one ``bincount`` of that index per block of pixels;
* tables -- :mod:`gpu_histeq._tables`, vectorised over the ``(P, nbins)`` counts;
* gather -- :func:`gpu_histeq._engine.portable.gather` through the same index.

Blocks are pixel ranges of whole planes (at most about ``2 * CHUNK_PIXELS`` pixels and
``CHUNK_BINS`` bins) or column ranges of one large plane: the index and counts stay bounded
whatever the list. This is the portable engine (NumPy or CuPy array operations), the reference
of the compiled CPU and CUDA kernels that take the same per-plane offsets
(:func:`gpu_histeq._engine.equalize_packed`, ``packed_counts``, ``apply_packed``), and the path
that runs wherever those decline.
"""

import numpy as np

from .. import _planes
from .._backend import is_cupy
from .._binning import binning_of, packed_index
from .._engine.portable import gather
from .._tables import InterpTable, table_maker

#: Pixels per reduction row of the sort-free segmented minimum / maximum (CuPy).
SEGMENT_WIDTH = 256


def plane_starts(sizes):
    """``(P + 1,)`` int64 starts of planes of `sizes` pixels packed one after the other."""
    starts = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=starts[1:])
    return starts


def blocks(xp, starts, nbins):
    """Blocks ``(p0, p1, a, b)`` of packed planes: planes ``p0:p1`` and packed pixels ``a:b``.

    A block holds whole planes (``a, b = starts[p0], starts[p1]``) -- the planes that start in
    one window of ``CHUNK_PIXELS`` pixels, at most ``CHUNK_BINS // nbins`` of them -- or, for a
    plane larger than a window, a column range of that one plane.
    """
    chunk = _planes.CHUNK_PIXELS_GPU if is_cupy(xp) else _planes.CHUNK_PIXELS
    big = np.diff(starts) > chunk
    result = []
    for p0, p1 in _planes.packed_runs(starts, chunk, max(1, _planes.CHUNK_BINS // nbins), big):
        a, b = int(starts[p0]), int(starts[p1])
        if big[p0]:
            result += [(p0, p1, c, min(c + chunk, b)) for c in range(a, b, chunk)]
        else:
            result.append((p0, p1, a, b))
    return result


def local_planes(xp, starts, block):
    """``(b - a,)`` intp: the plane of each pixel of `block`, counted from its first plane."""
    p0, p1, a, b = block
    if p1 - p0 == 1:
        return xp.zeros(b - a, np.intp)
    if not is_cupy(xp):
        return np.repeat(np.arange(p1 - p0, dtype=np.intp), np.diff(starts[p0:p1 + 1]))
    # a 1 where each later plane starts (zero-size planes stack up), summed along the block
    marks = xp.bincount(xp.asarray(starts[p0 + 1:p1] - a), minlength=b - a + 1)[: b - a]
    return xp.cumsum(marks).astype(np.intp, copy=False)


def segment_reduce(xp, reduce, values, starts, sizes, reduceat=None):
    """``reduce`` (``xp.min`` / ``xp.max``) of every segment ``values[s : s + n]``, sizes >= 1.

    On NumPy ``reduceat`` (the ufunc given) does it in one pass. Elsewhere (CuPy has no
    ``reduceat``) a sort-free tiled reduction: each segment is cut into rows of
    ``SEGMENT_WIDTH`` pixels (the last row padded with its own last pixel, which changes no
    minimum or maximum), every row is reduced at once, and the row results are reduced the same
    way until each segment is one row: about ``1 + 1 / SEGMENT_WIDTH`` reads per pixel.
    """
    starts = np.asarray(starts, np.int64)
    sizes = np.asarray(sizes, np.int64)
    if reduceat is not None and not is_cupy(xp):
        return reduceat(values, starts)  # segments are contiguous: each ends where the next starts
    while True:
        width = min(SEGMENT_WIDTH, int(sizes.max()))
        if int(sizes.max()) <= SEGMENT_WIDTH:
            pieces, piece_starts, piece_sizes = None, starts, sizes
        else:
            pieces = -(-sizes // width)
            first = np.cumsum(pieces) - pieces
            segment = np.repeat(np.arange(len(sizes)), pieces)
            step = np.arange(int(pieces.sum())) - first[segment]
            piece_starts = starts[segment] + step * width
            piece_sizes = np.minimum(width, sizes[segment] - step * width)
        columns = xp.minimum(xp.arange(width), xp.asarray(piece_sizes - 1)[:, None])
        values = reduce(xp.take(values, xp.asarray(piece_starts)[:, None] + columns), axis=1)
        if pieces is None:
            return values
        starts, sizes = first, pieces


def plane_stats(xp, values, mask, starts):
    """Per-plane minimum and maximum of the selected pixels, and whether every value is finite.

    Empty planes get ``0, 0``. As :func:`gpu_histeq._binning.plane_stats` for packed planes.

    Returns
    -------
    low, high : (P,) ndarray of ``values.dtype``
    finite : bool
    """
    dtype = np.dtype(values.dtype)
    info = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
    sizes = np.diff(starts)
    filled = np.flatnonzero(sizes)
    low = xp.zeros(len(sizes), dtype)
    high = xp.zeros(len(sizes), dtype)
    if filled.size == 0:
        return low, high, True
    below, above = values, values
    if mask is not None:
        below = xp.where(mask, values, dtype.type(info.max))
        above = xp.where(mask, values, dtype.type(info.min))
    first, count = starts[filled], sizes[filled]
    filled_low = segment_reduce(xp, xp.min, below, first, count, np.minimum.reduceat)
    filled_high = segment_reduce(xp, xp.max, above, first, count, np.maximum.reduceat)
    if mask is None:  # min and max propagate NaN, and are infinite when a pixel is
        finite = xp.isfinite(filled_low).all() & xp.isfinite(filled_high).all()
    else:
        finite = xp.isfinite(values).all() if dtype.kind == "f" else True
    filled = xp.asarray(filled)
    low[filled], high[filled] = filled_low, filled_high
    return low, high, bool(finite)  # sync: one flag for the batch


def selected_counts(xp, mask, starts):
    """``(P,)`` host int64: selected pixels of each packed plane (one cumulative sum)."""
    running = xp.concatenate([xp.zeros(1, np.int64), xp.cumsum(mask, dtype=np.int64)])
    ends = xp.take(running, xp.asarray(starts))
    return np.asarray((ends[1:] - ends[:-1]).tolist(), np.int64)  # sync: the error names a plane


def binning(xp, values, mask, starts, nbins, level_indexed):
    """The binning of the packed planes, as ``binning_for`` makes it for one array."""
    return binning_of(xp, nbins, level_indexed, lambda: plane_stats(xp, values, mask, starts),
                      mask is not None)


def _count(xp, values, mask, starts, bins, block):
    """Counts ``(p1 - p0, nbins)`` of one block and its local offset index."""
    p0, p1, a, b = block
    local = local_planes(xp, starts, block)
    index = packed_index(bins, values[a:b], local, slice(p0, p1))
    selected = index if mask is None else index[mask[a:b]]
    counts = xp.bincount(selected, minlength=(p1 - p0) * bins.nbins)
    return counts.reshape(p1 - p0, bins.nbins), (index, local)


def histograms(xp, values, mask, starts, bins):
    """``(P, nbins)`` int64 counts of every packed plane."""
    block_list = blocks(xp, starts, bins.nbins)
    hist = xp.zeros((len(starts) - 1, bins.nbins), np.int64)
    parts = _planes.map_blocks(
        xp, lambda block: _count(xp, values, mask, starts, bins, block)[0], block_list)
    for (p0, p1, _, _), counts in zip(block_list, parts):
        hist[p0:p1] += counts
    return hist


def _gather(xp, tables, index, local, values, nbins, out):
    """:func:`gather` of packed pixels through their planes' `tables` (rows of this block)."""
    if not isinstance(tables, InterpTable):
        gather(xp, tables, index, values, None, out)
        return
    regular = tables[slice(None)]
    regular.irregular = tables.irregular[:0]  # rows the portable gather loops over, done below
    gather(xp, regular, index, values, local * nbins, out)
    for row in np.flatnonzero(np.asarray(tables.irregular.tolist(), bool)):  # sync; rare
        pixels = xp.flatnonzero(local == row)
        out[pixels] = xp.interp(values[pixels], tables.positions[row], tables.values[row])


def equalize(xp, values, mask, starts, method, nbins, result_dtype, out=None):
    """Equalize every packed plane of `values` with `method`; return the packed result.

    Parameters
    ----------
    values : (M,) ndarray
        Planes one after the other, plane ``p`` at ``starts[p]:starts[p + 1]``.
    mask : (M,) bool ndarray or None
        Selected pixels (checked to select at least one pixel of every non-empty plane).
    starts : (P + 1,) int64 host ndarray
    nbins : int
        The dtype's levels for ``"opencv"`` / ``"pil"``.
    out : (M,) ndarray of `result_dtype`, optional
        Written in full (a buffer a fast engine left partly written may be given).

    Returns
    -------
    (M,) ndarray of `result_dtype`
    """
    result = xp.empty(values.shape, result_dtype) if out is None else out
    nplanes = len(starts) - 1
    if values.size == 0:
        return result
    bins = binning(xp, values, mask, starts, nbins, method in ("opencv", "pil"))
    tables_of = table_maker(xp, method, bins, values.dtype, nplanes)
    block_list = blocks(xp, starts, bins.nbins)
    split = any(p1 - p0 == 1 and b - a < starts[p1] - starts[p0] for p0, p1, a, b in block_list)
    all_tables = None
    if split:  # planes larger than a block: count them all, then remap
        all_tables = tables_of(histograms(xp, values, mask, starts, bins), slice(None))

    def remap(block):
        p0, p1, a, b = block
        if all_tables is None:
            counts, (index, local) = _count(xp, values, mask, starts, bins, block)
            tables = tables_of(counts, slice(p0, p1))
        else:
            local = local_planes(xp, starts, block)
            index = packed_index(bins, values[a:b], local, slice(p0, p1))
            tables = all_tables[p0:p1]
        _gather(xp, tables, index, local, values[a:b], bins.nbins, result[a:b])

    _planes.map_blocks(xp, remap, block_list)
    return result


def apply_tables(xp, values, starts, tables, out=None):
    """``result = tables[plane][values]`` for packed planes (``tables`` ``(P, L)``, or ``(1, L)``
    shared by every plane); values already checked to lie in each plane's table. Written into
    `out` (``(M,)`` of ``tables.dtype``) when given."""
    result = xp.empty(values.shape, tables.dtype) if out is None else out
    length = tables.shape[-1]
    shared = tables.shape[0] == 1
    flat = tables.reshape(-1)

    def remap(block):
        p0, p1, a, b = block
        index = values[a:b].astype(np.intp)
        if not shared:
            index += (local_planes(xp, starts, block) + p0) * length
        result[a:b] = xp.take(flat, index)

    _planes.map_blocks(xp, remap, blocks(xp, starts, length))
    return result


def gather_tables(xp, values, starts, bins, tables, out):
    """``out = tables[plane][bin]`` of packed pixels: `tables` ``(P, bins.nbins)``, one row per
    plane, the bins of `bins` (a :class:`~gpu_histeq._binning.LevelBinning`)."""
    def remap(block):
        p0, p1, a, b = block
        local = local_planes(xp, starts, block)
        index = packed_index(bins, values[a:b], local, slice(p0, p1))
        out[a:b] = xp.take(tables[p0:p1].reshape(-1), index)

    _planes.map_blocks(xp, remap, blocks(xp, starts, bins.nbins))


#: Size classes per doubling of the plane size in :func:`segment_argsort`.
SORT_CLASSES_PER_OCTAVE = 4


def segment_argsort(xp, values, starts):
    """``(M,)`` intp permutation that sorts each packed plane's pixels (planes stay in place).

    Planes of similar sizes (within ``2 ** (1 / SORT_CLASSES_PER_OCTAVE)``) are gathered into
    ``(rows, W)`` arrays padded after their last pixel with a value no pixel sorts after (+inf
    for the finite floating pixels, or the dtype's maximum with a stable sort keeping real
    pixels first), sorted along rows,
    and the orders of the real pixels scattered back: row sorts that stay in cache, about ten
    times faster on the CPU than one ``lexsort`` of the buffer by (plane, value). A loop over
    size classes (and blocks of ``CHUNK_PIXELS`` padded pixels), not over planes.
    """
    sizes = np.diff(starts)
    order = xp.empty(int(starts[-1]), np.intp)
    filled = np.flatnonzero(sizes)
    if filled.size == 0:
        return order
    dtype = np.dtype(values.dtype)
    pad = dtype.type(np.inf) if dtype.kind == "f" else np.iinfo(dtype).max
    # finite values all sort before +inf; integers may equal the padding: stable keeps them first
    kind = None if dtype.kind == "f" else "stable"
    by_size = filled[np.argsort(sizes[filled], kind="stable")]
    size_class = np.floor(np.log2(sizes[by_size]) * SORT_CLASSES_PER_OCTAVE).astype(np.int64)
    chunk = _planes.CHUNK_PIXELS_GPU if is_cupy(xp) else _planes.CHUNK_PIXELS
    for bucket in np.split(by_size, np.flatnonzero(np.diff(size_class)) + 1):
        width = int(sizes[bucket[-1]])
        for group in np.array_split(bucket, -(-len(bucket) * width // chunk)):
            counts = xp.asarray(sizes[group])[:, None]
            first = xp.asarray(starts[group])[:, None]
            columns = xp.arange(width)
            real = columns < counts
            rows = xp.where(real, xp.take(values, first + xp.minimum(columns, counts - 1)), pad)
            row_order = xp.argsort(rows, axis=1, kind=kind)
            order[(first + columns)[real]] = (first + row_order)[real]
    return order
