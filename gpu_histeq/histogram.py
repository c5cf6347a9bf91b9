"""Batched histograms: each pixel's bin plus ``nbins * plane`` gives one index, and one
``bincount`` of those indices counts every plane of a block at once.

The public :func:`histogram` and :func:`cumulative_distribution`: validate, then the pipeline's
binning (:mod:`gpu_histeq._binning`), counting (:mod:`gpu_histeq._engine`) and cumulative table
(:mod:`gpu_histeq._tables`).
"""

from typing import Any, overload

import numpy as np

from . import _engine, _planes
from ._backend import array_module
from ._binning import UniformBinning, binning_for
from ._tables import cdf_table
from ._validate import (check_allocation, check_images, check_mask, check_mask_selects,
                        check_nbins, image_axes, native, plane_count, refuse_masked)
from ._typing import Array, ArrayList, Axes, Pair

__all__ = ["histogram", "cumulative_distribution"]


#: Bytes per bin of one plane a histogram holds: counts and centers, int64 / float64 each, and
#: the binning's edges and their temporaries.
BYTES_PER_BIN = 48


def _prepare(images, nbins, axes, mask, channel_axis):
    xp = array_module(images, mask=mask)
    check_images(images, xp)
    images = native(images)
    refuse_masked(mask, "mask")
    nbins = check_nbins(nbins)
    axes, _ = image_axes(axes, channel_axis, images.shape)
    if images.dtype.kind == "f":  # integer planes get one bin per level (checked on the data)
        check_allocation("nbins", nbins, BYTES_PER_BIN * nbins * max(plane_count(images.shape,
                                                                                 axes), 1), xp)
    mask = check_mask(mask, images, xp)
    planes, batch_shape, _ = _planes.to_planes(xp, images, axes)
    mask_planes = None if mask is None else _planes.to_planes(xp, mask, axes)[0]
    return xp, planes, mask_planes, nbins, batch_shape


def _tables(xp, planes, mask_planes, nbins, cumulative):
    """``(counts or cdf, centers)`` of ``(P, N)`` planes: the fused kernels where an engine has
    them (which check the mask and the data themselves), else the steps below."""
    if planes.shape[0] and planes.shape[1]:
        fused = _engine.histogram(xp, planes, mask_planes, nbins, cumulative)
        if fused is not None:
            return fused
    check_mask_selects(xp, mask_planes)
    counts, centers = planes_histogram(xp, planes, mask_planes, nbins)
    return (cdf_table(xp, counts, planes.dtype) if cumulative else counts), centers


def planes_histogram(xp, planes, mask_planes, nbins):
    """Histograms and bin centers of a ``(P, N)`` array, following scikit-image per plane."""
    nplanes, npixels = planes.shape
    if npixels == 0 or nplanes == 0:
        return _empty_histogram(xp, planes.dtype, nplanes, nbins)
    block_list = _planes.blocks(xp, nplanes, npixels, nbins)
    binning = binning_for(xp, planes, mask_planes, nbins, False, block_list)
    block_list = _planes.blocks(xp, nplanes, npixels, binning.nbins)
    counts = _engine.histograms(xp, planes, mask_planes, binning, block_list)
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


@overload
def histogram(
        images: Array, nbins: int = ..., *, axes: Axes = ..., mask: Any = ...,
        channel_axis: int | None = ...) -> Pair: ...


@overload
def histogram(
        images: ArrayList, nbins: int = ..., *, axes: Axes = ..., mask: Any = ...,
        channel_axis: int | None = ...) -> list[Pair]: ...


@overload
def histogram(
        images: Any, nbins: int = ..., *, axes: Axes = ..., mask: Any = ...,
        channel_axis: int | None = ...) -> Any: ...


def histogram(
        images: Any, nbins: int = 256, *, axes: Axes = None, mask: Any = None,
        channel_axis: int | None = None) -> Any:
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
        The axes of one image. None (the default) means ``(-2, -1)``, or with `channel_axis`
        the two trailing axes other than it.
    mask : (..., H, W) bool ndarray, optional
        Broadcastable to `images`; only selected pixels are counted.
    channel_axis : int, optional
        The axis of colour channels, as in scikit-image: one more batch axis, each channel with
        its own histogram (and its own bins).

    Returns
    -------
    counts : (batch..., B) int64 ndarray
        ``B = nbins`` for floating images; for integer images ``B`` is the widest plane's number
        of levels, planes narrower than that count zero in their last bins.
    centers : (batch..., B) ndarray
        The value at the center of each bin of each plane (the images' floating dtype, intp,
        or uint64 for uint64 images).

    Raises
    ------
    TypeError, ValueError
        For unsupported dtypes, masked arrays, bad `nbins`, `axes` or `mask`, NaN or infinite
        values, an integer plane spanning more than 2**24 levels, and `nbins` whose counts would
        need more than half the available memory.

    See Also
    --------
    skimage.exposure.histogram : the per-image function this reproduces exactly.

    Notes
    -----
    Floating planes are binned over their own ``[min, max]`` with :func:`numpy.histogram`'s
    edges and rounding, so every count equals scikit-image's for that plane.

    On CuPy, 8-, 16- and 32-bit integer and float16 (up to 2048 bins) / float32 / float64
    planes take three kernels (each plane's range, the counts, then counts, centers and the CDF
    of every plane in one launch) and synchronize once: integer input to read the planes' ranges, since the result's width
    is the widest plane's levels (it comes from the data, as in scikit-image); floating input to
    read one status word (a mask selecting nothing, NaN or infinity, repeated bin edges). 64-bit
    integers take the portable ``bincount`` path.

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
    xp, planes, mask_planes, nbins, batch_shape = _prepare(images, nbins, axes, mask, channel_axis)
    counts, centers = _tables(xp, planes, mask_planes, nbins, False)
    width = counts.shape[-1]
    return counts.reshape(batch_shape + (width,)), centers.reshape(batch_shape + (width,))


@overload
def cumulative_distribution(
        images: Array, nbins: int = ..., *, axes: Axes = ..., mask: Any = ...,
        channel_axis: int | None = ...) -> Pair: ...


@overload
def cumulative_distribution(
        images: ArrayList, nbins: int = ..., *, axes: Axes = ..., mask: Any = ...,
        channel_axis: int | None = ...) -> list[Pair]: ...


@overload
def cumulative_distribution(
        images: Any, nbins: int = ..., *, axes: Axes = ..., mask: Any = ...,
        channel_axis: int | None = ...) -> Any: ...


def cumulative_distribution(
        images: Any, nbins: int = 256, *, axes: Axes = None, mask: Any = None,
        channel_axis: int | None = None) -> Any:
    """Cumulative distribution of every image plane in one call.

    Parameters
    ----------
    images, nbins, axes, mask, channel_axis
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

    Notes
    -----
    On CuPy, the same kernels and the one synchronization as :func:`histogram`; the cumulative
    distribution is written by the last kernel, no counts array is made.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import cumulative_distribution
    >>> cdf, centers = cumulative_distribution(np.array([[0, 1], [1, 3]], dtype=np.uint8))
    >>> cdf
    array([0.25, 0.75, 0.75, 1.  ])
    """
    xp, planes, mask_planes, nbins, batch_shape = _prepare(images, nbins, axes, mask, channel_axis)
    cdf, centers = _tables(xp, planes, mask_planes, nbins, True)
    width = cdf.shape[-1]
    return cdf.reshape(batch_shape + (width,)), centers.reshape(batch_shape + (width,))
