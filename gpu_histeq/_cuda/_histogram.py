"""The CUDA entry point of ``histogram`` / ``cumulative_distribution`` (the convention at the top
of :mod:`gpu_histeq._cuda`): each plane's range, its counts, then counts or CDF and centers of
every plane in one launch each (``levels.cu`` / ``uniform.cu``, then ``histogram.cu``)."""

import numpy as np

from .._validate import (check_edges_increase, check_finite, check_level_span,
                         check_mask_selects, no_pixel_selected)
from . import _sources
from ._declined import _uncovered, _uncovered_rows


def histogram(planes, mask_planes, nbins, cumulative):
    """scikit-image's histogram (or cumulative distribution) of every row of `planes`.

    Parameters
    ----------
    planes : (P, N) cupy.ndarray
        C-contiguous, N > 0.
    mask_planes : (P, N) bool cupy.ndarray or None
        Pixels counted (every plane must select one).
    nbins : int
        Bins of floating planes (integer planes: one per level of the widest plane's range).
    cumulative : bool
        Return the cumulative distribution (``histogram.cdf_table``) instead of the counts.

    Returns
    -------
    (table, centers) or Declined
        ``(P, B)`` int64 counts or the cdf (float32 for float32 planes, float64 otherwise) and
        ``(P, B)`` centers (int64, or the planes' dtype), bit for bit the portable
        ``histogram.planes_histogram`` (+ ``cdf_table``); ``Declined("uncovered")``, nothing
        launched, for 64-bit integers, float16 with more than ``_sources.HALF_BINS`` bins,
        empty or non-contiguous planes.

    Raises
    ------
    ValueError
        As the portable path and in its order: a plane whose mask selects no pixel, NaN or
        infinity, an integer plane spanning more than 2**24 levels, repeated bin edges.

    Notes
    -----
    One synchronization: integer planes read their ``(2, P)`` ranges (the result's width is the
    widest plane's levels, a shape that depends on the data, as in scikit-image); floating
    planes read their status word. Launches: integers 6 (two fills of the ranges, the range
    kernel, the zeroed counts, the level histogram, the finish), floats 7 (fills of low, high and
    status instead of the ranges).
    """
    import cupy
    from . import _kernels as k
    dtype = np.dtype(planes.dtype)
    declined = _uncovered_rows(planes, mask_planes)
    if declined is None and dtype not in (*_sources.HISTOGRAM_LEVEL_DTYPES, *_sources.FLOAT_DTYPES,
                                          _sources.HALF):
        declined = _uncovered(f"histograms of {dtype} planes")
    elif declined is None and dtype == _sources.HALF and nbins > _sources.HALF_BINS:
        declined = _uncovered(f"float16 histograms of more than {_sources.HALF_BINS} bins")
    if declined is not None:
        return declined
    from .._tables import cdf_dtype
    rows = k.Planes(planes, mask_planes)
    nplanes = rows.count
    with planes.device:
        if dtype.kind != "f":
            ranges = cupy.empty((2, nplanes), np.int64)
            ranges[0], ranges[1] = np.iinfo(np.int64).max, np.iinfo(np.int64).min
            k.level_range(rows, ranges)
            low, high = ranges.get()  # sync: the result's width (the widest plane's levels)
            empty = high < low
            if empty.any():  # only with a mask: the planes it selects nothing of
                no_pixel_selected(int(np.argmax(empty)))
            width = int((high - low).max()) + 1
            check_level_span(width)
            hists = cupy.zeros((nplanes, width), np.uint32)
            k.level_histograms(rows, ranges[0], width, hists)
            table = cupy.empty((nplanes, width), np.float64 if cumulative else np.int64)
            centers = cupy.empty((nplanes, width), np.int64)
            k.histogram_finish(hists, ranges[0], None, None if cumulative else table,
                               table if cumulative else None, centers)
            return table, centers
        low = cupy.full(nplanes, np.inf, k.range_dtype(dtype))
        high = cupy.full(nplanes, -np.inf, k.range_dtype(dtype))
        status = cupy.zeros(2, np.int32)
        k.plane_minmax(rows, low, high, status)
        hists = cupy.zeros((nplanes, nbins), np.uint32)
        k.uniform_histograms(rows, low, high, 1, nbins, hists)
        table = cupy.empty((nplanes, nbins), cdf_dtype(dtype) if cumulative else np.int64)
        centers = cupy.empty((nplanes, nbins), dtype)
        k.histogram_finish(hists, low, high, None if cumulative else table,
                           table if cumulative else None, centers, status)
        flags, first = (int(v) for v in status.get())  # sync: errors, as portably
        if flags & k.STATUS_NO_PIXEL:
            if flags & k.STATUS_NOT_FINITE:  # or a selection of NaN only: the mask decides
                check_mask_selects(cupy, mask_planes)
            else:
                no_pixel_selected(nplanes - first)
        check_finite(not flags & k.STATUS_NOT_FINITE)
        check_edges_increase(not flags & k.STATUS_REPEATED_EDGES, nbins, dtype)
        return table, centers
