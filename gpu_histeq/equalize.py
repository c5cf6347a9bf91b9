"""Histogram equalization of many image planes in one call.

The pipeline, shared by every method: per-plane histograms (``bincount`` over the offset index
``bin + nbins * plane``) -> per-plane tables -> gather. Blocks of whole planes are counted and
remapped with the same index in one pass; planes larger than a block are counted in a first pass
and remapped in a second. :mod:`gpu_histeq._engine` runs each step (or all of them fused) on the
engine that fits the input.
"""

from typing import Any, Literal, overload

import numpy as np

from . import _engine, _planes
from ._backend import array_module
from ._binning import binning_for
from ._tables import cdf_dtype, table_maker
from ._validate import (ALWAYS_AVAILABLE, Resolved, check_allocation, check_images,
                        check_levels_nbins, check_luminance, check_luminance_order, check_mask,
                        check_mask_selects, check_nbins, check_out, image_axes, native,
                        out_overlaps, plain_key, plane_count, probable_colour, refuse_masked,
                        resolve_method)
from ._typing import (Array, ArrayList, Axes, Float32, Float64, HalfOrSingle, LevelMethod,
                      Luminance, Method, UInt8, UInt16)

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
    writes_through = out is not None and np.dtype(out.dtype).isnative
    result = _planes.writable_planes(xp, out, axes) if writes_through else None
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


def luma_path(xp, images, channel_axis, transform, out=None, order="rgb"):
    """Replace the luma of colour `images` (channels along `channel_axis`) by
    ``transform(luma)``.

    The one luma path (``equalize_hist`` and ``clahe`` with `luminance`): OpenCV's
    RGB -> YCrCb conversion (14-bit fixed point for integers, its float coefficients for
    floats), `transform` of Y, then YCrCb -> RGB with the original Cr and Cb, saturated to the
    integer range or clipped to ``[0, 1]`` for floats. The conversions run in the engine
    :func:`gpu_histeq._engine.select` picks (compiled C for uint8/uint16 NumPy input), which
    reads and writes the channels in `order` where they lie: ``"bgr"`` is OpenCV's
    ``COLOR_BGR2YCrCb`` and ``COLOR_YCrCb2BGR`` without reversing a copy.

    Parameters
    ----------
    images : (..., 3, ...) ndarray
        Unsigned integer or floating pixels, native byte order, channels in `order`.
    channel_axis : int
        Non-negative.
    transform : callable
        ``transform(luma)`` with luma of the shape of `images` without `channel_axis` (the
        images' dtype for integers, float for floats) returns the new luma: the images' dtype for
        integers (or float64 values in ``[0, 1]``, taken to ``rint(value * top)``), any float for
        floats.
    out : ndarray, optional
        Checked result array, channels in `order`.
    order : {"rgb", "bgr"}, optional
        The order of the channels (checked).

    Returns
    -------
    out : ndarray
        Shape of `images`, channels in `order`; the images' dtype for integers, float32 for
        float16/float32 and float64 for float64.
    """
    dtype = np.dtype(images.dtype)
    shape = images.shape
    rgb = _rgb_rows(xp, images, channel_axis)
    outer, _, inner = rgb.shape
    luma, state = _engine.split_luma(xp, rgb, order)
    luma_shape = shape[:channel_axis] + shape[channel_axis + 1:]
    new_luma = transform(luma.reshape(luma_shape))
    new_luma = xp.ascontiguousarray(new_luma).reshape(outer, inner)
    result_dtype = dtype if dtype.kind != "f" else cdf_dtype(dtype)
    if out is not None and np.dtype(out.dtype).isnative and out.flags.c_contiguous:
        target = out.reshape(outer, 3, inner)
        _engine.merge_luma(xp, rgb, new_luma, state, target, order)
        return out
    result = xp.empty((outer, 3, inner), result_dtype)
    _engine.merge_luma(xp, rgb, new_luma, state, result, order)
    result = result.reshape(shape)
    if out is None:
        return result
    out[...] = result
    return out


def _rgb_rows(xp, images, channel_axis):
    """`images` as C-contiguous ``(outer, 3, inner)``: the axes before and after the channels."""
    shape = images.shape
    outer = int(np.prod(shape[:channel_axis], dtype=np.int64))
    inner = int(np.prod(shape[channel_axis + 1:], dtype=np.int64))
    return xp.ascontiguousarray(images).reshape(outer, 3, inner)


def _fused_target(out):
    return np.dtype(out.dtype).isnative and out.flags.c_contiguous


def _equalize_luminance(xp, images, nbins, axes, mask, method, channel_axis, out, order):
    """Equalize the luma of colour `images` (channels along `channel_axis`, in `order`, ``"rgb"``
    or ``"bgr"``) with `method`."""
    dtype = np.dtype(images.dtype)
    # the channel axis is gone from the luma; image axes after it move down by one
    luma_axes = tuple(a - (a > channel_axis) for a in axes)
    luma_mask = None if mask is None else mask.all(axis=channel_axis)

    luma_ndim = images.ndim - 1
    trailing = luma_axes == tuple(range(luma_ndim - len(axes), luma_ndim))
    fused_out = out
    fusable = dtype.kind == "u" or dtype == cdf_dtype(dtype)  # float32 / float64 keep the dtype
    if mask is None and trailing and images.size and fusable:
        # each image's pixels lie together: the engine may fuse the count, tables and round trip
        luma_shape = images.shape[:channel_axis] + images.shape[channel_axis + 1:]
        nplanes = plane_count(luma_shape, luma_axes)
        target = out if out is not None and _fused_target(out) else xp.empty(images.shape, dtype)
        rgb = _rgb_rows(xp, images, channel_axis)
        if _engine.equalize_luma(xp, rgb, nplanes, method, target.reshape(rgb.shape), order,
                                 nbins):
            if out is not None and target is not out:
                out[...] = target
            return target if out is None else out
        fused_out = target if out is None else out  # declined: nothing written, no new buffer

    def transform(luma):
        luma = luma.astype(dtype, copy=False)
        equalized = _equalize(xp, luma, nbins, luma_axes, luma_mask, method, None,
                              dtype if method in ("opencv", "pil") else cdf_dtype(dtype))
        return equalized  # unsigned skimage: the CDF, which merge_luma takes to the levels

    return luma_path(xp, images, channel_axis, transform, fused_out, order)


#: Working bytes per bin of one floating plane (edges, counts, the interpolation tables and
#: their temporaries), measured: the peak of ``nbins=10**8`` on one plane is about 14 GB.
BYTES_PER_FLOAT_BIN = 144


def check_float_bins(xp, nbins, nplanes):
    """Check the memory `nbins` uniform bins take for `nplanes` planes (one per thread at once)."""
    in_flight = max(1, min(nplanes, _planes.thread_count()))
    check_allocation("nbins", nbins, BYTES_PER_FLOAT_BIN * nbins * in_flight, xp)


#: The checked arguments of :func:`equalize_hist` calls without `mask` or `out`, by configuration.
_RESOLVED = Resolved()


def _resolved_call(images, xp, nbins, axes, method, result_dtype, floating, channel_axis,
                   order):
    """The call of :func:`equalize_hist` without mask or `out` whose checks an equal call
    passed: the checked arguments it resolved to (:data:`_RESOLVED`)."""
    if floating:  # as check_float_bins: an unusable GPU_HISTEQ_NUM_THREADS raises
        _planes.configured_threads()
    if order:
        return _equalize_luminance(xp, images, nbins, axes, None, method, channel_axis, None,
                                   order)
    return _equalize(xp, images, nbins, axes, None, method, None, result_dtype)


def _plain_call(images, nbins, method, axes, may_warn):
    """Whether the checks of this (checked, successful) call can be skipped when an equal call
    comes: native byte order, no warning (`may_warn`: neither `axes` nor `channel_axis` was
    given), and a float working memory that :func:`check_allocation` passes unasked whatever
    the threads."""
    return (np.dtype(images.dtype).isnative and not (may_warn and probable_colour(images.shape))
            and (method != "skimage" or images.dtype.kind != "f" or BYTES_PER_FLOAT_BIN * nbins
                 * plane_count(images.shape, axes) <= ALWAYS_AVAILABLE))


#: ``(dtype, method) -> method`` of the common call taken by :func:`_common_call`.
_LEVEL_CALLS = {(np.dtype(np.uint8), None): "opencv", (np.dtype(np.uint8), "opencv"): "opencv",
                (np.dtype(np.uint8), "pil"): "pil", (np.dtype(np.uint16), None): "opencv",
                (np.dtype(np.uint16), "opencv"): "opencv"}


def _common_call(images, axes, method):
    """The result of the common call -- native uint8 / uint16 NumPy `images` ``(..., H, W)``,
    C-contiguous, not empty, image axes ``(-2, -1)``, ``"opencv"`` or ``"pil"``, every other
    argument at its default (the caller checked those) -- without the general checks and
    dispatch, which cost several times the work of one small image; None for any other call,
    which then takes the general path (and its errors and warnings)."""
    name = _LEVEL_CALLS.get((images.dtype, method))
    shape = images.shape
    if (name is None or len(shape) < 2 or not images.size or not images.flags.c_contiguous
            or not (axes is None or axes == (-2, -1))
            or (axes is None and len(shape) > 2 and shape[-1] in (3, 4)
                and min(shape[-3:-1]) >= 8)):  # a probable colour image: the warning
        return None
    _planes.configured_threads()  # an unusable GPU_HISTEQ_NUM_THREADS raises on every call
    result = np.empty(shape, images.dtype)
    if not _engine.equalize_small(np, images, name, result):
        return None  # larger batches take the general path (blocks, threads)
    return result


@overload
def equalize_hist(
        images: UInt8, nbins: int = ..., *, axes: Axes = ..., mask: Any = ...,
        method: LevelMethod | None = ..., channel_axis: int | None = ...,
        luminance: Luminance = ..., out: Any = ...) -> UInt8: ...


@overload
def equalize_hist(
        images: UInt16, nbins: int = ..., *, axes: Axes = ..., mask: Any = ...,
        method: Literal["opencv"] | None = ..., channel_axis: int | None = ...,
        luminance: Luminance = ..., out: Any = ...) -> UInt16: ...


@overload  # float64 shares no subclass with float16/32 (mypy cannot tell, hence the ignore)
def equalize_hist(  # type: ignore[overload-overlap]
        images: Float64, nbins: int = ..., *, axes: Axes = ..., mask: Any = ...,
        method: Literal["skimage"] | None = ..., channel_axis: int | None = ...,
        luminance: Luminance = ..., out: Any = ...) -> Float64: ...


@overload
def equalize_hist(
        images: HalfOrSingle, nbins: int = ..., *, axes: Axes = ..., mask: Any = ...,
        method: Literal["skimage"] | None = ..., channel_axis: int | None = ...,
        luminance: Luminance = ..., out: Any = ...) -> Float32: ...


@overload
def equalize_hist(
        images: Array, nbins: int = ..., *, axes: Axes = ..., mask: Any = ...,
        method: Method | None = ..., channel_axis: int | None = ..., luminance: Luminance = ...,
        out: Any = ...) -> Array: ...


@overload
def equalize_hist(
        images: ArrayList, nbins: int = ..., *, axes: Axes = ..., mask: Any = ...,
        method: Method | None = ..., channel_axis: int | None = ..., luminance: Luminance = ...,
        out: Any = ...) -> list[Array]: ...


@overload
def equalize_hist(
        images: Any, nbins: int = ..., *, axes: Axes = ..., mask: Any = ...,
        method: Method | None = ..., channel_axis: int | None = ..., luminance: Luminance = ...,
        out: Any = ...) -> Any: ...


def equalize_hist(
        images: Any, nbins: int = 256, *, axes: Axes = None, mask: Any = None,
        method: Method | None = None, channel_axis: int | None = None, luminance: Luminance = False,
        out: Any = None) -> Any:
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
        None (the default) means ``(-2, -1)``, or with `channel_axis` the two trailing axes
        other than it (``(N, H, W, C)`` -> ``(1, 2)``). All axes give one table for the whole
        dataset. A probable colour image (last axis of length 3 or 4) with neither `axes` nor
        `channel_axis` gives a UserWarning.
    mask : ndarray of bool, optional
        Broadcastable to `images`. Histograms count the selected pixels only; every pixel is
        remapped. Each plane must have at least one selected pixel.
    method : {None, "opencv", "pil", "skimage"}, optional
        Whose numbers to reproduce. None picks ``"opencv"`` for uint8/uint16 and ``"skimage"``
        for every other dtype.
    channel_axis : int, optional
        The axis of colour channels, as in scikit-image. Without `luminance` it is one more
        batch axis (each channel equalized on its own, like a per-channel loop of the peer); it
        must not be in `axes`.
    luminance : bool or {"rgb", "bgr"}, optional
        Equalize the luma of colour images (`channel_axis` of length 3) and keep their chroma,
        through OpenCV's YCrCb conversion: ``True`` or ``"rgb"`` for R, G, B channels
        (``cv2.COLOR_RGB2YCrCb`` and back), ``"bgr"`` for OpenCV's B, G, R order, as
        ``cv2.imread`` gives (``cv2.COLOR_BGR2YCrCb`` and back); bit-exact for uint8/uint16.
        Floating results are clipped to ``[0, 1]``.
    out : ndarray, optional
        Preallocated result: shape of `images`, the result dtype, same backend. It may be
        `images` itself (in place); one that partly overlaps `images` or `mask` gets the result
        through a temporary array (judged from pointer ranges, no device work). With a list of
        `images`, a list of such arrays (ValueError if two of them share memory).

    Returns
    -------
    out : ndarray
        Shape of `images`, native byte order. dtype of `images` for ``"opencv"`` and ``"pil"``
        (and for unsigned `images` with `luminance`); for ``"skimage"`` float32 for
        float16/float32 input and float64 otherwise (scikit-image's rule), with values in
        ``(0, 1]`` (``[0, 1]`` with `luminance`).

    Raises
    ------
    TypeError
        Unsupported dtype, a method that does not fit the dtype, arrays on different backends,
        `out` not an array of the backend of `images`, a :class:`numpy.ma.MaskedArray` (pass
        its data and ``mask=~numpy.ma.getmaskarray(images)`` instead).
    ValueError
        Fewer than 2 dimensions, bad `nbins` or `axes`, `nbins` whose tables would need more
        than half the available memory, NaN or infinity in floating input, a mask of the wrong
        shape or selecting no pixel of a plane, `out` of the wrong shape.

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

    With `luminance`, NumPy uint8/uint16 input converts in the compiled kernels of ``_color.c``
    (for channels-last uint8 with ``"opencv"`` or ``"pil"`` and no mask, fused with the count and
    the tables: the pixels are read twice and written once); NumPy floats take the portable
    conversion of :mod:`gpu_histeq.color`. CuPy uint8/uint16/float32/float64 input converts in
    the CUDA kernels of ``_cuda/color.cu``: without a mask, unsigned images (their image axes the
    trailing axes besides the channels) are counted, tabled and converted back without storing
    Y (small uint8 images in one launch, no sync); floats and masks store Y once. The compiled
    and CUDA kernels take the channel order as an argument: ``"bgr"`` reads and writes the
    pixels where they lie, at the cost of ``"rgb"`` (no reversed copy).

    Peak extra memory is one block's index (``CHUNK_PIXELS`` int64 per worker thread, 4 MiB on
    the CPU) plus the tables (``P x bins``), plus one copy of `images` when its image axes are not
    its last, C-contiguous axes. On CuPy, floating input synchronizes once for the NaN check;
    integer input does not (int8 through the level kernels with the sign bit flipped, int16 by
    rank or by level, int32/uint32 planes of up to 2**20 pixels by rank, whatever their range;
    int64/uint64 once for the table width).

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import equalize_hist
    >>> faces = np.random.default_rng(0).integers(60, 120, (1800, 1, 96, 96), dtype=np.uint8)
    >>> equalized = equalize_hist(faces)
    >>> equalized.shape, equalized.dtype, int(equalized.min()), int(equalized.max())
    ((1800, 1, 96, 96), dtype('uint8'), 0, 255)
    """
    key = None
    if mask is None and out is None:
        if (type(images) is np.ndarray and type(nbins) is int and nbins == 256
                and channel_axis is None and luminance is False
                and (method is None or type(method) is str)):
            result = _common_call(images, axes, method)  # None where the checks below are needed
            if result is not None:
                return result
        # `luminance` as a plain key: a bool as 0 / 1 (an int `luminance` is refused, no key)
        order = (luminance if type(luminance) is str else int(luminance)
                 if type(luminance) is bool else None)
        key = plain_key(nbins, axes, method, channel_axis, order)
        if key is not None:  # the checks of an equal call already passed: its resolution
            key = (type(images), getattr(images, "shape", None), getattr(images, "dtype", None),
                   key)
            resolved = _RESOLVED.get(key)
            if resolved is not None:
                return _resolved_call(images, *resolved)
    xp = array_module(images, mask=mask, out=out)
    check_images(images, xp)
    images = native(images)
    refuse_masked(mask, "mask")
    nbins = check_nbins(nbins)
    method = resolve_method(method, images.dtype)
    if method in ("opencv", "pil"):
        nbins = check_levels_nbins(nbins, images.dtype, method)
    luminance = check_luminance_order(luminance)
    axes, channel_axis = image_axes(axes, channel_axis, images.shape)
    result_dtype = images.dtype if method in ("opencv", "pil") else cdf_dtype(images.dtype)
    if luminance and images.dtype.kind == "u":
        result_dtype = images.dtype
    check_out(out, images.shape, result_dtype, xp)
    if method == "skimage" and images.dtype.kind == "f":
        check_float_bins(xp, nbins, plane_count(images.shape, axes))
    mask = check_mask(mask, images, xp)
    target = out
    if out_overlaps(out, images, mask):  # computed aside, then copied: no input overwritten
        out = None
    if luminance:
        check_luminance(images.shape, images.dtype, channel_axis, method)
    if key is not None and _plain_call(images, nbins, method, axes, key[3][1] is None
                                       and key[3][3] is None):
        floating = method == "skimage" and images.dtype.kind == "f"
        _RESOLVED.put(key, (xp, nbins, axes, method, result_dtype, floating, channel_axis,
                            luminance))
    if luminance:
        result = _equalize_luminance(xp, images, nbins, axes, mask, method, channel_axis, out,
                                     luminance)
    else:
        result = _equalize(xp, images, nbins, axes, mask, method, out, result_dtype)
    if target is not None and out is None:
        target[...] = result
        return target
    return result
