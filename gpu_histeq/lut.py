"""The remap step as a public function: every pixel gathers its new value from its own plane's
table (or one table shared by every plane), on the device that holds the data."""

from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

from . import _engine, _planes
from ._backend import array_module
from ._validate import check_images, check_lut_inputs, check_lut_shape, image_axes, native
from ._typing import Array, ArrayList, Axes, Scalar

__all__ = ["apply_lut"]


@overload
def apply_lut(
        images: Array, lut: NDArray[Scalar], *,
        axes: Axes = ..., channel_axis: int | None = ...) -> NDArray[Scalar]: ...


@overload
def apply_lut(
        images: ArrayList, lut: Any, *,
        axes: Axes = ..., channel_axis: int | None = ...) -> list[Array]: ...


@overload
def apply_lut(
        images: Any, lut: Any, *,
        axes: Axes = ..., channel_axis: int | None = ...) -> Any: ...


def apply_lut(
        images: Any, lut: Any, *,
        axes: Axes = None, channel_axis: int | None = None) -> Any:
    """Map every pixel through its plane's lookup table (or one table shared by all planes).

    Parameters
    ----------
    images : (..., H, W) integer ndarray
        NumPy or CuPy array of non-negative integers, each below the table length ``L``.
    lut : (L,) or (batch..., L) ndarray
        One table for every plane, or one per plane with the batch shape of `images` (the shape
        of every axis not in `axes`, in order). Same backend as `images`.
    axes : tuple of int, optional
        The axes of one image. None (the default) means ``(-2, -1)``, or with `channel_axis`
        the two trailing axes other than it.
    channel_axis : int, optional
        The axis of colour channels, as in scikit-image: a batch axis, so a per-plane `lut`
        has a table per channel.

    Returns
    -------
    out : ndarray
        Shape of `images`, dtype of `lut` (native byte order):
        ``out[..., y, x] = lut[..., images[..., y, x]]``.

    Raises
    ------
    TypeError
        If `images` is not an integer array, `lut` is on another backend, or either is a
        :class:`numpy.ma.MaskedArray`.
    ValueError
        If `lut` has the wrong shape or a pixel is outside ``[0, L)``.

    See Also
    --------
    cv2.LUT : the single-image, single-table equivalent.

    Notes
    -----
    On CuPy the call does not synchronize when every value of the dtype indexes the table
    (uint8 with ``L >= 256``, uint16 with ``L >= 65536``); otherwise it reads the images'
    minimum and maximum once (one synchronization) to refuse values outside the table.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import apply_lut
    >>> images = np.array([[[0, 1]], [[1, 2]]], dtype=np.uint8)
    >>> apply_lut(images, np.array([[10, 11, 12], [20, 21, 22]]))
    array([[[10, 11]],
    <BLANKLINE>
           [[21, 22]]])
    """
    xp = array_module(images, lut=lut)
    check_images(images, xp)
    check_lut_inputs(images, lut)
    images, lut = native(images), native(lut)
    axes, _ = image_axes(axes, channel_axis, images.shape)
    planes, batch_shape, image_shape = _planes.to_planes(xp, images, axes)
    check_lut_shape(lut, batch_shape, images.shape, axes)
    length = lut.shape[-1]
    result = xp.empty(planes.shape, lut.dtype)
    if planes.size and not _dtype_fits(planes.dtype, length):
        # sync: a value outside the table is an error (one read of both ends)
        low, high = xp.stack([planes.min(), planes.max()]).tolist()
        if low < 0 or high >= length:
            raise ValueError(f"`images` values must lie in [0, {length}) to index `lut`, "
                             f"got values in [{low}, {high}]")
    _engine.apply_tables(xp, planes, xp.ascontiguousarray(lut.reshape(-1, length)), result)
    return _planes.from_planes(xp, result, batch_shape, image_shape, axes)


def _dtype_fits(dtype, length):
    """True when every value of `dtype` indexes a table of `length` entries (no check needed)."""
    info = np.iinfo(dtype)
    return info.min >= 0 and info.max < length
