"""scikit-image's histogram functions, one image per call, on gpu_histeq's pipeline.

Each function takes scikit-image's arguments, gives its result dtypes and errors, and hands the
work to the batched steps below it: the whole image (or each channel) is one plane of the
engine's ``(planes, pixels)`` layout, its bins come from :mod:`gpu_histeq._binning`, its counts
from :func:`gpu_histeq._engine.histograms` (compiled C on NumPy, CUDA kernels on CuPy), its table
from :mod:`gpu_histeq._tables`, and :func:`gpu_histeq.equalize.equalize_hist`,
:func:`gpu_histeq.adaptive.equalize_adapthist` and :func:`gpu_histeq.matching.match_histograms`
do the rest.
"""

import numbers
import warnings

import numpy as np

from .. import _engine, _planes, adaptive, equalize, matching
from .. import histogram as _histogram
from .._backend import array_module, backend_name, is_cupy, is_dask
from .._engine.portable import count_block as portable_count_block
from .._binning import plane_stats, range_binning
from .._interop import adapt
from .._tables import cdf_table
from .._validate import check_finite, check_images, native

# the batched public functions, as the package exports them (Dask arrays go to their adapters)
_equalize_hist = adapt(equalize.equalize_hist)
_equalize_adapthist = adapt(adaptive.equalize_adapthist)
_match_histograms = adapt(matching.match_histograms)
_dask_histogram = adapt(_histogram.histogram)
_dask_cumulative_distribution = adapt(_histogram.cumulative_distribution)

__all__ = ["histogram", "cumulative_distribution", "equalize_hist", "equalize_adapthist",
           "match_histograms"]

_COLOR_WARNING = ("This might be a color image. The histogram will be computed on the flattened "
                  "image. You can instead apply this function to each color channel, or set "
                  "channel_axis.")


def namespace(image, **others):
    """The array module of `image`: numpy or cupy (checked against `others`, as
    :func:`gpu_histeq._backend.array_module`), or ``dask.array`` for a Dask array, whose chunks
    the Dask adapters check."""
    if is_dask(image):
        import dask.array
        return dask.array
    return array_module(image, **others)


def _dask_refused(what):
    return TypeError(f"{what} is not available for Dask arrays: pass `image.compute()` (one image "
                     "per call, as scikit-image)")


def channel_index(channel_axis, ndim):
    """`channel_axis` as a non-negative axis; :class:`numpy.exceptions.AxisError` (a ValueError
    and an IndexError) when out of range, TypeError when not an integer, as scikit-image."""
    if isinstance(channel_axis, tuple) and len(channel_axis) == 1:
        channel_axis = channel_axis[0]
    if isinstance(channel_axis, (bool, np.bool_)) or not isinstance(channel_axis, numbers.Integral):
        raise TypeError(f"`channel_axis` must be an int or None, got {channel_axis!r}")
    if not -ndim <= channel_axis < ndim:
        raise np.exceptions.AxisError(int(channel_axis), ndim, "`channel_axis`")
    return int(channel_axis) % ndim


def as_image(image, xp):
    """`image` checked (integer, bool or real floating; any number of dimensions), in native
    byte order; bool becomes float64, as :func:`numpy.histogram` bins it."""
    dtype = np.dtype(image.dtype)
    if dtype.kind == "b":
        return image.astype(np.float64)
    check_images(image.reshape((1,) * (image.ndim < 2) + image.shape), xp)
    return native(image)


def bins_for(image, nbins):
    """The bins of `image` as :func:`numpy.histogram` takes `nbins`: any integer (bool too) for
    floating images, ValueError below 1 or for a string, TypeError for other types; integer
    images have one bin per level and ignore `nbins` (256 is passed on)."""
    if np.dtype(image.dtype).kind != "f":
        return 256
    if isinstance(nbins, str):
        raise ValueError(f"`nbins` must be a positive integer, got {nbins!r}")
    if not isinstance(nbins, (numbers.Integral, np.bool_)):
        raise TypeError(f"`nbins` must be an integer, got {nbins!r}")
    if nbins < 1:
        raise ValueError(f"`nbins` must be a positive integer, got {nbins!r}")
    return int(nbins)


def _dtype_range(dtype):
    """scikit-image's ``dtype_limits(image, clip_negative=False)``."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return 0, 1
    if dtype.kind == "f":
        return -1, 1
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _plane_counts(xp, planes, nbins, source_range, dtype):
    """Counts and centers of every row of ``(P, N)`` `planes`, all with the same bins: those of
    the whole array (``source_range="image"``) or of `dtype` (``"dtype"``), as scikit-image
    bins one image (or the channels of one image)."""
    nplanes, npixels = planes.shape
    floating = np.dtype(planes.dtype).kind == "f"
    selected = None
    if source_range == "dtype":
        low, high = _dtype_range(dtype)
        if floating:  # numpy.histogram drops values outside an explicit range (and NaN)
            selected = (planes >= low) & (planes <= high)
    elif planes.size == 0:
        if not floating:
            raise ValueError("zero-size array to reduction operation minimum which has no identity")
        low, high = 0, 1  # numpy.histogram's range for an empty array
    else:
        block_list = _planes.blocks(xp, nplanes, npixels, 1)
        plane_low, plane_high, finite = plane_stats(xp, planes, None, block_list)
        check_finite(finite)
        low, high = plane_low.min(keepdims=True), plane_high.max(keepdims=True)  # on the device

    def per_plane(value):  # a Python number or a (1,) array, for every plane
        return xp.broadcast_to(xp.asarray(value, dtype=planes.dtype).reshape(-1), (nplanes,)).copy()

    low_planes, high_planes = per_plane(low), per_plane(high)
    # integers over the dtype's range: the width is known without reading the device
    width = high - low + 1 if source_range == "dtype" and not floating else None
    binning = range_binning(xp, nbins, low_planes, high_planes, masked=False, width=width)
    if floating and source_range == "dtype":
        # the edges numpy.linspace gives for the range in float64, then in the images' dtype
        edges = np.linspace(low, high, nbins + 1, dtype=planes.dtype)
        binning.edges = xp.ascontiguousarray(
            xp.broadcast_to(xp.asarray(edges), binning.edges.shape))
    block_list = _planes.blocks(xp, nplanes, npixels, binning.nbins)
    if npixels == 0 or nplanes == 0:
        counts = xp.zeros((nplanes, binning.nbins), np.int64)
    elif floating and source_range == "dtype" and is_cupy(xp):
        # the CUDA kernels derive the edges from the range in the image's dtype, which for
        # float16/float32 differ from these by an ulp at some edges: the portable count reads them
        counts = xp.zeros((nplanes, binning.nbins), np.int64)
        for block in block_list:
            counts[block[0]] += portable_count_block(xp, planes, selected, binning, block)[0]
    else:
        counts = _engine.histograms(xp, planes, selected, binning, block_list)
    centers = binning.centers(slice(0, 1), nplanes)[0]
    if not floating:
        centers = centers.astype(np.int64)
    return counts, centers


def histogram(image, nbins=256, source_range="image", normalize=False, *, channel_axis=None):
    """Histogram of one image, as :func:`skimage.exposure.histogram`.

    Parameters
    ----------
    image : (M[, ...]) ndarray
        NumPy or CuPy array (a torch tensor or JAX array through :mod:`gpu_histeq.exposure`),
        integer, bool or floating, any number of dimensions.
    nbins : int, optional
        Number of bins for floating images; ignored for integer images, where each level is a bin.
    source_range : {"image", "dtype"}, optional
        The range of the bins: the image's minimum and maximum, or the dtype's range
        (``[-1, 1]`` for floats; values outside it are not counted).
    normalize : bool, optional
        Divide the counts by their sum (per channel).
    channel_axis : int, optional
        The channel axis: one histogram per channel, all over the same bins (those of the whole
        image), as scikit-image.

    Returns
    -------
    hist : (B,) or (C, B) ndarray
        int64 counts, float64 when `normalize`.
    bin_centers : (B,) ndarray
        int64 for integer images, the image's floating dtype otherwise (float64 for bool).

    Raises
    ------
    ValueError
        Bad `source_range` or `nbins`, NaN or infinity with ``source_range="image"``, an empty
        integer image with ``source_range="image"``, an integer image spanning more than 2**24
        levels. :class:`numpy.exceptions.AxisError` for `channel_axis` out of range.

    Warns
    -----
    UserWarning
        For a 3-D image with a last axis shorter than 4 and no `channel_axis` (scikit-image's
        warning).

    See Also
    --------
    skimage.exposure.histogram : reproduced exactly (the same counts and centers).

    Notes
    -----
    The image, or each channel, is one plane of the engine; the shared bins are the whole
    image's (:func:`numpy.histogram`'s edges for floats, one bin per level for integers).

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import exposure
    >>> exposure.histogram(np.array([0, 1, 1, 3], dtype=np.uint8))
    (array([1, 2, 0, 1]), array([0, 1, 2, 3]))
    """
    xp = namespace(image)
    dtype = np.dtype(image.dtype)
    image = as_image(image, xp)
    if not isinstance(source_range, str) or source_range not in ("image", "dtype"):
        raise ValueError(f"Incorrect value for `source_range` argument: {source_range}")
    nbins = bins_for(image, nbins)
    if image.ndim == 3 and image.shape[-1] < 4 and channel_axis is None:
        warnings.warn(_COLOR_WARNING, UserWarning, stacklevel=3)
    if is_dask(image):
        if source_range != "image" or channel_axis is not None:
            raise _dask_refused("`source_range='dtype'` or `channel_axis`")
        if image.size == 0 and image.dtype.kind != "f":
            raise ValueError("zero-size array to reduction operation minimum which has no identity")
        counts, centers = _dask_histogram(image.reshape(1, -1), nbins, axes=(0, 1))
        if image.dtype.kind != "f":
            centers = centers.astype(np.int64)
        return (counts / counts.sum() if normalize else counts), centers
    if channel_axis is None:
        planes = image.reshape(1, -1)
    else:
        axis = channel_index(channel_axis, image.ndim)
        planes = xp.moveaxis(image, axis, 0).reshape(image.shape[axis], -1)
    counts, centers = _plane_counts(xp, xp.ascontiguousarray(planes), nbins, source_range, dtype)
    if normalize:
        counts = counts / counts.sum(axis=-1, keepdims=True)
    return (counts[0] if channel_axis is None else counts), centers


def cumulative_distribution(image, nbins=256):
    """Cumulative distribution of one image, as :func:`skimage.exposure.cumulative_distribution`.

    Parameters
    ----------
    image : (M[, ...]) ndarray
        As for :func:`histogram`.
    nbins : int, optional
        Number of bins for floating images.

    Returns
    -------
    img_cdf : (B,) ndarray
        Fraction of the pixels at or below each bin: float32 for float16/float32 images, float64
        otherwise (NaN for an empty floating image, as scikit-image's ``0 / 0``).
    bin_centers : (B,) ndarray
        As returned by :func:`histogram`.

    See Also
    --------
    skimage.exposure.cumulative_distribution : reproduced exactly.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import exposure
    >>> exposure.cumulative_distribution(np.array([0, 1, 1, 3], dtype=np.uint8))[0]
    array([0.25, 0.75, 0.75, 1.  ])
    """
    xp = namespace(image)
    if is_dask(image):
        histogram(image, nbins)  # its checks and warning
        flat = as_image(image, xp).reshape(1, -1)
        return _dask_cumulative_distribution(flat, bins_for(flat, nbins), axes=(0, 1))
    counts, centers = histogram(image, nbins)
    cdf = cdf_table(xp, counts, np.dtype(image.dtype).newbyteorder("="))
    if image.size == 0:
        cdf = xp.full(cdf.shape, np.nan, cdf.dtype)
    return cdf, centers


def _as_mask(mask, image, xp):
    """scikit-image's ``np.array(mask, dtype=bool)`` used as ``image[mask]``: any dtype (nonzero
    selects), the shape of `image` or of its leading axes (then broadcast over the rest)."""
    if is_dask(image):
        mask = mask if is_dask(mask) else np.asarray(mask)
    else:
        if backend_name(mask) is None and not hasattr(mask, "__cuda_array_interface__"):
            mask = xp.asarray(mask)
        array_module(image, mask=mask)
    mask = native(mask).astype(bool, copy=False)
    if mask.ndim == 0 or mask.ndim > image.ndim or mask.shape != image.shape[:mask.ndim]:
        raise IndexError(f"`mask` of shape {tuple(mask.shape)} must have the shape of `image` "
                         f"{tuple(image.shape)} (or of its leading axes), as a boolean index")
    return mask.reshape(mask.shape + (1,) * (image.ndim - mask.ndim))


def equalize_hist(image, nbins=256, mask=None):
    """Histogram equalization of one image, as :func:`skimage.exposure.equalize_hist`.

    Parameters
    ----------
    image : (M[, ...]) ndarray
        As for :func:`histogram`; the whole image (all channels) shares one histogram.
    nbins : int, optional
        Number of bins for floating images; ignored for integer images.
    mask : (M[, ...]) array_like, optional
        Any dtype (nonzero selects), the shape of `image` or of its leading axes; only the
        selected pixels make the histogram, every pixel is remapped.

    Returns
    -------
    out : ndarray
        Shape of `image`; float32 for float16/float32 images, float64 otherwise.

    Raises
    ------
    ValueError
        NaN or infinity, bad `nbins`, an empty integer image, a mask selecting no pixel.
    IndexError
        A mask of another shape.

    See Also
    --------
    skimage.exposure.equalize_hist : reproduced to the last bit in the tests (the same bins,
        cumulative distribution and :func:`numpy.interp` arithmetic; promised to 1e-6 for float64
        and 1e-5 for float32, as :func:`gpu_histeq.equalize_hist` with ``method="skimage"``).

    Notes
    -----
    Runs :func:`gpu_histeq.equalize_hist` (``method="skimage"``) with every axis an image axis.
    Where scikit-image returns NaN (a floating image whose mask selects nothing) a ValueError
    is raised instead.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import exposure
    >>> exposure.equalize_hist(np.array([0, 1, 1, 3], dtype=np.uint8))
    array([0.25, 0.75, 0.75, 1.  ])
    """
    xp = namespace(image)
    image = as_image(image, xp)
    if mask is not None:
        mask = _as_mask(mask, image, xp)
    elif image.ndim == 3 and image.shape[-1] < 4:
        warnings.warn(_COLOR_WARNING, UserWarning, stacklevel=3)
    if image.size == 0 and image.dtype.kind != "f":
        raise ValueError("zero-size array to reduction operation minimum which has no identity")
    nbins = bins_for(image, nbins)
    shape = image.shape
    if image.ndim < 2:
        image = image.reshape(1, -1)
        mask = None if mask is None else mask.reshape(1, -1)
    out = _equalize_hist(image, nbins, axes=tuple(range(image.ndim)), mask=mask, method="skimage")
    return out.reshape(shape)


def _as_uint16(image, xp):
    """:func:`skimage.util.img_as_uint` for the dtypes :func:`gpu_histeq.equalize_adapthist`
    does not convert itself (bool, 32- and 64-bit integers), with scikit-image's arithmetic:
    values that fit 16 bits are cast without scaling, others floor-divided to 16 bits."""
    dtype = np.dtype(image.dtype)
    if dtype.kind == "b":
        return image.astype(np.uint16) * np.uint16(65535)
    if dtype.kind not in "ui" or dtype.itemsize <= 2:
        return image
    narrow = np.dtype(np.uint16 if dtype.kind == "u" else np.int16)
    if int(image.max()) < 1 << 16:  # sync: scikit-image decides on the maximum
        narrowed = image.astype(narrow)
    else:
        bits = 8 * dtype.itemsize - (dtype.kind == "i")
        narrowed = (image // dtype.type(1 << (bits - 16))).astype(narrow)
    return narrowed if dtype.kind == "u" else xp.maximum(narrowed, np.int16(0)).astype(np.uint16)


def equalize_adapthist(image, kernel_size=None, clip_limit=0.01, nbins=256):
    """CLAHE of one image, as :func:`skimage.exposure.equalize_adapthist`.

    Parameters
    ----------
    image : (M[, ...][, C]) ndarray
        NumPy or CuPy array of any dimensions; a 3-D image whose last axis has 3 or 4 entries is
        RGB or RGBA (alpha dropped), equalized through its HSV value, as scikit-image.
    kernel_size : int or sequence of int, optional
        Contextual region per image axis (numbers are truncated to int, as scikit-image).
        Default: 1/8 of each axis.
    clip_limit : float, optional
        Normalized clip limit; 0, negative or >= 1 clips nothing.
    nbins : int, optional
        Gray bins of the tile histograms.

    Returns
    -------
    out : (M[, ...][, 3]) ndarray
        float32 for float16/float32 images, float64 otherwise; values in ``[0, 1]``.

    Raises
    ------
    ValueError
        `kernel_size` of the wrong length or larger than the image, floating values outside
        ``[-1, 1]`` or not finite, an empty image.

    See Also
    --------
    skimage.exposure.equalize_adapthist : reproduced to 1e-5 (equal to the last bit in the tests).

    Notes
    -----
    Runs :func:`gpu_histeq.equalize_adapthist` with every axis an image axis (``channel_axis=-1``
    for RGB). A 1-D image is a ``(1, M)`` image with kernel ``(1, k)``. bool and 32/64-bit
    integer images are converted to uint16 as ``skimage.util.img_as_uint`` does (without its
    "Downcasting" warning). Unlike scikit-image: a `kernel_size` larger than the image is
    refused, NaN raises ValueError (scikit-image returns a result computed from it), and
    float16 is scaled in float32 (scikit-image overflows float16 and returns a constant image;
    the result equals scikit-image's for the image as float32).

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import exposure
    >>> out = exposure.equalize_adapthist(np.random.default_rng(0).random((64, 64)))
    >>> out.shape, out.dtype
    ((64, 64), dtype('float64'))
    """
    xp = namespace(image)
    if image.size == 0:
        raise ValueError("zero-size array to reduction operation minimum which has no identity")
    image = _as_uint16(native(image), xp)
    rgb = image.ndim == 3 and image.shape[-1] in (3, 4)
    spatial = image.shape[:-1] if rgb else image.shape
    if kernel_size is not None:
        if isinstance(kernel_size, numbers.Number):
            kernel_size = (kernel_size,) * len(spatial)
        elif len(kernel_size) != len(spatial):
            raise ValueError(f"Incorrect value of `kernel_size`: {kernel_size}")
        kernel_size = tuple(int(k) for k in kernel_size)
    if isinstance(clip_limit, numbers.Real) and not clip_limit > 0:
        clip_limit = 0.0  # scikit-image clips only for clip_limit > 0 (NaN and negatives: none)
    if rgb:
        return _equalize_adapthist(image[..., :3], kernel_size, clip_limit, nbins,
                                   channel_axis=-1)
    shape = image.shape
    if image.ndim == 1:
        image, kernel_size = image[None], None if kernel_size is None else (1,) + kernel_size
    return _equalize_adapthist(image, kernel_size, clip_limit, nbins,
                               axes=tuple(range(image.ndim))).reshape(shape)


def match_histograms(image, reference, *, channel_axis=None):
    """Match the histogram of one image to a reference, as
    :func:`skimage.exposure.match_histograms`.

    Parameters
    ----------
    image : ndarray
        NumPy or CuPy array, integer or floating, any number of dimensions.
    reference : ndarray
        Same number of dimensions (any size); same number of channels with `channel_axis`.
    channel_axis : int, optional
        The channel axis: each channel matched to the reference's.

    Returns
    -------
    matched : ndarray
        Shape of `image`. float64 (float32 for float16/float32 images) without `channel_axis`;
        the image's dtype with it (float16 becomes float32).

    Raises
    ------
    ValueError
        Different numbers of dimensions or channels, an empty reference, a negative reference
        value for an unsigned image, NaN or infinity (scikit-image returns a result for NaN).
    TypeError
        An unsigned image with a floating reference.

    See Also
    --------
    skimage.exposure.match_histograms : reproduced to 1e-6 (equal to the last bit in the tests).

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import exposure
    >>> exposure.match_histograms(np.array([0, 1, 2, 3], dtype=np.uint8),
    ...                           np.array([10, 10, 20, 30], dtype=np.uint8))
    array([10., 10., 20., 30.])
    """
    namespace(image, reference=reference)  # one backend
    if not hasattr(reference, "ndim") or not hasattr(reference, "dtype"):
        raise TypeError(f"`reference` must be an array, got {type(reference).__qualname__}")
    if image.ndim != reference.ndim:
        raise ValueError("Image and reference must have the same number of channels.")
    image, reference = native(image), native(reference)
    kind, ref_kind = np.dtype(image.dtype).kind, np.dtype(reference.dtype).kind
    if kind == "u" and ref_kind == "i" and reference.size:
        if int(reference.min()) < 0:  # sync: scikit-image counts the reference with bincount
            raise ValueError("`reference` must have no negative values for an unsigned `image`")
        reference = reference.astype(np.dtype(reference.dtype).str.replace("i", "u"))
    axis = None if channel_axis is None else channel_index(channel_axis, image.ndim)
    if axis is not None and image.shape[axis] != reference.shape[axis]:
        raise ValueError("Number of channels in the input image and reference image must match!")
    shape = image.shape
    if image.ndim == 1:  # the batched function takes 2 axes or more: a trailing one of length 1
        image, reference = image[:, None], reference[:, None]
    # one image (every axis but the channels an image axis), its reference of any size
    axes = tuple(a for a in range(image.ndim) if a != axis)
    return _match_histograms(image, reference, axes=axes, channel_axis=axis).reshape(shape)

