"""scikit-image's pointwise intensity functions, one image per call, on NumPy or CuPy.

:func:`rescale_intensity`, :func:`adjust_gamma`, :func:`adjust_log`, :func:`adjust_sigmoid`
and :func:`is_low_contrast` with :mod:`skimage.exposure`'s signatures, dtypes and arithmetic
(the same operations in the same order and precision, on the image's own backend). uint8
gamma correction goes through a 256-entry table and the pipeline's remap step
(:func:`gpu_histeq.lut.apply_lut`), as scikit-image uses a table.
"""

import warnings
from collections.abc import Hashable
from typing import Any

import numpy as np

from .. import lut
from .._backend import is_dask
from .._interop import adapt
from .._tables import cdf_dtype
from ..color import as_float
from ._histogram import namespace

_apply_lut = adapt(lut.apply_lut)

__all__ = ["rescale_intensity", "adjust_gamma", "adjust_log", "adjust_sigmoid",
           "is_low_contrast", "DTYPE_RANGE"]

_INTEGERS = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
_TYPE_RANGE: dict[Any, tuple[Any, Any]] = {
    bool: (False, True), np.bool_: (False, True), float: (-1, 1), np.float16: (-1, 1),
    np.float32: (-1, 1), np.float64: (-1, 1), int: (-(1 << 63), (1 << 63) - 1)}
_TYPE_RANGE.update({t: (np.iinfo(t).min, np.iinfo(t).max) for t in _INTEGERS})
_TYPE_RANGE.update({np.longlong: _TYPE_RANGE[np.int64], np.ulonglong: _TYPE_RANGE[np.uint64]})

#: Intensity ranges by type and type name, as ``skimage.exposure.exposure.DTYPE_RANGE``.
DTYPE_RANGE: dict[Any, tuple[Any, Any]] = dict(_TYPE_RANGE)
DTYPE_RANGE.update((t.__name__, limits) for t, limits in _TYPE_RANGE.items())
DTYPE_RANGE.update({"uint10": (0, 2 ** 10 - 1), "uint12": (0, 2 ** 12 - 1),
                    "uint14": (0, 2 ** 14 - 1), "bool": (False, True), "float": (-1, 1)})


def dtype_limits(image, clip_negative=False):
    """``skimage.util.dtype_limits``: the intensity range of `image`'s dtype."""
    low, high = _TYPE_RANGE[np.dtype(image.dtype).type]
    return (0 if clip_negative else low), high


def _intensity_range(xp, image, range_values, clip_negative=False):
    if isinstance(range_values, str) and range_values == "dtype":
        range_values = np.dtype(image.dtype).type
    if isinstance(range_values, str) and range_values == "image":
        return xp.min(image), xp.max(image)
    if isinstance(range_values, Hashable) and range_values in DTYPE_RANGE:
        low, high = DTYPE_RANGE[range_values]
        return (0 if clip_negative else low), high
    low, high = range_values
    return low, high


def _output_dtype(dtype_or_range, image_dtype):
    if type(dtype_or_range) in (list, tuple, np.ndarray):
        return cdf_dtype(image_dtype).type
    if type(dtype_or_range) is type:
        return dtype_or_range
    if isinstance(dtype_or_range, Hashable) and dtype_or_range in DTYPE_RANGE:
        try:
            return np.dtype(dtype_or_range).type
        except TypeError:  # uint10, uint12, uint14
            return np.uint16
    raise ValueError("Incorrect value for out_range, should be a valid image data type or a "
                     f"pair of values, got {dtype_or_range}.")


def rescale_intensity(image, in_range="image", out_range="dtype"):
    """Stretch or shrink the intensity range of one image, as
    :func:`skimage.exposure.rescale_intensity`.

    Parameters
    ----------
    image : ndarray
        NumPy or CuPy array, any shape.
    in_range, out_range : str or 2-tuple, optional
        ``"image"`` (the image's minimum and maximum), ``"dtype"``, a dtype name of
        :data:`DTYPE_RANGE` (``"uint12"`` ...), or an explicit ``(min, max)``.

    Returns
    -------
    out : ndarray
        The image's dtype, the named dtype of `out_range`, or float (float32 for float16/32
        images, float64 otherwise) for a ``(min, max)`` `out_range`.

    Raises
    ------
    ValueError
        An unknown `out_range`, an empty image with an ``"image"`` range.

    Warns
    -----
    UserWarning
        When a range is NaN (scikit-image's warning).

    See Also
    --------
    skimage.exposure.rescale_intensity : reproduced exactly (the same float64 arithmetic).

    Notes
    -----
    The ``"image"`` range is read back to the host (one synchronization on CuPy, one computation
    on Dask), as scikit-image turns it into Python floats.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import exposure
    >>> exposure.rescale_intensity(np.array([51, 102, 153], dtype=np.uint8))
    array([  0, 127, 255], dtype=uint8)
    """
    xp = namespace(image)
    if isinstance(out_range, str) and out_range in ("dtype", "image"):
        out_dtype = np.dtype(image.dtype).type
    else:
        out_dtype = _output_dtype(out_range, image.dtype)
    imin, imax = map(float, _intensity_range(xp, image, in_range))  # sync: host floats
    omin, omax = map(float, _intensity_range(xp, image, out_range, clip_negative=imin >= 0))
    if np.isnan([imin, imax, omin, omax]).any():
        warnings.warn("One or more intensity levels are NaN. Rescaling will broadcast NaN to the "
                      "full image. Provide intensity levels yourself to avoid this. E.g. with "
                      "np.nanmin(image), np.nanmax(image).", UserWarning, stacklevel=3)
    image = xp.clip(image, imin, imax)
    if imin != imax:
        image = (image - imin) / (imax - imin)
        return (image * (omax - omin) + omin).astype(out_dtype)
    return xp.clip(image, omin, omax).astype(out_dtype)


def _check_non_negative(xp, image):
    if bool(xp.any(image < 0)):  # sync: scikit-image refuses negative images
        raise ValueError("Image Correction methods work correctly only on images with "
                         "non-negative values. Use skimage.exposure.rescale_intensity.")


def _correct(image, curve, gain=1):
    """scikit-image's correction recipe: refuse negative pixels, scale the dtype's range to
    [0, 1], ``curve(xp, unit) * scale * gain`` in that order, cast back to the image's dtype."""
    xp = namespace(image)
    _check_non_negative(xp, image)
    low, high = dtype_limits(image, clip_negative=True)
    scale = float(high - low)
    return (curve(xp, image / scale) * scale * gain).astype(np.dtype(image.dtype).type)


def adjust_gamma(image, gamma=1, gain=1):
    """Gamma correction of one image, as :func:`skimage.exposure.adjust_gamma`.

    Parameters
    ----------
    image : ndarray
        Non-negative values; NumPy or CuPy.
    gamma : float, optional
        Non-negative exponent.
    gain : float, optional
        Constant multiplier.

    Returns
    -------
    out : ndarray
        The image's dtype: ``image ** gamma`` after scaling the dtype's range to [0, 1], scaled
        back and multiplied by `gain`.

    Raises
    ------
    ValueError
        A negative `gamma` or a negative pixel (for dtypes other than uint8).

    See Also
    --------
    skimage.exposure.adjust_gamma : reproduced exactly.

    Notes
    -----
    uint8 images go through scikit-image's 256-entry table, built on the host and applied by
    the remap step (:func:`gpu_histeq.lut.apply_lut`, CUDA kernels on CuPy).

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import exposure
    >>> exposure.adjust_gamma(np.array([0, 64, 128, 255], dtype=np.uint8), 2)
    array([  0,  16,  64, 255], dtype=uint8)
    """
    if gamma < 0:
        raise ValueError("Gamma should be a non-negative real number.")
    xp = namespace(image)
    dtype = np.dtype(image.dtype).type
    if dtype is np.uint8:
        table = 255 * gain * (np.linspace(0, 1, 256) ** gamma)
        table = np.minimum(np.rint(table), 255).astype(np.uint8)
        planes = image.reshape(1, -1)
        table = table if is_dask(image) else xp.asarray(table)
        return _apply_lut(planes, table, axes=(0, 1)).reshape(image.shape)
    return _correct(image, lambda xp, unit: unit ** gamma, gain)


def adjust_log(image, gain=1, inv=False):
    """Logarithmic correction of one image, as :func:`skimage.exposure.adjust_log`.

    ``gain * log2(1 + I)`` of the image scaled to [0, 1] (``gain * (2 ** I - 1)`` with `inv`),
    scaled back to the dtype's range; the image's dtype. ValueError for a negative pixel.

    See Also
    --------
    skimage.exposure.adjust_log : reproduced exactly.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import exposure
    >>> exposure.adjust_log(np.array([0, 64, 255], dtype=np.uint8))
    array([  0,  82, 255], dtype=uint8)
    """
    if inv:
        return _correct(image, lambda xp, unit: 2 ** unit - 1, gain)
    return _correct(image, lambda xp, unit: xp.log2(1 + unit), gain)


def adjust_sigmoid(image, cutoff=0.5, gain=10, inv=False):
    """Sigmoid correction of one image, as :func:`skimage.exposure.adjust_sigmoid`.

    ``1 / (1 + exp(gain * (cutoff - I)))`` of the image scaled to [0, 1] (one minus it with
    `inv`), scaled back to the dtype's range; the image's dtype. ValueError for a negative pixel.

    See Also
    --------
    skimage.exposure.adjust_sigmoid : reproduced exactly.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import exposure
    >>> exposure.adjust_sigmoid(np.array([0, 128, 255], dtype=np.uint8))
    array([  1, 128, 253], dtype=uint8)
    """
    def curve(xp, unit):
        sigmoid = 1 / (1 + xp.exp(gain * (cutoff - unit)))
        return 1 - sigmoid if inv else sigmoid

    return _correct(image, curve)


def is_low_contrast(image, fraction_threshold=0.05, lower_percentile=1, upper_percentile=99,
                    method="linear"):
    """Whether one image is low contrast, as :func:`skimage.exposure.is_low_contrast`.

    Parameters
    ----------
    image : array_like
        NumPy or CuPy array (a sequence is taken as NumPy). A 3-D image with a last axis of 3
        (RGB) or 4 (RGBA, blended on white) is converted to gray first, as scikit-image.
    fraction_threshold : float, optional
        Low contrast when the percentile range spans less than this fraction of the dtype's range.
    lower_percentile, upper_percentile : float, optional
        The percentiles (linear interpolation) that bound the range.
    method : str, optional
        ``"linear"``, the only method (not checked, as scikit-image).

    Returns
    -------
    out : numpy boolean scalar (``numpy.bool_``)
        On the host for every backend (one synchronization on CuPy). For bool images: False only
        when both values occur.

    See Also
    --------
    skimage.exposure.is_low_contrast : reproduced exactly.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import exposure
    >>> bool(exposure.is_low_contrast(np.linspace(0, 0.04, 100)))
    True
    """
    if not hasattr(image, "dtype") or not hasattr(image, "ndim"):
        image = np.asanyarray(image)
    if is_dask(image):
        image = image.compute()  # exact percentiles of the whole image
    xp = namespace(image)
    if np.dtype(image.dtype) == np.bool_:
        return not (bool(image.max() == 1) and bool(image.min() == 0))  # sync: a host answer
    if image.ndim == 3 and image.shape[2] in (3, 4):
        rgb = as_float(xp, image)
        if image.shape[2] == 4:  # rgba2rgb on a white background
            alpha = rgb[..., 3:4]
            rgb = xp.clip((1 - alpha) * xp.ones(3, rgb.dtype) + alpha * rgb[..., :3], 0, 1)
        image = xp.matmul(rgb, xp.asarray([0.2125, 0.7154, 0.0721], dtype=rgb.dtype))
    low, high = dtype_limits(image)
    limits = xp.percentile(image, xp.asarray([lower_percentile, upper_percentile]))
    ratio = (limits[1] - limits[0]) / (high - low)
    return np.bool_(bool(ratio < fraction_threshold))  # sync: a host answer
