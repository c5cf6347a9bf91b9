"""The portable engine: NumPy or CuPy array operations, the reference of every fast path.

* count -- :func:`count`: one ``bincount`` of the offset index ``bin + nbins * plane`` counts
  every plane of a block at once;
* remap -- :func:`gather`: each pixel takes its entry from its own plane's table with one
  ``take`` of the same index (and :func:`numpy.interp`'s arithmetic for interpolation tables).

The binning (value -> bin) is :mod:`gpu_histeq._binning`'s and the tables are
:mod:`gpu_histeq._tables`'s; the compiled CPU and CUDA engines reproduce all three bit for bit.
"""

import numpy as np

from .. import _planes
from .._tables import InterpTable


def count(xp, index, selected, nplanes, nbins):
    """``(nplanes, nbins)`` counts of an offset index (optionally only where `selected`).

    Parameters
    ----------
    index : (n, m) intp ndarray
        ``bin + nbins * plane`` of each pixel.
    selected : (n, m) bool ndarray or None
    """
    if selected is not None:
        index = index[selected]
    return xp.bincount(index.ravel(), minlength=nplanes * nbins).reshape(nplanes, nbins)


def count_block(xp, planes, mask_planes, binning, block):
    """Counts of block ``(rows, cols)`` of `planes`, with the offset index that produced them.

    Returns
    -------
    counts : (n, nbins) int64 ndarray
    state : tuple
        ``(index, offsets)``, ``(n, m)`` and ``(n, 1)`` intp: :func:`remap_block` reuses them,
        so a block of whole planes is binned once.
    """
    rows, cols = block
    values = planes[rows, cols]
    selected = None if mask_planes is None else mask_planes[rows, cols]
    offsets = _planes.plane_offsets(xp, rows.stop - rows.start, binning.nbins)
    index = binning.index(values, rows, offsets)
    return count(xp, index, selected, rows.stop - rows.start, binning.nbins), (index, offsets)


def gather(xp, table, index, values, offsets, out):
    """Write each pixel's table entry into `out`.

    Parameters
    ----------
    table : (n, B) ndarray or InterpTable
        Tables of the block's planes.
    index : (n, m) intp ndarray
        ``bin + B * plane`` of each pixel, as counted by the histogram step.
    values : (n, m) ndarray
        The pixels themselves (used by :class:`~gpu_histeq._tables.InterpTable` only).
    offsets : (n, 1) intp ndarray
        ``B * plane``: the index of each plane's first bin.
    out : (n, m) ndarray
        Destination.
    """
    if not isinstance(table, InterpTable):
        out[...] = xp.take(table.reshape(-1), index)
        return
    # numpy.interp: below the first center -> first value; else the segment whose left center
    # is at or below the value; past the last center the last value (slope 0 there).
    below = values < xp.take(table.centers.reshape(-1), index)
    before_first = below & (index == offsets)
    segment = index - (below & ~before_first)
    slope = xp.where(before_first, 0.0, xp.take(table.slopes.reshape(-1), segment))
    distance = values.astype(np.float64) - xp.take(table.positions.reshape(-1), segment)
    with np.errstate(invalid="ignore", over="ignore"):
        out[...] = slope * distance + xp.take(table.values.reshape(-1), segment)
    for plane, irregular in enumerate(table.irregular.tolist()):  # sync; rare: a few planes
        if irregular:
            out[plane] = xp.interp(values[plane], table.positions[plane], table.values[plane])


def remap_block(xp, planes, binning, tables, result, block, state=None):
    """Remap block ``(rows, cols)`` of `planes` into `result` through its planes' `tables`.

    `state` is :func:`count_block`'s when the block was just counted; without it the block is
    binned here.
    """
    rows, cols = block
    values = planes[rows, cols]
    if state is None:
        offsets = _planes.plane_offsets(xp, rows.stop - rows.start, binning.nbins)
        state = (binning.index(values, rows, offsets), offsets)
    index, offsets = state
    gather(xp, tables, index, values, offsets, result[rows, cols])


def apply_tables(xp, planes, tables, result, block_list):
    """``result[p] = tables[p][planes[p]]`` (or ``tables[0]`` for every plane), block by block.

    Parameters
    ----------
    planes : (P, N) integer ndarray
        Values already checked to lie in ``[0, L)``.
    tables : (P, L) or (1, L) ndarray
    result : (P, N) ndarray of ``tables.dtype``
    """
    length = tables.shape[-1]
    shared = tables.shape[0] == 1

    def remap(block):
        rows, cols = block
        n = rows.stop - rows.start
        offsets = xp.zeros((n, 1), np.intp) if shared else _planes.plane_offsets(xp, n, length)
        index = xp.add(planes[rows, cols], offsets, dtype=np.intp)
        gather(xp, tables if shared else tables[rows], index, None, offsets, result[rows, cols])

    _planes.map_blocks(xp, remap, block_list)
