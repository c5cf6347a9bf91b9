"""Histogram equalization of many image planes in one call.

The pipeline, shared by every method: per-plane histograms (``bincount`` over the offset index
``bin + nbins * plane``) -> per-plane tables -> gather. Blocks of whole planes are counted and
remapped with the same index in one pass; planes larger than a block are counted in a first pass
and remapped in a second. :mod:`gpu_histeq._engine` runs each step (or all of them fused) on the
engine that fits the input.
"""

import numpy as np

from . import _engine, _planes
from ._backend import array_module
from ._binning import binning_for
from ._tables import cdf_dtype, table_maker
from ._validate import (check_channel_axis, check_images, check_levels_nbins, check_luminance,
                        check_mask, check_mask_selects, check_nbins, check_out, normalize_axes,
                        resolve_method)
from .color import from_ycrcb, to_ycrcb

__all__ = ["equalize_hist"]


def equalize_planes(xp, planes, mask_planes, method, nbins, result):
    """Equalize every row of a ``(P, N)`` array into `result` (same shape, the method's dtype).

    `nbins` is the dtype's levels for ``"opencv"`` / ``"pil"``. A fused engine takes the whole
    pipeline where it has one; otherwise the steps run block by block (the portable path, or
    the compiled count and remap).
    """
    nplanes, npixels = planes.shape
    if nplanes == 0 or npixels == 0:
        return
    if _engine.equalize(xp, planes, mask_planes, method, nbins, result):
        return
    level_indexed = method in ("opencv", "pil")
    block_list = _planes.blocks(xp, nplanes, npixels, nbins)
    binning = binning_for(xp, planes, mask_planes, nbins, level_indexed, block_list)
    block_list = _planes.blocks(xp, nplanes, npixels, binning.nbins)
    tables_of = table_maker(xp, method, binning, planes.dtype, nplanes)

    if _planes.whole_planes(block_list, npixels):  # one pass: count, tables, remap per block
        def remap(block):
            counts, state = _engine.count_block(xp, planes, mask_planes, binning, block)
            tables = tables_of(counts, block[0])
            _engine.remap_block(xp, planes, binning, tables, result, block, state)
    else:  # planes larger than a block: count them all, then remap
        all_tables = tables_of(
            _engine.histograms(xp, planes, mask_planes, binning, block_list), slice(None))

        def remap(block):
            _engine.remap_block(xp, planes, binning, all_tables[block[0]], result, block)

    _planes.map_blocks(xp, remap, block_list)


def _equalize(xp, images, nbins, axes, mask, method, out, result_dtype):
    """Equalize validated `images` (mask already broadcast) into a new array or `out`."""
    planes, batch_shape, image_shape = _planes.to_planes(xp, images, axes)
    mask_planes = None if mask is None else _planes.to_planes(xp, mask, axes)[0]
    check_mask_selects(xp, mask_planes)
    result = None if out is None else _planes.writable_planes(xp, out, axes)
    writes_through = result is not None
    if result is None:
        result = xp.empty(planes.shape, result_dtype)
    equalize_planes(xp, planes, mask_planes, method, nbins, result)
    if writes_through:
        return out
    shaped = _planes.from_planes(xp, result, batch_shape, image_shape, axes)
    if out is None:
        return shaped
    out[...] = shaped
    return out


def _equalize_luminance(xp, images, nbins, axes, mask, method, channel_axis, out):
    """Equalize the luma of RGB `images` (channels along `channel_axis`) with `method`:
    RGB -> YCrCb (OpenCV's conversion), equalize Y, back to RGB."""
    dtype = np.dtype(images.dtype)
    red, green, blue = (xp.take(images, c, axis=channel_axis) for c in range(3))
    luma, chroma_red, chroma_blue = to_ycrcb(xp, red, green, blue, dtype)
    # the channel axis is gone from the planes; image axes after it move down by one
    luma_axes = tuple(a - (a > channel_axis) for a in axes)
    luma_mask = None if mask is None else mask.all(axis=channel_axis)
    luma = luma.astype(dtype)
    equalized = _equalize(xp, luma, nbins, luma_axes, luma_mask, method, None,
                          dtype if method in ("opencv", "pil") else cdf_dtype(dtype))
    if method == "skimage" and dtype.kind == "u":  # cdf in (0, 1] back to the integer range
        equalized = xp.rint(equalized * np.iinfo(dtype).max)
    channels = from_ycrcb(xp, equalized, chroma_red, chroma_blue, dtype)
    result = xp.stack(channels, axis=channel_axis)
    if out is None:
        return result.astype(dtype, copy=False)
    out[...] = result
    return out


def equalize_hist(images, nbins=256, *, axes=(-2, -1), mask=None, method=None,
                  channel_axis=None, luminance=False, out=None):
    """Equalize the histogram of every image in a batch with one call.

    Parameters
    ----------
    images : (..., H, W) ndarray
        NumPy or CuPy array; the result is on the same backend and device.
    nbins : int, optional
        Bins for ``method="skimage"`` on floating images. For ``"opencv"`` and ``"pil"`` the bins
        are the dtype's levels (256 for uint8, 65536 for uint16): `nbins` must be the default 256
        or that number. Integer images with ``"skimage"`` get one bin per level, as scikit-image.
    axes : tuple of int, optional
        The axes that form one image; every other axis is a batch axis with its own histogram.
        ``(1, 2)`` equalizes each channel of an NHWC batch; all axes give one table for the
        whole dataset.
    mask : ndarray of bool, optional
        Broadcastable to `images`. Histograms count the selected pixels only; every pixel is
        remapped. Each plane must have at least one selected pixel.
    method : {None, "opencv", "pil", "skimage"}, optional
        Whose numbers to reproduce. None picks ``"opencv"`` for uint8/uint16 and ``"skimage"``
        for every other dtype.
    channel_axis : int, optional
        The axis of color channels. Without `luminance` it is one more batch axis (each channel
        equalized on its own); it must not be in `axes`.
    luminance : bool, optional
        Equalize the luma of RGB images (`channel_axis` of length 3) and keep their chroma,
        through OpenCV's YCrCb conversion.
    out : ndarray, optional
        Preallocated result: shape of `images`, the result dtype, same backend.

    Returns
    -------
    out : ndarray
        Shape of `images`. dtype of `images` for ``"opencv"`` and ``"pil"``; for ``"skimage"``
        float32 for float16/float32 input and float64 otherwise (scikit-image's rule), with
        values in ``(0, 1]``.

    Raises
    ------
    TypeError
        Unsupported dtype, a method that does not fit the dtype, arrays on different backends.
    ValueError
        Fewer than 2 dimensions, bad `nbins` or `axes`, NaN or infinity in floating input, a mask
        of the wrong shape or selecting no pixel of a plane, `out` of the wrong shape.

    See Also
    --------
    cv2.equalizeHist, PIL.ImageOps.equalize, skimage.exposure.equalize_hist,
    torchvision.transforms.v2.functional.equalize

    Notes
    -----
    ``"opencv"`` is bit-exact with :func:`cv2.equalizeHist` on every uint8 plane (its float32
    scale and round-half-to-even included); uint16 uses the same formula over 65536 levels.
    ``"pil"`` is bit-exact with :func:`PIL.ImageOps.equalize` (and so torchvision's
    ``equalize``). ``"skimage"`` matches :func:`skimage.exposure.equalize_hist` per plane: the same
    bins and cumulative distribution, and :func:`numpy.interp`'s arithmetic.

    Peak extra memory is one block's index (``CHUNK_PIXELS`` int64 per worker thread, 4 MiB on
    the CPU) plus the tables (``P x bins``), plus one copy of `images` when its image axes are not
    its last, C-contiguous axes. On CuPy, floating input synchronizes once for the NaN check and
    integer ``"skimage"`` input once for the table width.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import equalize_hist
    >>> faces = np.random.default_rng(0).integers(60, 120, (1800, 1, 96, 96), dtype=np.uint8)
    >>> equalized = equalize_hist(faces)
    >>> equalized.shape, equalized.dtype, int(equalized.min()), int(equalized.max())
    ((1800, 1, 96, 96), dtype('uint8'), 0, 255)
    """
    xp = array_module(images, mask=mask, out=out)
    check_images(images, xp)
    nbins = check_nbins(nbins)
    method = resolve_method(method, images.dtype)
    if method in ("opencv", "pil"):
        nbins = check_levels_nbins(nbins, images.dtype, method)
    axes = normalize_axes(axes, images.ndim)
    channel_axis = check_channel_axis(channel_axis, axes, images.ndim)
    result_dtype = images.dtype if method in ("opencv", "pil") else cdf_dtype(images.dtype)
    check_out(out, images.shape, result_dtype, xp)
    if not isinstance(luminance, (bool, np.bool_)):
        raise TypeError(f"`luminance` must be a bool, got {luminance!r}")
    mask = check_mask(mask, images, xp)
    if luminance:
        check_luminance(images.shape, images.dtype, channel_axis, method)
        return _equalize_luminance(xp, images, nbins, axes, mask, method, channel_axis, out)
    return _equalize(xp, images, nbins, axes, mask, method, out, result_dtype)
