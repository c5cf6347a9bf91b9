"""Contrast limited adaptive histogram equalization (CLAHE) of many image planes in one call.

The pipeline of :mod:`gpu_histeq.equalize` with tiles: each pixel of the tiled (padded) image
gets the offset index ``value + nbins * (plane * ntiles + tile)``, one ``bincount`` of a block
counts every tile of every plane, the histograms of all tiles are clipped and turned into tables
at once (arrays of shape ``(planes, tiles, nbins)``, no loop over tiles or planes), and each
pixel blends the tables of its neighbouring tiles: one gather per neighbour, then weights.

Two peers are reproduced:

* :func:`clahe` -- OpenCV's ``cv2.createCLAHE(clipLimit, tileGridSize).apply`` (uint8, uint16);
* :func:`equalize_adapthist` -- :func:`skimage.exposure.equalize_adapthist` (any number of
  image axes).
"""

import functools
import itertools
import math
from collections.abc import Sequence
from typing import Any, overload

import numpy as np

from . import _engine, _planes
from ._backend import array_module
from ._tables import cdf_dtype, clahe_opencv_tables, clahe_skimage_clip
from ._validate import (check_allocation, check_clip_limit,
                        check_images, check_int_sequence, check_luminance,
                        check_luminance_order, check_nbins, check_unit_range,
                        image_axes, native, plane_count)
from .color import as_float, hsv_to_rgb, rgb_to_hsv
from .equalize import luma_path
from ._tiles import blend_weights, count_tiles, offsets_for, reflect101, tiled_source
from ._typing import Array, Axes, Luminance, UInt8, UInt16

__all__ = ["clahe", "equalize_adapthist"]

#: scikit-image's working range: images are rescaled to ``[0, NR_OF_GRAY - 1]`` first.
NR_OF_GRAY = 2 ** 14


def _check_tables(xp, param, value, nplanes, ntiles, nbins, tiled_pixels):
    """The memory of the tile tables (int64 counts and their tables, per plane on every thread)
    and of the tiled image's index arrays, checked before allocating."""
    in_flight = 1 if nplanes <= 1 else min(nplanes, _planes.thread_count())
    check_allocation(param, value, 24 * ntiles * nbins * in_flight + 16 * tiled_pixels, xp)


# ---------------------------------------------------------------------------------------------
# OpenCV


@overload
def clahe(
        images: UInt8, clip_limit: float = ..., tile_grid: Sequence[int] = ..., *,
        axes: Axes = ..., channel_axis: int | None = ..., luminance: Luminance = ...) -> UInt8: ...


@overload
def clahe(
        images: UInt16, clip_limit: float = ..., tile_grid: Sequence[int] = ..., *,
        axes: Axes = ..., channel_axis: int | None = ..., luminance: Luminance = ...) -> UInt16: ...


@overload
def clahe(
        images: Array, clip_limit: float = ..., tile_grid: Sequence[int] = ..., *,
        axes: Axes = ..., channel_axis: int | None = ..., luminance: Luminance = ...) -> Array: ...


@overload
def clahe(
        images: Any, clip_limit: float = ..., tile_grid: Sequence[int] = ..., *,
        axes: Axes = ..., channel_axis: int | None = ..., luminance: Luminance = ...) -> Any: ...


def clahe(
        images: Any, clip_limit: float = 40.0, tile_grid: Sequence[int] = (8, 8), *,
        axes: Any = None, channel_axis: int | None = None, luminance: Luminance = False) -> Any:
    """Contrast limited adaptive histogram equalization of every image, as OpenCV does it.

    Parameters
    ----------
    images : (..., H, W) uint8 or uint16 ndarray
        NumPy or CuPy array. The two `axes` form one image; every other axis is a batch axis.
    clip_limit : float, optional
        OpenCV's ``clipLimit``: each tile histogram is capped at
        ``max(int(clip_limit * tile_pixels / levels), 1)`` counts (``levels`` = 256 or 65536).
        0 disables clipping (plain adaptive equalization).
    tile_grid : (int, int), optional
        OpenCV's ``tileGridSize`` = ``(tiles_x, tiles_y)``: the number of tiles along the
        second image axis (columns, the width) first, then along the first (rows).
    axes : (int, int), optional
        The row and column axes of one image. None (the default) means ``(-2, -1)``, or with
        `channel_axis` the two trailing axes other than it.
    channel_axis : int, optional
        The axis of colour channels, as in scikit-image: without `luminance` a batch axis (each
        channel through CLAHE on its own, like a per-channel loop of ``cv2.CLAHE.apply``).
    luminance : bool or {"rgb", "bgr"}, optional
        CLAHE of the luma of colour images (`channel_axis` of length 3), keeping their chroma:
        OpenCV's ``COLOR_RGB2YCrCb``, CLAHE of Y, ``COLOR_YCrCb2RGB`` (bit-exact), the luma path
        of :func:`equalize_hist`; ``"bgr"`` for OpenCV's B, G, R order (``cv2.imread``), with
        ``COLOR_BGR2YCrCb`` and ``COLOR_YCrCb2BGR``.

    Returns
    -------
    out : (..., H, W) ndarray
        Same shape, dtype and backend as `images` (native byte order).

    Raises
    ------
    TypeError
        `images` not uint8/uint16 or a masked array, `clip_limit` not a real number,
        `tile_grid` entries not ints.
    ValueError
        `clip_limit` negative or NaN, `tile_grid` not two entries >= 1 or with tables that need
        more than half the available memory, `axes` not two axes.

    See Also
    --------
    cv2.createCLAHE : ``cv2.createCLAHE(clip_limit, tile_grid).apply(image)`` per image.
    equalize_adapthist : scikit-image's CLAHE.

    Notes
    -----
    Reproduces ``cv2.CLAHE.apply`` (OpenCV 4.x / 5.0 CPU path) on every plane: images whose size
    is not a multiple of the grid are padded at the bottom and right with ``BORDER_REFLECT_101``
    by ``tiles - size % tiles`` on *both* axes (OpenCV's rule, so an axis that divides evenly
    still grows by one tile row or column), the clip limit is scaled and truncated as OpenCV
    does, clipped counts are redistributed with OpenCV's batch and residual steps, tables are
    ``round_half_even(float32(cumsum) * float32((levels - 1) / tile_pixels))``, and each pixel
    blends its four neighbouring tables with OpenCV's float32 weights and operation order,
    rounded half to even. The tests check agreement within 1 level on every pixel (in practice
    the results are identical). uint16 images use 65536 bins per tile, like OpenCV, so their
    tables take ``planes x tiles x 256 KiB`` in blocks. On NumPy input the compiled kernels of
    ``_clahe.c`` do the work when the extension is built, and on CuPy input the CUDA kernels of
    ``_cuda/clahe.cu`` (one launch for small uint8 planes, else tile tables and a blend; no host
    synchronisation, nothing uploaded); both are tested bit for bit against the portable path,
    which ``GPU_HISTEQ_PORTABLE=1`` selects.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import clahe
    >>> faces = np.random.default_rng(0).integers(60, 120, (4, 1, 96, 96), dtype=np.uint8)
    >>> out = clahe(faces, clip_limit=2.0, tile_grid=(8, 8))
    >>> out.shape, out.dtype
    ((4, 1, 96, 96), dtype('uint8'))
    """
    xp = array_module(images)
    check_images(images, xp)
    images = native(images)
    dtype = np.dtype(images.dtype)
    if dtype not in (np.uint8, np.uint16):
        raise TypeError(f"`images` must be uint8 or uint16 for OpenCV's CLAHE, got {dtype}")
    clip_limit = check_clip_limit(clip_limit)
    tiles_x, tiles_y = check_int_sequence(tile_grid, 2, "tile_grid", "tiles_x, tiles_y")
    luminance = check_luminance_order(luminance)
    axes, channel_axis = image_axes(axes, channel_axis, images.shape)
    if len(axes) != 2:
        raise ValueError(f"`axes` must name 2 axes (rows, columns), got {axes!r}")
    height, width = (images.shape[a] for a in axes)
    extents = (height + tiles_y - height % tiles_y) * (width + tiles_x - width % tiles_x)
    _check_tables(xp, "tile_grid", tile_grid, plane_count(images.shape, axes), tiles_x * tiles_y,
                  256 if dtype == np.uint8 else 65536, extents)
    if luminance:
        check_luminance(images.shape, dtype, channel_axis, "opencv")
        luma_axes = tuple(a - (a > channel_axis) for a in axes)
        return luma_path(xp, images, channel_axis,
                         lambda luma: clahe(luma, clip_limit, tile_grid, axes=luma_axes),
                         order=luminance)
    planes, batch_shape, image_shape = _planes.to_planes(xp, images, axes)
    result = xp.empty(planes.shape, dtype)
    if planes.size:
        _clahe_planes(xp, planes, image_shape, clip_limit, (tiles_y, tiles_x), result)
    return _planes.from_planes(xp, result, batch_shape, image_shape, axes)


@functools.lru_cache(maxsize=64)
def _opencv_geometry(shape, grid, nbins, clip_limit):
    """What OpenCV's CLAHE of ``(H, W)`` planes needs besides the pixels, made once per image
    size and arguments (a per-sample transform asks for the same one at every call): the padded
    extents, the tile shape and area, the integer clip limit, the float32 table scale, the
    reflect-101 source of each padded row and column and each pixel's neighbour tiles and
    weights. Arrays are read-only (shared between calls)."""
    height, width = shape
    if height % grid[0] == 0 and width % grid[1] == 0:
        extents = (height, width)
    else:  # OpenCV pads both axes by ``tiles - size % tiles``, even one that divides evenly
        extents = (height + grid[0] - height % grid[0], width + grid[1] - width % grid[1])
    tile_shape = (extents[0] // grid[0], extents[1] // grid[1])
    area = tile_shape[0] * tile_shape[1]
    limit = 0
    if clip_limit > 0:
        limit = max(int(clip_limit * area / nbins), 1)
    # the two neighbour tiles of each row and column, and their float32 weights
    rows = blend_weights(np.float32, np.arange(height), tile_shape[0], grid[0])
    cols = blend_weights(np.float32, np.arange(width), tile_shape[1], grid[1])
    neighbours = (np.stack(rows[:2]).astype(np.int64), np.stack(rows[2:]),
                  np.stack(cols[:2]).astype(np.int64), np.stack(cols[2:]))
    sources = tuple(reflect101(np.arange(e, dtype=np.int64), s) for e, s in zip(extents, shape))
    for array in neighbours + sources:
        array.flags.writeable = False
    scale = np.float32(nbins - 1) / np.float32(area)  # as in opencv_tables
    return tile_shape, area, limit, scale, neighbours, sources


def _clahe_planes(xp, planes, shape, clip_limit, grid, result):
    """OpenCV's CLAHE of every row of a ``(P, H * W)`` array into `result`."""
    nbins = 256 if planes.dtype == np.uint8 else 65536
    height, width = shape
    tile_shape, area, limit, scale, neighbours, sources = _opencv_geometry(
        tuple(shape), grid, nbins, clip_limit)
    ntiles = grid[0] * grid[1]
    if _engine.clahe(xp, planes, shape, grid, sources, limit, scale, neighbours, result):
        return  # the compiled kernels: the same arithmetic in C
    (rows1, rows2), (row_w1, row_w2) = neighbours[:2]
    (cols1, cols2), (col_w1, col_w2) = neighbours[2:]
    source, tile = tiled_source(shape, grid, tile_shape, reflect101)
    corners = [((r[:, None] * grid[1] + c[None, :]) * nbins).ravel()
               for r in (rows1, rows2) for c in (cols1, cols2)]
    col_w1, col_w2 = xp.asarray(col_w1), xp.asarray(col_w2)
    row_w1, row_w2 = xp.asarray(row_w1[:, None]), xp.asarray(row_w2[:, None])
    source = None if source is None else xp.asarray(source)

    nplanes, npixels = planes.shape
    block_list = _planes.plane_blocks(xp, nplanes, max(npixels, tile.size), ntiles * nbins)
    most = max(rows.stop - rows.start for rows, _ in block_list)
    offsets = offsets_for(xp, most, tile, ntiles, nbins)
    plane_tables = _planes.plane_offsets(xp, most, ntiles * nbins)
    corner_offsets = [plane_tables + xp.asarray(c)[None, :] for c in corners]

    def run(block):
        rows, _ = block
        n = rows.stop - rows.start
        values = planes[rows]
        tiled = values if source is None else xp.take(values, source, axis=1)
        hist = count_tiles(xp, tiled, offsets, ntiles, nbins).reshape(n * ntiles, nbins)
        tables = clahe_opencv_tables(xp, hist, limit, area).reshape(-1)
        index = xp.empty((n, npixels), np.intp)
        blended = [xp.empty((n, height, width), np.float32) for _ in range(2)]
        # OpenCV's order: (top_left * w1 + top_right * w2) * row_w1 + (bottom ...) * row_w2
        for half, (row_weight, pair) in enumerate(((row_w1, corner_offsets[:2]),
                                                    (row_w2, corner_offsets[2:]))):
            left = blended[half]
            xp.add(values, pair[0][:n], out=index)
            xp.take(tables, index, out=left.reshape(n, npixels))
            left *= col_w1
            xp.add(values, pair[1][:n], out=index)
            other = xp.take(tables, index).reshape(n, height, width)
            other *= col_w2
            left += other
            left *= row_weight
        top, bottom = blended
        top += bottom
        xp.rint(top, out=top)
        result[rows] = top.reshape(n, npixels)

    _planes.map_blocks(xp, run, block_list)


# ---------------------------------------------------------------------------------------------
# scikit-image


def _as_uint16(xp, values):
    """:func:`skimage.util.img_as_uint` of a block: the same integer arithmetic per dtype."""
    dtype = np.dtype(values.dtype)
    if dtype == np.uint16:
        return values
    if dtype == np.uint8:
        return values.astype(np.uint16) * np.uint16(257)
    if dtype == np.int8:  # 7 bits to 16: through 21 bits in int32
        scaled = values.astype(np.int32) * np.int32(16513) // np.int32(32)
        return xp.maximum(scaled, 0).astype(np.uint16)
    if dtype == np.int16:  # 15 bits to 16: through 30 bits in int32
        scaled = values.astype(np.int32) * np.int32(32769) // np.int32(1 << 14)
        return xp.maximum(scaled, 0).astype(np.uint16)
    # floating, checked to lie in [-1, 1]: scaled in its own dtype (float16 in float32: 65535
    # overflows float16, where scikit-image's arithmetic turns every pixel into inf or NaN and
    # returns a constant image), rounded, clipped
    if dtype == np.float16:
        values, dtype = values.astype(np.float32), np.dtype(np.float32)
    scaled = values * dtype.type(65535)
    xp.rint(scaled, out=scaled)
    return xp.clip(scaled, 0, 65535).astype(np.uint16)


ADAPTHIST_DTYPES = tuple(np.dtype(d) for d in
                         (np.uint8, np.uint16, np.int8, np.int16, np.float16, np.float32, np.float64))


@overload
def equalize_adapthist(
        images: Array, kernel_size: int | Sequence[int] | None = ..., clip_limit: float = ...,
        nbins: int = ..., *, axes: Axes = ..., channel_axis: int | None = ...) -> Array: ...


@overload
def equalize_adapthist(
        images: Any, kernel_size: int | Sequence[int] | None = ..., clip_limit: float = ...,
        nbins: int = ..., *, axes: Axes = ..., channel_axis: int | None = ...) -> Any: ...


def equalize_adapthist(
        images: Any, kernel_size: int | Sequence[int] | None = None, clip_limit: float = 0.01,
        nbins: int = 256, *, axes: Any = None, channel_axis: int | None = None) -> Any:
    """Contrast limited adaptive histogram equalization of every image, as scikit-image does it.

    Parameters
    ----------
    images : (..., M, N[, ...]) ndarray
        NumPy or CuPy array: uint8, uint16, int8, int16 or floating (floating values in
        ``[-1, 1]``). The `axes` form one image (2 or more axes); every other axis is a batch
        axis.
    kernel_size : int or sequence of int, optional
        Shape of the contextual regions along `axes`; an int is used for every axis. Default:
        ``max(size // 8, 1)`` per axis. Each entry must be between 1 and the image size.
    clip_limit : float, optional
        Normalized clip limit (0 or >= 1 disables clipping).
    nbins : int, optional
        Number of gray bins of the tile histograms.
    axes : tuple of int, optional
        The axes of one image (2 or more: 3-D volumes too). None (the default) means
        ``(-2, -1)``, or with `channel_axis` the two trailing axes other than it.
    channel_axis : int, optional
        The axis of colour channels, as in scikit-image. With 3 channels (RGB) the images go
        through scikit-image's colour path: HSV value equalized, hue and saturation kept (4
        channels are refused: pass the RGB ones). With any other count, each channel on its own.

    Returns
    -------
    out : ndarray
        Shape of `images`; float32 for float16/float32 input, float64 otherwise; values in
        ``[0, 1]``.

    Raises
    ------
    TypeError
        Unsupported dtype or a masked array, non-integer `kernel_size` entries, `clip_limit`
        not a real number.
    ValueError
        `kernel_size` of the wrong length or larger than the image, `kernel_size` or `nbins`
        whose tile tables need more than half the available memory, negative or NaN
        `clip_limit`, bad `nbins`, floating values outside ``[-1, 1]`` or not finite.

    See Also
    --------
    skimage.exposure.equalize_adapthist : reproduced per plane.
    clahe : OpenCV's CLAHE.

    Notes
    -----
    Each plane goes through scikit-image's steps: ``img_as_uint``, rescaling of the plane's
    range to ``[0, 2**14 - 1]`` with round-half-even, reflect padding, bins of width
    ``1 + 2**14 // nbins``, ``clip_histogram`` (its redistribution loop included), the float64
    ``map_histogram`` tables truncated to integers, multilinear interpolation accumulated in
    float32 in scikit-image's corner order and truncated to uint16, and the final rescale of the
    plane's range to ``[0, 1]``. The tests check agreement to 1e-5 per plane (in practice the
    results are identical). RGB with `channel_axis` equals
    ``skimage.exposure.equalize_adapthist(rgb)`` (``rgb2hsv``, the value channel, ``hsv2rgb``,
    the same arithmetic; tested to 1e-6). Without `channel_axis` a last axis of 3 is not taken
    for colour (a UserWarning says so). float16 input is scaled to uint16 in float32 (scikit-image
    does it in float16, where ``65535`` overflows and the result is a constant image).

    On CuPy input, images of 2 to 6 axes run ``_cuda/adapthist.cu`` (bit for bit this path, the
    clip loop decided on the device): no host synchronisation for integer input, one status word
    for floating input. Images of 7 or more axes take the portable path, which synchronizes once
    per clip-loop step with work left (usually none or a few) and for the range check of floats.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import equalize_adapthist
    >>> stack = np.random.default_rng(0).random((3, 64, 64))
    >>> out = equalize_adapthist(stack, kernel_size=16, clip_limit=0.02)
    >>> out.shape, out.dtype, float(out.min()), float(out.max())
    ((3, 64, 64), dtype('float64'), 0.0, 1.0)
    """
    xp = array_module(images)
    check_images(images, xp)
    images = native(images)
    dtype = np.dtype(images.dtype)
    if dtype not in ADAPTHIST_DTYPES:
        raise TypeError("`images` must be uint8, uint16, int8, int16 or floating for "
                        f"equalize_adapthist, got {dtype}")
    clip_limit = check_clip_limit(clip_limit)
    nbins = check_nbins(nbins)
    axes, channel_axis = image_axes(axes, channel_axis, images.shape)
    if len(axes) < 2:
        raise ValueError(f"`axes` must name at least 2 axes, got {axes!r}")
    shape = tuple(images.shape[a] for a in axes)
    if kernel_size is None:
        kernel = tuple(max(s // 8, 1) for s in shape)
    else:
        kernel = check_int_sequence(kernel_size, len(shape), "kernel_size",
                                     f"one per image axis {axes}")
    if any(k > s for k, s in zip(kernel, shape) if s):
        raise ValueError(f"`kernel_size` {kernel} must not exceed the image shape {shape}")
    ntiles = math.prod(-(-s // k) for s, k in zip(shape, kernel))
    tiled = math.prod(-(-s // k) * k for s, k in zip(shape, kernel))
    _check_tables(xp, "kernel_size" if kernel_size is not None else "nbins",
                  kernel_size if kernel_size is not None else nbins,
                  plane_count(images.shape, axes), ntiles, nbins, tiled)
    if channel_axis is not None and images.shape[channel_axis] == 4:
        raise ValueError("`images` has 4 channels along `channel_axis`: pass the RGB channels "
                         "only (scikit-image drops the alpha channel of RGBA images)")
    if channel_axis is not None and images.shape[channel_axis] == 3:
        return _adapthist_hsv(xp, images, channel_axis, axes, kernel, clip_limit, nbins)
    return _adapthist(xp, images, axes, kernel, clip_limit, nbins)


def _adapthist(xp, images, axes, kernel, clip_limit, nbins):
    """:func:`equalize_adapthist` of validated `images`, each plane on its own."""
    dtype = np.dtype(images.dtype)
    shape = tuple(images.shape[a] for a in axes)
    planes, batch_shape, image_shape = _planes.to_planes(xp, images, axes)
    result = xp.empty(planes.shape, cdf_dtype(dtype))
    if planes.size == 0:
        return _planes.from_planes(xp, result, batch_shape, image_shape, axes)
    area = math.prod(kernel)  # scikit-image's clip limit in counts, bin width, table scale:
    clip = (max(int(clip_limit * area), 1) if clip_limit > 0 else area, 1 + NR_OF_GRAY // nbins,
            (NR_OF_GRAY - 1) / area)
    if _engine.adapthist(xp, planes, shape, kernel, nbins, clip, result):
        return _planes.from_planes(xp, result, batch_shape, image_shape, axes)  # range checked
    if dtype.kind == "f":  # sync: img_as_uint's range check
        check_unit_range(float(planes.min()), float(planes.max()))
    _adapthist_planes(xp, planes, shape, kernel, nbins, clip, result)
    return _planes.from_planes(xp, result, batch_shape, image_shape, axes)


def _adapthist_hsv(xp, images, channel_axis, axes, kernel, clip_limit, nbins):
    """scikit-image's colour path (``adapt_rgb(hsv_value)``): RGB -> HSV (after
    ``img_as_float``), CLAHE of the value, HSV -> RGB."""
    rgb = as_float(xp, xp.moveaxis(images, channel_axis, -1))
    hue, saturation, value = rgb_to_hsv(xp, rgb)
    value_axes = tuple(a - (a > channel_axis) for a in axes)
    value = _adapthist(xp, value, value_axes, kernel, clip_limit, nbins).astype(rgb.dtype)
    return xp.moveaxis(hsv_to_rgb(xp, hue, saturation, value), -1, channel_axis)


def _rescale_to_gray(xp, values):
    """``round(rescale_intensity(values, out_range=(0, 2**14 - 1)))`` per row, as uint16."""
    low = values.min(axis=1, keepdims=True).astype(np.float64)
    high = values.max(axis=1, keepdims=True).astype(np.float64)
    span = high - low
    same = span == 0
    stretched = (values - low) / xp.where(same, 1.0, span) * float(NR_OF_GRAY - 1)
    flat = xp.clip(values.astype(np.float64), 0.0, float(NR_OF_GRAY - 1))
    return xp.rint(xp.where(same, flat, stretched)).astype(np.uint16)


def _adapthist_planes(xp, planes, shape, kernel, nbins, clip, result):
    """scikit-image's CLAHE of every row of a ``(P, prod(shape))`` array into `result`."""
    ndim = len(shape)
    counts = tuple(-(-s // k) for s, k in zip(shape, kernel))  # contextual regions per axis
    ntiles = math.prod(counts)
    limit, bin_size, scale = clip

    def reflect_once(index, size):  # numpy.pad "reflect" past the end (kernel <= size)
        return np.where(index >= size, 2 * (size - 1) - index, index) if size > 1 else 0 * index

    source, tile = tiled_source(shape, counts, kernel, reflect_once)
    source = None if source is None else xp.asarray(source)

    # every pixel sits in block b = (x + k // 2) // k at fraction c = ((x + k // 2) % k) / k;
    # its corner e in {0, 1} uses region clip(b - 1 + e) with weight (1 - c, c)[e]
    per_axis = []
    for size, k, n in zip(shape, kernel, counts):
        padded = np.arange(size) + k // 2
        block, frac = padded // k, (padded % k) / k
        regions = (np.clip(block - 1, 0, n - 1), np.clip(block, 0, n - 1))
        per_axis.append((regions, (1 - frac, frac)))
    corners = []
    for edge in itertools.product((0, 1), repeat=ndim):
        region = np.zeros(shape, np.intp)
        for axis in range(ndim):
            view = [1] * ndim
            view[axis] = shape[axis]
            region = region * counts[axis] + per_axis[axis][0][edge[axis]].reshape(view)
        weight = None
        for axis in reversed(range(ndim)):  # scikit-image multiplies the last axis first
            view = [1] * ndim
            view[axis] = shape[axis]
            factor = per_axis[axis][1][edge[axis]].reshape(view)
            weight = factor if weight is None else weight * factor
        weight = np.broadcast_to(weight, shape)
        corners.append(((region * nbins).ravel(), xp.asarray(weight.ravel())))

    nplanes, npixels = planes.shape
    block_list = _planes.plane_blocks(xp, nplanes, max(npixels, tile.size), ntiles * nbins)
    most = max(rows.stop - rows.start for rows, _ in block_list)
    offsets = offsets_for(xp, most, tile, ntiles, nbins)
    plane_tables = _planes.plane_offsets(xp, most, ntiles * nbins)
    corner_offsets = [(plane_tables + xp.asarray(c)[None, :], w) for c, w in corners]

    def run(block):
        rows, _ = block
        n = rows.stop - rows.start
        gray = _rescale_to_gray(xp, _as_uint16(xp, planes[rows]))
        binned = gray // np.uint16(bin_size)
        tiled = binned if source is None else xp.take(binned, source, axis=1)
        hist = count_tiles(xp, tiled, offsets, ntiles, nbins).reshape(n * ntiles, nbins)
        hist = clahe_skimage_clip(xp, hist, limit)
        tables = xp.cumsum(hist, axis=-1).astype(np.float64) * scale
        tables = xp.floor(xp.minimum(tables, float(NR_OF_GRAY - 1))).reshape(-1)
        total = xp.zeros((n, npixels), np.float32)
        for corner, weight in corner_offsets:
            mapped = xp.take(tables, xp.add(binned, corner[:n], dtype=np.intp))
            total += (mapped * weight).astype(np.float32)
        levels = total.astype(np.uint16).astype(result.dtype)
        low = levels.min(axis=1, keepdims=True)
        high = levels.max(axis=1, keepdims=True)
        span = high - low
        same = span == 0
        stretched = (levels - low) / xp.where(same, 1, span)
        result[rows] = xp.where(same, xp.clip(levels, 0, 1), stretched)

    _planes.map_blocks(xp, run, block_list)
