"""Histogram equalization of many image planes in one call.

The pipeline, shared by every method: offset index per pixel -> per-plane histograms by
``bincount`` -> per-plane tables -> gather. Blocks of whole planes are counted and remapped with
the same index in one pass; planes larger than a block are counted in a first pass and remapped
in a second.
"""

import numpy as np

from . import _cpu, _interop, _planes
from ._backend import array_module, is_cupy
from ._validate import (check_images, check_levels_nbins, check_mask, check_nbins, check_out,
                        normalize_axes, resolve_method)
from .histogram import (binning_for, block_counts, cdf_dtype, cdf_table, check_edges_increase,
                        check_finite, check_mask_selects, count_block)
from .lut import InterpTable, gather

__all__ = ["equalize_hist"]


def opencv_lut(xp, counts, dtype):
    """``(P, L)`` table of :func:`cv2.equalizeHist` from ``(P, L)`` level counts.

    ``lut[v] = round_half_even(float32(cum[v] - cum[first]) * float32((L - 1) / (total - h[first])))``
    where ``first`` is the lowest level present; a plane with a single level is left unchanged.
    """
    levels = counts.shape[1]
    cumulative = xp.cumsum(counts, axis=1)
    first = xp.argmax(counts > 0, axis=1)[:, None]
    first_count = xp.take_along_axis(counts, first, axis=1)
    spread = cumulative[:, -1:] - first_count
    scale = np.float32(levels - 1) / xp.maximum(spread, 1).astype(np.float32)
    lut = xp.rint((cumulative - first_count).astype(np.float32) * scale)
    lut = xp.clip(lut, 0, levels - 1).astype(dtype)
    return xp.where(spread == 0, xp.arange(levels, dtype=dtype), lut)


def pil_lut(xp, counts):
    """``(P, 256)`` table of :func:`PIL.ImageOps.equalize` from ``(P, 256)`` level counts.

    ``step = (total - h[last]) // 255`` and ``lut[v] = (step // 2 + cum[v - 1]) // step`` clipped
    to 255; a plane with one level, or ``step == 0``, is left unchanged.
    """
    present = counts > 0
    last = counts.shape[1] - 1 - xp.argmax(present[:, ::-1], axis=1)[:, None]
    step = (counts.sum(axis=1, keepdims=True) - xp.take_along_axis(counts, last, axis=1)) // 255
    below = xp.cumsum(counts, axis=1) - counts
    lut = xp.clip((step // 2 + below) // xp.maximum(step, 1), 0, 255).astype(np.uint8)
    unchanged = (present.sum(axis=1, keepdims=True) <= 1) | (step == 0)
    return xp.where(unchanged, xp.arange(256, dtype=np.uint8), lut)


def table_maker(xp, method, binning, dtype, nplanes):
    """Return ``tables(counts, rows)``: the remap tables of planes `rows` from their counts."""
    if method == "opencv":
        return lambda counts, rows: opencv_lut(xp, counts, dtype)
    if method == "pil":
        return lambda counts, rows: pil_lut(xp, counts)
    if np.dtype(dtype).kind == "f":
        return lambda counts, rows: InterpTable(
            xp, cdf_table(xp, counts, dtype), binning.centers(rows, nplanes))
    # integer skimage: one bin per level, each value lands exactly on its bin center
    return lambda counts, rows: cdf_table(xp, counts, dtype)


def remap_block(xp, planes, binning, tables, result, block, index=None, offsets=None):
    """Remap block ``(rows, cols)`` of `planes` into `result` through its planes' `tables`.

    `index` and `offsets` are the block's offset index from the histogram step when it was just
    counted (on the compiled path: its interpolation segments for floats, None for levels);
    without them the block is binned here.
    """
    rows, cols = block
    values, target = planes[rows, cols], result[rows, cols]
    if _cpu.covers(xp, binning, planes.dtype):
        _cpu.remap(values, binning, rows, tables, target, index)
        return
    if index is None:
        offsets = _planes.plane_offsets(xp, rows.stop - rows.start, binning.nbins)
        index = binning.index(values, rows, offsets)
    gather(xp, tables, index, values, offsets, target)


def equalize_planes(xp, planes, mask_planes, method, nbins, result):
    """Equalize every row of a ``(P, N)`` array into `result` (same shape, the method's dtype).

    This is the portable path (NumPy or CuPy): the CuPy kernels are checked against it.
    """
    nplanes, npixels = planes.shape
    if nplanes == 0 or npixels == 0:
        return
    level_indexed = method in ("opencv", "pil")
    if level_indexed:
        nbins = check_levels_nbins(nbins, planes.dtype, method)
    block_list = _planes.blocks(xp, nplanes, npixels, nbins)
    # compiled, plane by plane; planes larger than a block go there too when every thread gets
    # one, except uint8: counting and remapping one plane's blocks on every thread measured faster
    if _cpu.equalizes(xp, planes.dtype, method, nbins) and (
            _planes.whole_planes(block_list, npixels)
            or (planes.dtype != np.uint8 and nplanes >= _planes.thread_count())):
        _planes.map_blocks(xp, lambda block: _equalize_compiled(
            planes, mask_planes, method, nbins, result, block),
            _planes.plane_blocks(xp, nplanes, npixels, 1))
        return
    binning = binning_for(xp, planes, mask_planes, nbins, level_indexed, block_list)
    block_list = _planes.blocks(xp, nplanes, npixels, binning.nbins)
    tables_of = table_maker(xp, method, binning, planes.dtype, nplanes)

    if _planes.whole_planes(block_list, npixels):  # one pass: count, tables, remap per block
        def remap(block):
            counts, index, offsets = count_block(xp, planes, mask_planes, binning, block)
            tables = tables_of(counts, block[0])
            remap_block(xp, planes, binning, tables, result, block, index, offsets)
    else:  # planes larger than a block: count them all, then remap
        all_tables = tables_of(block_counts(xp, planes, mask_planes, binning, block_list),
                               slice(None))

        def remap(block):
            remap_block(xp, planes, binning, all_tables[block[0]], result, block)

    _planes.map_blocks(xp, remap, block_list)


def _equalize_compiled(planes, mask_planes, method, nbins, result, block):
    """The compiled CPU path: every step of the pipeline, plane by plane, for one block."""
    rows, cols = block
    selected = None if mask_planes is None else mask_planes[rows, cols]
    status = _cpu.equalize(planes[rows, cols], selected, method, nbins, result[rows, cols])
    check_finite(status != _cpu.NOT_FINITE)
    check_edges_increase(status != _cpu.REPEATED_EDGES, nbins, planes.dtype)


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
    if _interop.handles(images):  # dask arrays, torch tensors, JAX arrays
        return _interop.call("equalize_hist", images, nbins, axes=axes, mask=mask, method=method,
                              channel_axis=channel_axis, luminance=luminance, out=out)
    xp = array_module(images, mask=mask, out=out)
    check_images(images, xp)
    nbins = check_nbins(nbins)
    method = resolve_method(method, images.dtype)
    axes = normalize_axes(axes, images.ndim)
    if channel_axis is not None:
        (channel_axis,) = normalize_axes(channel_axis, images.ndim, "channel_axis")
        if channel_axis in axes:
            raise ValueError(f"`channel_axis` {channel_axis} must not be one of the image `axes` {axes}")
    result_dtype = images.dtype if method in ("opencv", "pil") else cdf_dtype(images.dtype)
    check_out(out, images.shape, result_dtype, xp)
    if not isinstance(luminance, (bool, np.bool_)):
        raise TypeError(f"`luminance` must be a bool, got {luminance!r}")
    if luminance:
        from .color import equalize_luminance
        return equalize_luminance(xp, images, nbins, axes, mask, method, channel_axis, out)
    mask = check_mask(mask, images, xp)

    planes, batch_shape, image_shape = _planes.to_planes(xp, images, axes)
    mask_planes = None if mask is None else _planes.to_planes(xp, mask, axes)[0]
    check_mask_selects(xp, mask_planes)
    result = None if out is None else _planes.writable_planes(xp, out, axes)
    writes_through = result is not None
    if result is None:
        result = xp.empty(planes.shape, result_dtype)
    if not (is_cupy(xp) and _cuda_equalize(planes, mask_planes, method, nbins, result)):
        equalize_planes(xp, planes, mask_planes, method, nbins, result)
    if writes_through:
        return out
    shaped = _planes.from_planes(xp, result, batch_shape, image_shape, axes)
    if out is None:
        return shaped
    out[...] = shaped
    return out


def _cuda_equalize(planes, mask_planes, method, nbins, result):
    """Run the fused CUDA kernels when they cover this case; False leaves it to the portable path."""
    from . import _cuda
    return _cuda.equalize(planes, mask_planes, method, nbins, result)
