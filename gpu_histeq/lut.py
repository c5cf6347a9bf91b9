"""The remap step: every pixel gathers its new value from its own plane's table.

Tables are ``(planes, bins)`` arrays indexed by the same offset index the histogram step counts
(``bin + bins * plane``), so the remap is one ``take`` on the device that holds the data.
"""

import numpy as np

from . import _interop, _planes
from ._backend import array_module, is_cupy
from ._validate import check_images, check_lut_inputs, normalize_axes

__all__ = ["apply_lut"]


class InterpTable:
    """Per-plane piecewise-linear table: :func:`numpy.interp` through ``(centers, cdf)``.

    Parameters
    ----------
    cdf : (P, B) float ndarray
        Value at each bin center.
    centers : (P, B) float ndarray
        Bin centers, increasing along each row.
    """

    def __init__(self, xp, cdf, centers):
        self.cdf, self.centers = cdf, centers
        values = cdf.astype(np.float64)
        positions = centers.astype(np.float64)
        slopes = xp.zeros_like(values)
        # numpy.interp's slope between neighbouring points; 0 past the last one
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            spacing = positions[:, 1:] - positions[:, :-1]
            slopes[:, :-1] = (values[:, 1:] - values[:, :-1]) / spacing
        self.values, self.positions, self.slopes = values, positions, slopes
        # (P,) bool: planes whose bins a few subnormal units wide may put a value more than one
        # bin from its histogram bin, or whose slopes are not finite (repeated centers):
        # :func:`gather` runs numpy.interp itself there
        tiny = np.finfo(centers.dtype).smallest_normal
        self.irregular = ((spacing < 2 * tiny) | ~xp.isfinite(slopes[:, :-1])).any(axis=1)

    def __getitem__(self, rows):
        table = object.__new__(InterpTable)
        for name in ("cdf", "centers", "values", "positions", "slopes", "irregular"):
            setattr(table, name, getattr(self, name)[rows])
        return table


def gather(xp, table, index, values, offsets, out):
    """Write each pixel's table entry into `out`.

    Parameters
    ----------
    table : (n, B) ndarray or InterpTable
        Tables of the block's planes.
    index : (n, m) intp ndarray
        ``bin + B * plane`` of each pixel, as counted by the histogram step.
    values : (n, m) ndarray
        The pixels themselves (used by :class:`InterpTable` only).
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


def apply_lut(images, lut, *, axes=(-2, -1)):
    """Map every pixel through its plane's lookup table (or one table shared by all planes).

    Parameters
    ----------
    images : (..., H, W) integer ndarray
        NumPy or CuPy array of non-negative integers, each below the table length ``L``.
    lut : (L,) or (batch..., L) ndarray
        One table for every plane, or one per plane with the batch shape of `images` (the shape
        of every axis not in `axes`, in order). Same backend as `images`.
    axes : tuple of int, optional
        The axes of one image.

    Returns
    -------
    out : ndarray
        Shape of `images`, dtype of `lut`: ``out[..., y, x] = lut[..., images[..., y, x]]``.

    Raises
    ------
    TypeError
        If `images` is not an integer array or `lut` is on another backend.
    ValueError
        If `lut` has the wrong shape or a pixel is outside ``[0, L)``.

    See Also
    --------
    cv2.LUT : the single-image, single-table equivalent.

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
    if _interop.handles(images):  # dask arrays, torch tensors, JAX arrays
        return _interop.call("apply_lut", images, lut, axes=axes)
    xp = array_module(images, lut=lut)
    check_images(images, xp)
    check_lut_inputs(images, lut)
    axes = normalize_axes(axes, images.ndim)
    planes, batch_shape, image_shape = _planes.to_planes(xp, images, axes)
    length = lut.shape[-1]
    if lut.ndim > 1 and lut.shape[:-1] != tuple(batch_shape):
        raise ValueError(
            f"`lut` must have shape (L,) or {tuple(batch_shape) + ('L',)} for `images` of shape "
            f"{images.shape} with axes {axes}, got {lut.shape}"
        )
    result = xp.empty(planes.shape, lut.dtype)
    if planes.size:
        low, high = int(planes.min()), int(planes.max())  # sync: an index outside the table is an error
        if low < 0 or high >= length:
            raise ValueError(f"`images` values must lie in [0, {length}) to index `lut`, "
                             f"got values in [{low}, {high}]")
    tables = xp.ascontiguousarray(lut.reshape(-1, length))
    if is_cupy(xp):  # fused CUDA remap, when it covers these dtypes
        from ._cuda import apply_lut as cuda_apply_lut
        if cuda_apply_lut(planes, tables, result):
            return _planes.from_planes(xp, result, batch_shape, image_shape, axes)
    shared = tables.shape[0] == 1
    block_list = _planes.blocks(xp, planes.shape[0], planes.shape[1], length)

    def remap(block):
        rows, cols = block
        count = rows.stop - rows.start
        offsets = xp.zeros((count, 1), np.intp) if shared else _planes.plane_offsets(xp, count, length)
        index = xp.add(planes[rows, cols], offsets, dtype=np.intp)
        gather(xp, tables if shared else tables[rows], index, None, offsets, result[rows, cols])

    _planes.map_blocks(xp, remap, block_list)
    return _planes.from_planes(xp, result, batch_shape, image_shape, axes)
