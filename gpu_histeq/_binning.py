"""Value -> bin: the binnings of the histogram step, shared by every engine and feature.

Two binnings cover every dtype:

* :class:`LevelBinning` -- integer images, one bin per integer level from a per-plane lowest level
  (0 for the level-indexed ``opencv`` / ``pil`` methods, the plane's minimum for ``skimage``);
* :class:`UniformBinning` -- floating images, ``nbins`` equal bins over each plane's
  ``[min, max]`` with exactly the rounding rules of :func:`numpy.histogram`.

Their ``index`` methods are the portable binning (each pixel's bin plus its plane's offset
``nbins * plane``); the compiled and CUDA engines read the same edges and reproduce it.
"""

import numpy as np

from . import _planes
from ._backend import array_module
from ._validate import check_edges_increase, check_finite, check_level_span


class LevelBinning:
    """One bin per integer level: ``bin = value - low[plane]``.

    Parameters
    ----------
    xp : module
    nbins : int
        Levels per plane (the table width).
    low : (P,) intp ndarray or None
        Lowest level of each plane; None means 0 for every plane.
    clip : bool
        Clip bins into ``[0, nbins)``: needed when a mask excludes pixels outside its range.
    """

    def __init__(self, xp, nbins, low=None, clip=False, unsigned64=False):
        self.xp, self.nbins, self.low, self.clip = xp, nbins, low, clip
        self.unsigned64 = unsigned64  # `low` holds uint64 levels as wrapped intp

    def index(self, values, planes, offsets):
        """``(n, m)`` intp: bin of each pixel of ``values`` (planes `planes`) plus its plane offset."""
        shift = offsets if self.low is None else offsets - self.low[planes, None]
        index = self.xp.add(values, shift, dtype=np.intp)
        if self.clip:
            index = self.xp.clip(index, offsets, offsets + (self.nbins - 1))
        return index

    def centers(self, rows, nplanes):
        """``(n, nbins)`` the level each bin of planes `rows` (of `nplanes`) stands for."""
        levels = self.xp.arange(self.nbins, dtype=np.intp)
        low = self.xp.zeros(nplanes, np.intp) if self.low is None else self.low
        if self.unsigned64:  # levels of 2**63 and above: the centers in uint64, not wrapped
            return low[rows, None].astype(np.uint64) + levels.astype(np.uint64)
        return low[rows, None] + levels


class UniformBinning:
    """``nbins`` equal bins over ``[first, last]`` of each plane, as :func:`numpy.histogram` bins.

    Edges are built like :func:`numpy.linspace` in the images' own floating dtype, a value's bin
    comes from the scaled offset and is corrected against the edges, values on the last edge go
    to the last bin, and an empty range ``first == last`` is widened by 0.5 on each side.
    """

    def __init__(self, xp, nbins, first, last):
        dtype = first.dtype
        same = first == last
        half = dtype.type(0.5)
        first = xp.where(same, first - half, first)[:, None]
        last = xp.where(same, last + half, last)[:, None]
        self.xp, self.nbins, self.dtype = xp, nbins, dtype
        self.first, self.width = first, last - first
        steps = xp.arange(nbins + 1, dtype=dtype)
        step = self.width / dtype.type(nbins)
        # numpy.linspace: k * step + first, or (k / nbins) * width when the step underflows to 0
        scaled = xp.where(step == 0, (steps / dtype.type(nbins)) * self.width, steps * step)
        edges = scaled + first
        edges[:, -1] = last[:, 0]
        if nbins > 1:  # sync: numpy.histogram refuses repeated edges
            check_edges_increase(bool((edges[:, 1:] > edges[:, :-1]).all()), nbins, dtype)
        self.edges = edges

    def index(self, values, planes, offsets):
        """``(n, m)`` intp: bin of each pixel plus its plane offset (values outside go to the ends)."""
        xp, nbins = self.xp, self.nbins
        scaled = (values - self.first[planes]) / self.width[planes] * self.dtype.type(nbins)
        # clamp before the cast: values outside a mask's range may scale past any integer
        bins = xp.clip(scaled, 0, nbins - 1).astype(np.intp)
        edges = self.edges[planes]
        bins -= values < xp.take_along_axis(edges, bins, axis=1)
        xp.maximum(bins, 0, out=bins)
        above = values >= xp.take_along_axis(edges, bins + 1, axis=1)
        bins += above & (bins != nbins - 1)
        bins += offsets
        return bins

    def centers(self, rows, nplanes):
        """``(n, nbins)`` bin centers of planes `rows`, ``(left + right) / 2`` in the images' dtype."""
        edges = self.edges[rows]
        return (edges[:, :-1] + edges[:, 1:]) / self.dtype.type(2)


def plane_stats(xp, planes, mask, block_list):
    """Per-plane minimum and maximum over the selected pixels, and whether every value is finite.

    Returns
    -------
    low, high : (P,) ndarray of ``planes.dtype``
    finite : bool
        False if any pixel (selected or not) is NaN or infinite; always True for integers,
        which are not checked (no synchronization on CuPy).
    """
    dtype = np.dtype(planes.dtype)
    floating = dtype.kind == "f"
    info = np.finfo(dtype) if floating else np.iinfo(dtype)
    top, bottom = dtype.type(info.max), dtype.type(info.min)

    def stats(block):
        rows, cols = block
        values = planes[rows, cols]
        if mask is None:  # min and max propagate NaN, and are infinite when a pixel is
            block_low, block_high = values.min(axis=1), values.max(axis=1)
            finite = (xp.isfinite(block_low).all() & xp.isfinite(block_high).all()
                      if floating else True)
            return block_low, block_high, finite
        finite = xp.isfinite(values).all() if floating else True
        selected = mask[rows, cols]
        return (xp.where(selected, values, top).min(axis=1),
                xp.where(selected, values, bottom).max(axis=1), finite)

    parts = _planes.map_blocks(xp, stats, block_list)
    if len(parts) == 1:  # one block holds every pixel: its reductions are the result
        low, high, finite = parts[0]
    else:
        nplanes = planes.shape[0]
        low = xp.full(nplanes, top, dtype)
        high = xp.full(nplanes, bottom, dtype)
        finite = True
        for (rows, _), (block_low, block_high, block_finite) in zip(block_list, parts):
            xp.minimum(low[rows], block_low, out=low[rows])
            xp.maximum(high[rows], block_high, out=high[rows])
            finite = finite & block_finite
    if not floating:
        return low, high, True
    return low, high, bool(finite)  # sync: one flag for the whole batch


def integer_width(low, high):
    """Bins per plane for integer planes with ranges `low`, `high`: the widest plane's levels."""
    # high - low in uint64 is exact for every int64/uint64 pair with high >= low (a plane with
    # no selected pixel has high < low and counts 0): no overflow for full-range planes
    if isinstance(low, np.generic):  # a reduction over every axis hands over scalars
        low, high = np.asarray(low), np.asarray(high)
    xp = array_module(low)
    span = xp.where(high >= low, high.astype(np.uint64) - low.astype(np.uint64), 0)
    widest = int(span.max()) + 1  # sync: a shape
    check_level_span(widest)
    return widest


def range_binning(xp, nbins, low, high, masked, width=None):
    """The binning of planes with ranges `low`, `high` (``(P,)`` each, the images' dtype).

    Floating planes get `nbins` uniform bins; integer planes one bin per level from their own
    minimum, `width` levels per plane (by default the widest plane's), clipped when `masked`
    (unselected pixels may lie outside the range).
    """
    if np.dtype(low.dtype).kind == "f":
        return UniformBinning(xp, nbins, low, high)
    width = integer_width(low, high) if width is None else width
    return LevelBinning(xp, width, low.astype(np.intp), clip=masked,
                        unsigned64=np.dtype(low.dtype) == np.uint64)


def binning_of(xp, nbins, level_indexed, stats, masked):
    """Dtype levels when `level_indexed`, else the :func:`range_binning` of the planes' ranges.

    `stats` is called (only for a range binning) for ``(low, high, finite)`` as
    :func:`plane_stats` gives them, for planes of one array or packed planes alike; a NaN or
    infinity is refused before any bin is made.
    """
    if level_indexed:
        return LevelBinning(xp, nbins)
    low, high, finite = stats()
    check_finite(finite)
    return range_binning(xp, nbins, low, high, masked=masked)


def binning_for(xp, planes, mask_planes, nbins, level_indexed, block_list):
    """The binning of `planes`: dtype levels, per-plane integer levels, or uniform float bins."""
    return binning_of(xp, nbins, level_indexed,
                      lambda: plane_stats(xp, planes, mask_planes, block_list),
                      mask_planes is not None)


# ---------------------------------------------------------------------------------------------
# packed (ragged) planes: pixels of many planes one after the other in one 1-d buffer

def packed_index(binning, values, plane, rows=slice(None)):
    """``(m,)`` intp: the offset index ``bin + nbins * plane`` of packed pixels.

    The same bins as ``binning.index`` gives each pixel of its plane (the same arithmetic in the
    same dtype), for pixels of planes of any sizes packed one after the other; the edges are
    read with one ``take`` of the flat ``(n * (nbins + 1),)`` edges, so no ``(m, nbins)`` array
    is made.

    Parameters
    ----------
    binning : LevelBinning or UniformBinning
        Built over the packed planes (``P`` rows of ranges).
    values : (m,) ndarray
        Pixels of the images' dtype.
    plane : (m,) intp ndarray
        The plane of each pixel, counted from ``rows.start``.
    rows : slice, optional
        The rows of `binning` the pixels belong to (a block of planes).
    """
    xp, nbins = binning.xp, binning.nbins
    offsets = plane * nbins
    if isinstance(binning, LevelBinning):
        shift = offsets if binning.low is None else offsets - xp.take(binning.low[rows], plane)
        index = xp.add(values, shift, dtype=np.intp)
        if binning.clip:
            index = xp.clip(index, offsets, offsets + (nbins - 1))
        return index
    dtype = binning.dtype
    first = xp.take(binning.first[rows].reshape(-1), plane)
    width = xp.take(binning.width[rows].reshape(-1), plane)
    scaled = (values - first) / width * dtype.type(nbins)
    bins = xp.clip(scaled, 0, nbins - 1).astype(np.intp)
    edges = binning.edges[rows].reshape(-1)
    starts = plane * (nbins + 1)
    bins -= values < xp.take(edges, starts + bins)
    xp.maximum(bins, 0, out=bins)
    above = values >= xp.take(edges, starts + bins + 1)
    bins += above & (bins != nbins - 1)
    bins += offsets
    return bins
