"""The pipeline over chunks that may split images: histograms per chunk, summed, then one remap.

``equalize_hist`` on an in-memory array sees every pixel of a plane at once. Dask arrays and the
streaming CLI see a plane in pieces (a chunk along an image axis, or a slab of a file whose first
axis is an image axis, as in dataset-wide equalization). Those callers run the same three steps
as the in-memory pipeline, each chunk on its own and the partial results reduced:

1. ``chunk_stats``  -- per-plane minimum and maximum (``method="skimage"`` only), reduced by
   ``min`` / ``max``;
2. ``chunk_counts`` -- per-plane histograms under one binning, reduced by ``sum``;
3. ``chunk_equalize`` -- each chunk remapped through its planes' tables.

The binnings, tables and engine steps are the in-memory pipeline's own (``_binning``,
``_tables``, ``_engine``), so the result is bit-identical to ``equalize_hist`` on the whole array. Every
function here takes one chunk (NumPy or CuPy) and the image `axes`; the planes of a chunk are its
batch positions in C order, and per-plane arrays (``low``, ``high``, ``counts``) are given for
exactly those planes.
"""

from dataclasses import dataclass

import numpy as np

from . import _engine, _planes
from ._backend import array_module
from ._binning import LevelBinning, integer_width, plane_stats, range_binning
from ._tables import cdf_dtype, table_maker
from ._validate import check_finite, check_levels_nbins, check_planes_selected, resolve_method


@dataclass(frozen=True)
class Spec:
    """What one equalization needs to know before it sees any pixel.

    Attributes
    ----------
    method : str
        ``"opencv"``, ``"pil"`` or ``"skimage"`` (resolved from the dtype when None was asked).
    dtype, result_dtype : numpy.dtype
    nbins : int
        Bins of floating ``"skimage"`` input; the dtype's levels for the level-indexed methods.
    masked : bool
        Whether a mask selects the counted pixels.
    """

    method: str
    dtype: np.dtype
    result_dtype: np.dtype
    nbins: int
    masked: bool

    @property
    def level_indexed(self):
        """True for ``"opencv"`` / ``"pil"``: bins are the dtype's levels, no statistics pass."""
        return self.method in ("opencv", "pil")

    @property
    def needs_stats(self):
        """True when the binning depends on each plane's range (``"skimage"``)."""
        return not self.level_indexed


def make_spec(dtype, nbins, method, masked):
    """Resolve and check `method` and `nbins` for `dtype` (the in-memory checks, same messages)."""
    dtype = np.dtype(dtype)
    method = resolve_method(method, dtype)
    if method in ("opencv", "pil"):
        nbins = check_levels_nbins(nbins, dtype, method)
        result_dtype = dtype
    else:
        result_dtype = cdf_dtype(dtype)
    return Spec(method, dtype, np.dtype(result_dtype), nbins, bool(masked))


def chunk_planes(chunk, axes):
    """``(planes, batch_shape, image_shape)`` of one chunk, as ``_planes.to_planes``."""
    return _planes.to_planes(array_module(chunk), chunk, axes)


def chunk_stats(chunk, mask, axes):
    """Per-plane minimum and maximum of the selected pixels of one chunk.

    Returns
    -------
    low, high : (P,) ndarray of ``chunk.dtype``
        A plane with no selected pixel in this chunk gets the dtype's maximum / minimum, the
        neutral elements of the reduction.

    Raises
    ------
    ValueError
        If the chunk holds NaN or infinity.
    """
    xp = array_module(chunk)
    planes = chunk_planes(chunk, axes)[0]
    mask_planes = None if mask is None else chunk_planes(mask, axes)[0]
    nplanes, npixels = planes.shape
    if npixels == 0:
        info = np.finfo(planes.dtype) if planes.dtype.kind == "f" else np.iinfo(planes.dtype)
        return (xp.full(nplanes, info.max, planes.dtype), xp.full(nplanes, info.min, planes.dtype))
    block_list = _planes.blocks(xp, nplanes, npixels, 1)
    low, high, finite = plane_stats(xp, planes, mask_planes, block_list)
    check_finite(finite)
    return low, high


def level_width(spec, low, high):
    """Bins per plane of integer ``"skimage"`` input: the widest plane's number of levels.

    `low` and `high` are host or device arrays of every plane; this is a shape, so it syncs.
    """
    if spec.level_indexed:
        return spec.nbins
    if spec.dtype.kind == "f":
        return spec.nbins
    if low.size == 0:
        return 1
    return max(integer_width(low, high), 1)


def binning(xp, spec, width, low=None, high=None):
    """The in-memory pipeline's binning for planes with ranges `low`, `high` (``(P,)`` each)."""
    if spec.level_indexed:
        return LevelBinning(xp, spec.nbins)
    return range_binning(xp, spec.nbins, low, high, spec.masked, width)


def chunk_counts(chunk, mask, axes, spec, width, low=None, high=None):
    """``(P, width)`` int64 histograms of the planes of one chunk under the shared binning."""
    xp = array_module(chunk)
    planes = chunk_planes(chunk, axes)[0]
    mask_planes = None if mask is None else chunk_planes(mask, axes)[0]
    nplanes, npixels = planes.shape
    if nplanes == 0 or npixels == 0:
        return xp.zeros((nplanes, width), np.int64)
    bins = binning(xp, spec, width, low, high)
    block_list = _planes.blocks(xp, nplanes, npixels, width)
    return _engine.histograms(xp, planes, mask_planes, bins, block_list)


def check_counts(xp, counts, npixels):
    """Raise if a non-empty plane counted no pixel: the mask selects none of it."""
    if npixels == 0 or counts.shape[0] == 0:
        return
    check_planes_selected(xp, counts.sum(axis=1) > 0)


def tables(xp, spec, width, counts, low=None, high=None):
    """The remap tables (an array or an ``InterpTable``) of planes with `counts` and ranges."""
    bins = binning(xp, spec, width, low, high)
    make = table_maker(xp, spec.method, bins, spec.dtype, counts.shape[0])
    return bins, make(counts, slice(None))


def chunk_equalize(chunk, axes, spec, width, counts, low=None, high=None, table=None):
    """Remap one chunk through the tables of its planes.

    Parameters
    ----------
    chunk : ndarray
    axes : tuple of int
    spec : Spec
    width : int
    counts : (P, width) int64 ndarray
        The planes' complete histograms (summed over every chunk).
    low, high : (P,) ndarray, optional
        The planes' complete ranges, for ``"skimage"``.
    table : tuple, optional
        ``tables(...)`` already built for these planes (the streaming CLI reuses it).

    Returns
    -------
    ndarray
        Shape of `chunk`, ``spec.result_dtype``.
    """
    xp = array_module(chunk)
    planes, batch_shape, image_shape = chunk_planes(chunk, axes)
    result = xp.empty(planes.shape, spec.result_dtype)
    nplanes, npixels = planes.shape
    if nplanes and npixels:
        bins, lut = table if table is not None else tables(xp, spec, width, counts, low, high)
        block_list = _planes.blocks(xp, nplanes, npixels, width)
        _planes.map_blocks(
            xp, lambda block: _engine.remap_block(xp, planes, bins, lut[block[0]], result, block),
            block_list)
    return _planes.from_planes(xp, result, batch_shape, image_shape, axes)


# ------------------------------------------------------------------- an eager two-pass driver

def passes(spec):
    """Passes over the data of :func:`equalize_slabs`: ranges (``"skimage"`` only), counts,
    remap."""
    return 3 if spec.needs_stats else 2


def equalize_slabs(read, slabs, axes, spec, npixels, write, *, mask=None, advance=None,
                   reads=None):
    """Dataset-wide equalization of an array read in slabs that split its planes.

    The eager form of Dask's lazy two-pass graph, over the same chunk steps: per-plane ranges
    reduced by min / max (``"skimage"`` only), counts summed, one table per plane, then every
    slab remapped and handed to `write`. The streaming CLI reads a file this way.

    Parameters
    ----------
    read : callable
        ``read(start, stop)`` -> the slab (NumPy or CuPy), read again on each pass.
    slabs : sequence of (int, int)
        ``(start, stop)`` along the axis the slabs split.
    axes : tuple of int
        Image axes of a slab (normalized, ascending).
    spec : Spec
    npixels : int
        Pixels of one whole plane (over every slab): 0 skips the mask check.
    write : callable
        ``write(start, stop, result)`` with the remapped slab (the device it was read to).
    mask : callable, optional
        ``mask(start, stop)`` -> the mask of that slab, or None.
    advance : callable, optional
        ``advance(n)`` after each slab of `n` entries (progress), on every pass.
    reads : callable, optional
        ``reads(slabs)`` -> iterable of ``(start, stop, slab)``, used for each pass instead of
        `read` (the streaming CLI reads the next slab while one is processed).

    Raises
    ------
    ValueError
        As :func:`gpu_histeq.equalize_hist`: NaN or infinity, a mask selecting no pixel of a
        plane.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import _chunked, equalize_hist
    >>> images = np.random.default_rng(0).integers(0, 200, (6, 8, 8), dtype=np.uint8)
    >>> spec = _chunked.make_spec(images.dtype, 256, None, False)
    >>> out = np.empty_like(images)
    >>> def write(start, stop, result):
    ...     out[start:stop] = result
    >>> _chunked.equalize_slabs(lambda start, stop: images[start:stop], [(0, 4), (4, 6)],
    ...                         (0, 1, 2), spec, images.size, write)
    >>> bool((out == equalize_hist(images, axes=(0, 1, 2))).all())
    True
    """
    if reads is None:
        def reads(slabs):
            return ((start, stop, read(start, stop)) for start, stop in slabs)

    def each(step, masked=True):
        for start, stop, chunk in reads(slabs):
            chunk_mask = None if mask is None or not masked else mask(start, stop)
            step(start, stop, chunk, chunk_mask)
            if advance is not None:
                advance(stop - start)

    state = {"low": None, "high": None, "counts": None, "xp": np}

    def stats(start, stop, chunk, chunk_mask):
        low, high = chunk_stats(chunk, chunk_mask, axes)
        xp = state["xp"] = array_module(chunk)
        if state["low"] is not None:
            low, high = xp.minimum(state["low"], low), xp.maximum(state["high"], high)
        state["low"], state["high"] = low, high

    if spec.needs_stats:
        each(stats)
    low, high = state["low"], state["high"]
    width = level_width(spec, low, high)

    def count(start, stop, chunk, chunk_mask):
        part = chunk_counts(chunk, chunk_mask, axes, spec, width, low, high)
        state["xp"] = array_module(chunk)
        state["counts"] = part if state["counts"] is None else state["counts"] + part

    each(count)
    counts = state["counts"]
    check_counts(state["xp"], counts, npixels)
    table = tables(state["xp"], spec, width, counts, low, high)

    def remap(start, stop, chunk, chunk_mask):
        write(start, stop, chunk_equalize(chunk, axes, spec, width, counts, low, high,
                                          table=table))

    each(remap, masked=False)
