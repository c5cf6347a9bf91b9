"""Batched histograms: each pixel's bin plus ``nbins * plane`` gives one index, and one
``bincount`` of those indices counts every plane of a block at once.

Two binnings cover every dtype:

* :class:`LevelBinning` -- integer images, one bin per integer level from a per-plane lowest level
  (0 for the level-indexed ``opencv`` / ``pil`` methods, the plane's minimum for ``skimage``);
* :class:`UniformBinning` -- floating images, ``nbins`` equal bins over each plane's
  ``[min, max]`` with exactly the rounding rules of :func:`numpy.histogram`.
"""

import numpy as np

from . import _cpu, _interop, _planes
from ._backend import array_module, is_cupy
from ._validate import check_images, check_mask, check_nbins, normalize_axes

__all__ = ["histogram", "cumulative_distribution"]

#: Widest per-plane integer range handled with one bin per level (64 MiB of int32 per plane).
MAX_LEVELS = 1 << 24


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

    def __init__(self, xp, nbins, low=None, clip=False):
        self.xp, self.nbins, self.low, self.clip = xp, nbins, low, clip

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
        False if any pixel (selected or not) is NaN or infinite; always True for integers.
    """
    dtype = np.dtype(planes.dtype)
    info = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
    top, bottom = dtype.type(info.max), dtype.type(info.min)

    def stats(block):
        rows, cols = block
        values = planes[rows, cols]
        if mask is None:  # min and max propagate NaN, and are infinite when a pixel is
            block_low, block_high = values.min(axis=1), values.max(axis=1)
            finite = xp.isfinite(block_low).all() & xp.isfinite(block_high).all()
            return block_low, block_high, finite
        finite = xp.isfinite(values).all() if dtype.kind == "f" else True
        selected = mask[rows, cols]
        return (xp.where(selected, values, top).min(axis=1),
                xp.where(selected, values, bottom).max(axis=1), finite)

    nplanes = planes.shape[0]
    low = xp.full(nplanes, top, dtype)
    high = xp.full(nplanes, bottom, dtype)
    finite = True
    for (rows, _), (block_low, block_high, block_finite) in zip(
            block_list, _planes.map_blocks(xp, stats, block_list)):
        xp.minimum(low[rows], block_low, out=low[rows])
        xp.maximum(high[rows], block_high, out=high[rows])
        finite = finite & block_finite
    return low, high, bool(finite)  # sync: one flag for the whole batch


def check_finite(finite):
    if not finite:
        raise ValueError("`images` must not contain NaN or infinity")


def check_edges_increase(increasing, nbins, dtype):
    if not increasing:
        raise ValueError(
            f"`nbins` {nbins} is too many for the range of a plane in {np.dtype(dtype)}: its bin "
            "edges would repeat (numpy.histogram refuses this too); use fewer bins or float64"
        )


def check_planes_selected(xp, selects):
    """Raise unless `selects`, ``(P,)`` bool, is True for every plane: a plane whose mask
    selects no pixel has no histogram to equalize by."""
    if not bool(selects.all()):  # sync: the error names the first such plane
        plane = int(xp.argmin(selects))
        raise ValueError(f"`mask` selects no pixel of plane {plane} (planes counted in C order "
                         "over the batch axes)")


def check_mask_selects(xp, mask_planes):
    """Raise unless the mask selects at least one pixel of every non-empty plane."""
    if mask_planes is None or mask_planes.shape[1] == 0 or mask_planes.shape[0] == 0:
        return
    check_planes_selected(xp, mask_planes.any(axis=1))


def integer_width(low, high):
    """Bins per plane for integer planes with ranges `low`, `high`: the widest plane's levels."""
    widest = int((high.astype(np.intp) - low.astype(np.intp)).max()) + 1  # sync: a shape
    if widest > MAX_LEVELS:
        raise ValueError(
            f"`images` spans {widest} integer levels in one plane; at most {MAX_LEVELS} are "
            "supported with one bin per level: convert to float to use `nbins` bins"
        )
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
    return LevelBinning(xp, width, low.astype(np.intp), clip=masked)


def binning_for(xp, planes, mask_planes, nbins, level_indexed, block_list):
    """The binning of `planes`: dtype levels, per-plane integer levels, or uniform float bins."""
    if level_indexed:
        return LevelBinning(xp, nbins)
    low, high, finite = plane_stats(xp, planes, mask_planes, block_list)
    check_finite(finite)
    return range_binning(xp, nbins, low, high, masked=mask_planes is not None)


def count(xp, index, selected, nplanes, nbins):
    """``(nplanes, nbins)`` counts of an offset index (optionally only where `selected`)."""
    if selected is not None:
        index = index[selected]
    return xp.bincount(index.ravel(), minlength=nplanes * nbins).reshape(nplanes, nbins)


def count_block(xp, planes, mask_planes, binning, block):
    """Counts of one block ``(rows, cols)``, with the offset index that produced them.

    Returns
    -------
    counts : (n, nbins) int64 ndarray
    index, offsets : (n, m) and (n, 1) intp ndarrays
        The remap reuses them, so a block of whole planes is binned once. On the compiled path
        `index` is the interpolation segment of each pixel (floating planes) or None (levels),
        and `offsets` None.
    """
    rows, cols = block
    values = planes[rows, cols]
    selected = None if mask_planes is None else mask_planes[rows, cols]
    if _cpu.covers(xp, binning, planes.dtype):
        counts, bins = _cpu.count(values, selected, binning, rows)
        return counts, bins, None
    offsets = _planes.plane_offsets(xp, rows.stop - rows.start, binning.nbins)
    index = binning.index(values, rows, offsets)
    return count(xp, index, selected, rows.stop - rows.start, binning.nbins), index, offsets


def block_counts(xp, planes, mask_planes, binning, block_list):
    """``(P, nbins)`` int64 histograms of every plane, block by block."""
    if is_cupy(xp):  # fused CUDA histogram kernels, when they cover this binning
        from ._cuda import block_counts as cuda_block_counts
        counts = cuda_block_counts(planes, mask_planes, binning)
        if counts is not None:
            return counts
    hist = xp.zeros((planes.shape[0], binning.nbins), np.int64)
    parts = _planes.map_blocks(
        xp, lambda block: count_block(xp, planes, mask_planes, binning, block)[0], block_list)
    for (rows, _), counts in zip(block_list, parts):
        hist[rows] += counts
    return hist


def _prepare(images, nbins, axes, mask):
    xp = array_module(images, mask=mask)
    check_images(images, xp)
    nbins = check_nbins(nbins)
    axes = normalize_axes(axes, images.ndim)
    mask = check_mask(mask, images, xp)
    planes, batch_shape, _ = _planes.to_planes(xp, images, axes)
    mask_planes = None if mask is None else _planes.to_planes(xp, mask, axes)[0]
    check_mask_selects(xp, mask_planes)
    return xp, planes, mask_planes, nbins, batch_shape


def planes_histogram(xp, planes, mask_planes, nbins):
    """Histograms and bin centers of a ``(P, N)`` array, following scikit-image per plane."""
    nplanes, npixels = planes.shape
    if npixels == 0 or nplanes == 0:
        return _empty_histogram(xp, planes.dtype, nplanes, nbins)
    block_list = _planes.blocks(xp, nplanes, npixels, nbins)
    binning = binning_for(xp, planes, mask_planes, nbins, False, block_list)
    block_list = _planes.blocks(xp, nplanes, npixels, binning.nbins)
    counts = block_counts(xp, planes, mask_planes, binning, block_list)
    return counts, binning.centers(slice(None), nplanes)


def _empty_histogram(xp, dtype, nplanes, nbins):
    # numpy.histogram of an empty array uses the range [0, 1]; integers get levels 0..nbins-1
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        first = xp.zeros(nplanes, dtype)
        centers = UniformBinning(xp, nbins, first, first + dtype.type(1)).centers(slice(None), nplanes)
    else:
        centers = xp.broadcast_to(xp.arange(nbins, dtype=np.intp), (nplanes, nbins)).copy()
    return xp.zeros((nplanes, nbins), np.int64), centers


def histogram(images, nbins=256, *, axes=(-2, -1), mask=None):
    """Histogram of every image plane in one call.

    Parameters
    ----------
    images : (..., H, W) ndarray
        NumPy or CuPy array, integer or floating. The `axes` form one image; every other axis
        is a batch axis with its own histogram.
    nbins : int, optional
        Number of bins for floating images. Integer images get one bin per integer level between
        the plane's minimum and maximum (as :func:`skimage.exposure.histogram`), so `nbins` is
        checked but not used for them.
    axes : tuple of int, optional
        The axes of one image.
    mask : (..., H, W) bool ndarray, optional
        Broadcastable to `images`; only selected pixels are counted.

    Returns
    -------
    counts : (batch..., B) int64 ndarray
        ``B = nbins`` for floating images; for integer images ``B`` is the widest plane's number
        of levels, planes narrower than that count zero in their last bins.
    centers : (batch..., B) ndarray
        The value at the center of each bin of each plane (the images' floating dtype, or intp).

    Raises
    ------
    TypeError, ValueError
        For unsupported dtypes, bad `nbins`, `axes` or `mask`, and NaN or infinite values.

    See Also
    --------
    skimage.exposure.histogram : the per-image function this reproduces exactly.

    Notes
    -----
    Floating planes are binned over their own ``[min, max]`` with :func:`numpy.histogram`'s
    edges and rounding, so every count equals scikit-image's for that plane.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import histogram
    >>> images = np.array([[[0, 1], [1, 3]], [[5, 5], [6, 6]]], dtype=np.uint8)
    >>> counts, centers = histogram(images)
    >>> counts
    array([[1, 2, 0, 1],
           [2, 2, 0, 0]])
    >>> centers
    array([[0, 1, 2, 3],
           [5, 6, 7, 8]])
    """
    if _interop.handles(images):  # dask arrays, torch tensors, JAX arrays
        return _interop.call("histogram", images, nbins, axes=axes, mask=mask)
    xp, planes, mask_planes, nbins, batch_shape = _prepare(images, nbins, axes, mask)
    counts, centers = planes_histogram(xp, planes, mask_planes, nbins)
    width = counts.shape[-1]
    return counts.reshape(batch_shape + (width,)), centers.reshape(batch_shape + (width,))


def cumulative_distribution(images, nbins=256, *, axes=(-2, -1), mask=None):
    """Cumulative distribution of every image plane in one call.

    Parameters
    ----------
    images, nbins, axes, mask
        As for :func:`histogram`.

    Returns
    -------
    cdf : (batch..., B) ndarray
        Fraction of each plane's (selected) pixels at or below each bin; float32 for float16 and
        float32 images, float64 otherwise (scikit-image's rule).
    centers : (batch..., B) ndarray
        As returned by :func:`histogram`.

    See Also
    --------
    skimage.exposure.cumulative_distribution : reproduced per plane to the last bit.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import cumulative_distribution
    >>> cdf, centers = cumulative_distribution(np.array([[0, 1], [1, 3]], dtype=np.uint8))
    >>> cdf
    array([0.25, 0.75, 0.75, 1.  ])
    """
    if _interop.handles(images):  # dask arrays, torch tensors, JAX arrays
        return _interop.call("cumulative_distribution", images, nbins, axes=axes, mask=mask)
    xp, planes, mask_planes, nbins, batch_shape = _prepare(images, nbins, axes, mask)
    counts, centers = planes_histogram(xp, planes, mask_planes, nbins)
    cdf = cdf_table(xp, counts, planes.dtype)
    width = counts.shape[-1]
    return cdf.reshape(batch_shape + (width,)), centers.reshape(batch_shape + (width,))


def cdf_dtype(dtype):
    """scikit-image's floating type for `dtype`: float32 for float16/32, float64 otherwise."""
    return np.dtype(np.float32) if np.dtype(dtype) in (np.float16, np.float32) else np.dtype(np.float64)


def cdf_table(xp, counts, dtype):
    """``(P, B)`` cumulative fraction ``cumsum / total`` in float64, cast to scikit-image's type."""
    cumulative = xp.cumsum(counts, axis=-1)
    total = xp.maximum(cumulative[..., -1:], 1)
    return (cumulative / total.astype(np.float64)).astype(cdf_dtype(dtype))
