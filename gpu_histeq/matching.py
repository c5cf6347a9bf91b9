"""Histogram matching of many image planes in one call.

The pipeline again: per-plane counts (``bincount`` over offsets ``level + width * plane`` for
integer images, a per-plane sort for floating ones), per-plane tables (the reference's cumulative
counts and values), then a gather through the reference's inverse cumulative distribution.

Quantiles are compared as integers: a source value with ``c_s`` of ``N_s`` pixels at or below it
sits at or past a reference knot with ``c_t`` of ``N_t`` pixels iff ``c_t * N_s <= c_s * N_t``, so
one ``searchsorted`` over every reference plane (rows offset by ``(N_t + 1) * plane``) finds the
segment of every query exactly; the interpolation itself is :func:`numpy.interp`'s float64
arithmetic.
"""

import math

from typing import Any, overload

import numpy as np

from . import _engine, _planes
from ._backend import array_module
from ._engine.portable import count
from ._tables import cdf_dtype
from ._validate import available_memory, check_images, image_axes, native, refuse_masked
from ._typing import Array, ArrayList, Axes

__all__ = ["match_histograms"]

#: Widest integer range (max - min + 1 over images and reference) matched with level tables.
MAX_LEVELS = 1 << 20


def _reference_planes(xp, images, reference, axes, channel_axis, host_owner=False):
    """The reference as ``(R, N_t)`` planes and, for each image plane, its reference plane
    (``(P,)`` intp on the device, or on the host with `host_owner`)."""
    batch_axes = [a for a in range(images.ndim) if a not in axes]
    batch_shape = tuple(images.shape[a] for a in batch_axes)
    own_axes = sorted(axes + (() if channel_axis is None else (channel_axis,)))
    if reference.ndim == len(own_axes) and reference.ndim != images.ndim:
        # one image (with its channels): its axes are `own_axes` of `images`, in that order
        shared = [a for a in batch_axes if a not in own_axes]
        reference = reference.reshape(
            tuple(1 if a in shared else reference.shape[own_axes.index(a)]
                  for a in range(images.ndim)))
    elif reference.ndim != images.ndim:
        extra = "" if channel_axis is None else " and the channel axis"
        raise ValueError(
            f"`reference` must have {images.ndim} dimensions like `images` (one reference per "
            f"plane, batch axes of size 1 broadcast) or {len(own_axes)} (the image axes{extra}: "
            f"one reference for every plane), got shape {reference.shape}")
    if channel_axis is not None and reference.shape[channel_axis] != images.shape[channel_axis]:
        raise ValueError(
            f"`reference` must have {images.shape[channel_axis]} channels along `channel_axis` "
            f"{channel_axis} like `images`, got {reference.shape[channel_axis]}")
    for a in batch_axes:
        if reference.shape[a] not in (1, images.shape[a]):
            raise ValueError(
                f"`reference` axis {a} must have size 1 or {images.shape[a]} to broadcast against "
                f"`images` of shape {images.shape}, got reference shape {reference.shape}")
    ref_planes, ref_batch, _ = _planes.to_planes(xp, reference, axes)
    if ref_planes.shape[1] == 0 and ref_planes.shape[0]:
        raise ValueError(f"`reference` must have pixels, got shape {reference.shape}")
    owner = np.broadcast_to(np.arange(math.prod(ref_batch)).reshape(ref_batch), batch_shape)
    owner = owner.ravel().astype(np.intp)
    return ref_planes, owner if host_owner else xp.asarray(owner)


def _level_knots(xp, planes, low, width):
    """``(R, width)`` cumulative counts of every level ``low + w`` and the levels (float64)."""
    nplanes = planes.shape[0]
    counts = xp.zeros((nplanes, width), np.int64)
    for rows, cols in _planes.blocks(xp, nplanes, planes.shape[1], width):
        n = rows.stop - rows.start
        index = xp.add(planes[rows, cols], _planes.plane_offsets(xp, n, width) - low, dtype=np.intp)
        counts[rows] += count(xp, index, None, n, width)
    levels = xp.arange(width, dtype=np.float64) + float(low)
    return xp.cumsum(counts, axis=1), xp.broadcast_to(levels, (nplanes, width))


def _runs(xp, ordered):
    """Runs of equal entries in rows sorted ascending.

    Returns
    -------
    run : (n, W) intp ndarray
        Each entry's run, numbered ``W * row + k`` for the k-th run of its row.
    ends : (n * W,) int64 ndarray
        For each run number, the count of its row's entries ``<=`` the run's value (run numbers
        past a row's last run hold ``W``).
    """
    nrows, width = ordered.shape
    starts = xp.ones(ordered.shape, bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run = xp.cumsum(starts, axis=1) - 1
    run += _planes.plane_offsets(xp, nrows, width)
    sizes = xp.bincount(run.ravel(), minlength=nrows * width).reshape(nrows, width)
    return run, xp.cumsum(sizes, axis=1).reshape(-1)


def _run_counts(xp, ordered):
    """For rows sorted ascending: how many entries of the row are ``<=`` each entry."""
    run, ends = _runs(xp, ordered)
    return xp.take(ends, run)


def _sorted_knots(xp, planes):
    """``(R, N)`` for each sorted value, the count of values ``<=`` it, and the values (float64)."""
    ordered = xp.sort(planes, axis=1)
    return _run_counts(xp, ordered), ordered.astype(np.float64)


class Knots:
    """The reference planes' quantile knots, laid out for one ``searchsorted`` over every row
    (rows of one size, or of different sizes for ragged lists).

    Attributes
    ----------
    cumulative : (R, W) int64 ndarray
        Per row, nondecreasing counts ending at that row's size (padded with it).
    values : (R * W,) float64 ndarray
    sizes : (R,) int64 ndarray
        ``N_t`` of each row.
    bases : (R,) int64 ndarray
        Running sum of ``N_t + 1``: row ``r``'s keys lie in ``[bases[r], bases[r] + N_t]``.
    keys : (R * W,) int64 ndarray
        ``cumulative + bases[row]``: nondecreasing over the whole array.
    first : (R,) intp ndarray
        Per row, the position of its first knot.
    """

    def __init__(self, xp, cumulative, values, sizes):
        host_bases = np.concatenate([[0], np.cumsum(np.asarray(sizes, np.int64) + 1)[:-1]])
        self.cumulative = cumulative
        self.values = xp.ascontiguousarray(values).reshape(-1)
        self.sizes = xp.asarray(sizes)
        self.bases = xp.asarray(host_bases)
        self.keys = (cumulative + self.bases[:, None]).reshape(-1)
        self.first = xp.searchsorted(self.keys, self.bases, side="right")


def _interp(xp, source_counts, source_sizes, owner, reference):
    """:func:`numpy.interp` of ``c_s / N_s`` through row `owner` of the `reference` knots.

    Quantiles are compared as integers (see the module docstring); the interpolation is
    :func:`numpy.interp`'s float64 arithmetic.

    Parameters
    ----------
    source_counts, source_sizes : (Q,) int64 ndarray
        ``c_s`` (source pixels at or below each query value) and ``N_s`` of its plane.
    owner : (Q,) intp ndarray
        The reference row of each query.
    reference : Knots
    """
    width = reference.cumulative.shape[1]
    cumulative, keys = reference.cumulative.reshape(-1), reference.keys
    size = xp.take(reference.sizes, owner)
    base = xp.take(reference.bases, owner)
    row_start = owner * width
    bound = source_counts * size // source_sizes
    past = xp.searchsorted(keys, bound + base, side="right") - row_start
    before = xp.maximum(past - 1, 0) + row_start
    reached = xp.take(cumulative, before)
    left = (past == 0) | (reached == 0)
    knot = xp.where(left, xp.take(reference.first, owner),
                    xp.searchsorted(keys, reached + base, side="left"))
    last = left | (past >= width)
    following = xp.where(last, knot, past + row_start)
    x = source_counts / source_sizes.astype(np.float64)
    size = size.astype(np.float64)
    x_knot = xp.take(cumulative, knot) / size
    x_next = xp.take(cumulative, following) / size
    v_knot = xp.take(reference.values, knot)
    v_next = xp.take(reference.values, following)
    exact = last | (x == x_knot)
    span = xp.where(exact, 1.0, x_next - x_knot)
    slope = (v_next - v_knot) / span
    return xp.where(exact, v_knot, slope * (x - x_knot) + v_knot)


@overload
def match_histograms(
        images: Array, reference: Any, *,
        axes: Axes = ..., channel_axis: int | None = ...) -> Array: ...


@overload
def match_histograms(
        images: ArrayList, reference: Any, *,
        axes: Axes = ..., channel_axis: int | None = ...) -> list[Array]: ...


@overload
def match_histograms(
        images: Any, reference: Any, *,
        axes: Axes = ..., channel_axis: int | None = ...) -> Any: ...


def match_histograms(
        images: Any, reference: Any, *,
        axes: Axes = None, channel_axis: int | None = None) -> Any:
    """Match the histogram of every image plane to a reference, in one call.

    Parameters
    ----------
    images : (..., H, W) ndarray
        NumPy or CuPy array, integer or floating. The `axes` form one image; every other axis
        is a batch axis with its own mapping.
    reference : ndarray
        Same backend as `images`. Either one reference for every plane: the image axes only
        (plus the channel axis when `channel_axis` is given), in the order they have in
        `images`, of any size; or one per plane: the dimensions of `images`, each batch axis of
        the same size or 1 (broadcast), image axes of any size. Unsigned `images` need an
        unsigned `reference` (scikit-image counts it with ``bincount``).
    axes : tuple of int, optional
        The axes of one image. None (the default) means ``(-2, -1)``, or with `channel_axis`
        the two trailing axes other than it (``match_histograms(rgb, ref, channel_axis=-1)``
        as in scikit-image).
    channel_axis : int, optional
        The colour axis: a batch axis (each channel matched on its own) that a shared
        `reference` carries too, with the same number of channels.

    Returns
    -------
    matched : ndarray
        Shape of `images`. Without `channel_axis`: float64, or float32 for float16/float32
        input. With `channel_axis`: the dtype of `images` (float16 becomes float32), the float
        values cast like scikit-image does.

    Raises
    ------
    TypeError
        Unsupported dtypes, an unsigned image with a signed or floating reference, arrays on
        different backends, a :class:`numpy.ma.MaskedArray`.
    ValueError
        A reference whose shape does not fit, a channel count that differs, an empty reference,
        NaN or infinity in floating input.

    See Also
    --------
    skimage.exposure.match_histograms : reproduced per plane.

    Notes
    -----
    Each plane's result equals ``skimage.exposure.match_histograms(plane, reference_plane)``
    (with `channel_axis`, the per-channel result cast as scikit-image does); the tests check
    1e-6 and the arithmetic is :func:`numpy.interp`'s, so results agree to the last bit in
    practice. Integer inputs use per-level tables (one ``bincount``); floating ones a sort per
    plane. On CuPy, images and reference of one dtype (uint8 to int32/uint32, float32, float64;
    planes of at most 2**20 pixels) run fused kernels, bit for bit the same: both sorted per
    plane, each pixel matched by rank; integers without synchronisation, floats with one (the
    NaN check). Other CuPy input synchronizes once for the level range or the NaN check.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import match_histograms
    >>> images = np.array([[[0, 1], [2, 3]], [[3, 3], [0, 1]]], dtype=np.uint8)
    >>> match_histograms(images, np.array([[10, 10], [20, 30]], dtype=np.uint8))
    array([[[10., 10.],
            [20., 30.]],
    <BLANKLINE>
           [[30., 30.],
            [10., 10.]]])
    """
    xp = array_module(images, reference=reference)
    check_images(images, xp)
    if not hasattr(reference, "dtype") or not hasattr(reference, "ndim"):
        raise TypeError(f"`reference` must be an array, got {type(reference).__qualname__}")
    refuse_masked(reference, "reference")
    images, reference = native(images), native(reference)
    dtype, ref_dtype = np.dtype(images.dtype), np.dtype(reference.dtype)
    if ref_dtype.kind not in "uif":
        raise TypeError(f"`reference` must have an integer or real floating dtype, got {ref_dtype}")
    if dtype.kind == "u" and ref_dtype.kind != "u":
        raise TypeError(f"`reference` must be unsigned like `images` ({dtype}), got {ref_dtype}")
    axes, channel_axis = image_axes(axes, channel_axis, images.shape)
    ref_planes, owner = _reference_planes(xp, images, reference, axes, channel_axis,
                                          host_owner=True)
    planes, batch_shape, image_shape = _planes.to_planes(xp, images, axes)
    # the result's float dtype at once where no channel cast follows: fused kernels write it
    matched = xp.empty(planes.shape, np.float64 if channel_axis is not None else cdf_dtype(dtype))
    if planes.size:
        _match_planes(xp, planes, ref_planes, owner, matched)
    if channel_axis is not None:
        matched = matched.astype(dtype)
    if np.dtype(matched.dtype).kind == "f":
        matched = matched.astype(cdf_dtype(dtype), copy=False)
    return _planes.from_planes(xp, matched, batch_shape, image_shape, axes)


def _match_planes(xp, planes, ref_planes, owner, matched):
    """Match every row of ``(P, N_s)`` `planes` to row ``owner[p]`` of `ref_planes` into `matched`
    (`owner`: ``(P,)`` intp on the host; `matched` float64, or float32 taking the float64 match
    cast)."""
    if _engine.match(xp, planes, ref_planes, owner, matched):
        return
    if matched.dtype == np.float64:
        _portable_match(xp, planes, ref_planes, owner, matched)
        return
    wide = xp.empty(matched.shape, np.float64)  # the portable arithmetic is float64's
    _portable_match(xp, planes, ref_planes, owner, wide)
    matched[...] = wide


def _portable_match(xp, planes, ref_planes, owner, matched):
    """:func:`_match_planes` in array operations, into float64 `matched`."""
    owner = xp.asarray(owner)
    nplanes, source_size = planes.shape
    reference_size = ref_planes.shape[1]
    integers = np.dtype(planes.dtype).kind in "iu" and np.dtype(ref_planes.dtype).kind in "iu"
    for name, values in (("images", planes), ("reference", ref_planes)):
        # sync: NaN has no quantile
        if np.dtype(values.dtype).kind == "f" and values.size and not bool(xp.isfinite(values).all()):
            raise ValueError(f"`{name}` must not contain NaN or infinity")
    if source_size * reference_size >= 1 << 62:
        raise ValueError("`images` and `reference` planes are too large to compare quantiles "
                         f"exactly ({source_size} x {reference_size} pixels)")
    if integers:
        low = int(min(planes.min(), ref_planes.min()))  # sync: the table width is a shape
        width = int(max(planes.max(), ref_planes.max())) - low + 1
        # the level tables (about 32 bytes per level per plane) must fit, else sort instead
        table_bytes = 32 * width * (nplanes + ref_planes.shape[0])
        integers = width <= MAX_LEVELS and table_bytes <= available_memory(xp) // 2
    if integers:
        reference = Knots(xp, *_level_knots(xp, ref_planes, low, width),
                          np.full(ref_planes.shape[0], reference_size, np.int64))
        source_cumulative, _ = _level_knots(xp, planes, low, width)
        queries = xp.broadcast_to(owner[:, None], (nplanes, width))
        tables = _interp(xp, source_cumulative.reshape(-1),
                         xp.full(nplanes * width, source_size, np.int64), queries.reshape(-1),
                         reference).reshape(nplanes, width)
        for rows, cols in _planes.blocks(xp, nplanes, source_size, width):
            n = rows.stop - rows.start
            index = xp.add(planes[rows, cols], _planes.plane_offsets(xp, n, width) - low,
                           dtype=np.intp)
            matched[rows, cols] = xp.take(tables[rows].reshape(-1), index)
        return
    reference = Knots(xp, *_sorted_knots(xp, ref_planes),
                      np.full(ref_planes.shape[0], reference_size, np.int64))

    def match_block(block):
        rows = block[0]
        n = rows.stop - rows.start
        values = planes[rows]
        order = xp.argsort(values, axis=1)
        run, ends = _runs(xp, xp.take_along_axis(values, order, axis=1))
        # one query per distinct value (run), as scikit-image interpolates its unique values
        first_of_run = xp.zeros(run.shape, bool)
        first_of_run[:, 0] = True
        first_of_run[:, 1:] = run[:, 1:] != run[:, :-1]
        runs = run[first_of_run]
        result = _interp(xp, xp.take(ends, runs), xp.full(runs.shape, source_size, np.int64),
                         xp.take(owner[rows], runs // source_size), reference)
        out = xp.empty((n, source_size), np.float64)
        xp.put_along_axis(out, order, xp.take(result, xp.cumsum(first_of_run.ravel()) - 1).reshape(
            n, source_size), axis=1)
        matched[rows] = out

    _planes.map_blocks(xp, match_block, _planes.plane_blocks(xp, nplanes, source_size, 1))
