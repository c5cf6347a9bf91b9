""":func:`gpu_histeq.match_histograms` of a list of images of any sizes, in one computation.

The planes of the images are packed into one buffer and the planes of their references into
another; every plane has its own size (``N_s`` per source plane, ``N_t`` per reference plane).
The steps are those of :mod:`gpu_histeq.matching` with per-plane sizes:

* integer images and references -- level counts of every plane by one ``bincount`` over
  per-plane offsets (one level range for the whole batch: each plane's table does not depend on
  it), cumulative counts, and one quantile lookup per (plane, level);
* otherwise -- every plane's pixels sorted (:func:`._packed.segment_argsort`: row sorts of
  planes of similar sizes), the runs of equal values, and one quantile lookup per run.

The lookup compares quantiles as integers, ``c_t * N_s <= c_s * N_t``, over the reference rows
laid one after the other with keys ``cumulative + base[row]`` (``base`` the running sum of
``N_t + 1``), then interpolates with :func:`numpy.interp`'s float64 arithmetic: the numbers of
the per-image calls.
"""

import numpy as np

from .. import _validate
from .._backend import array_module
from .._binning import LevelBinning
from .._tables import cdf_dtype
from ..matching import MAX_LEVELS, Knots, _interp, _reference_planes
from . import _packed
from ._lists import Layout, arrays, pack, per_entry, resolve_axes
from ._packed import plane_starts

__all__ = ["match_histograms"]


def match_histograms(images, reference, *, axes, channel_axis):
    """:func:`gpu_histeq.match_histograms` of every image of a list.

    `reference` is one array (the form the per-image call takes, used for every image) or a
    list with one reference per image.
    """
    items, xp, dtype = arrays(images, "match_histograms")
    shared = not isinstance(reference, (list, tuple))
    references = [reference] * len(items) if shared else per_entry(reference, items, "reference")
    if not items:
        return []
    native = getattr(_validate, "native", lambda array: array)
    resolved = [resolve_axes(axes, channel_axis, item.shape) for item in items]
    ref_planes, owners, kinds = [], [], set()
    for k, (item, ref, (item_axes, channel)) in enumerate(zip(items, references, resolved)):
        array_module(item, reference=ref)
        if not hasattr(ref, "dtype") or not hasattr(ref, "ndim"):
            raise TypeError(f"`reference` must be an array, got {type(ref).__qualname__}")
        ref = native(ref)
        ref_dtype = np.dtype(ref.dtype)
        if ref_dtype.kind not in "uif":
            raise TypeError("`reference` must have an integer or real floating dtype, got "
                            f"{ref_dtype}")
        if dtype.kind == "u" and ref_dtype.kind != "u":
            raise TypeError(f"`reference` must be unsigned like `images` ({dtype}), got "
                            f"{ref_dtype}")
        kinds.add(ref_dtype)
        planes, owner = _reference_planes(xp, item, ref, item_axes, channel)
        if shared and ref_planes and planes.shape == ref_planes[0].shape:
            owners.append(owner)  # the one reference: its planes are packed once
            continue
        owners.append(owner + sum(p.shape[0] for p in ref_planes))
        ref_planes.append(planes)
    if len(kinds) > 1:
        raise TypeError(f"`reference` arrays must share one dtype, got {sorted(map(str, kinds))}")
    layout = Layout(items, [a for a, _ in resolved])
    ref_starts = plane_starts(np.concatenate([np.full(p.shape[0], p.shape[1], np.int64)
                                              for p in ref_planes]))
    ref_values = xp.concatenate([p.reshape(-1) for p in ref_planes])
    results = []
    for i0, i1 in layout.groups(xp):
        starts = layout.starts(i0, i1)
        values = pack(xp, items[i0:i1], layout_axes(layout, i0, i1))
        owner = xp.concatenate(owners[i0:i1]) if i1 > i0 else xp.zeros(0, np.intp)
        matched = xp.empty(values.shape, np.float64)
        if values.size:
            match_packed(xp, values, starts, ref_values, ref_starts, owner, matched)
        if channel_axis is not None:
            matched = matched.astype(dtype)
        if np.dtype(matched.dtype).kind == "f":
            matched = matched.astype(cdf_dtype(dtype), copy=False)
        results += layout.unpack(xp, matched, i0, i1)
    return results


def layout_axes(layout, i0, i1):
    return [layout.shapes[i][2] for i in range(i0, i1)]


def match_packed(xp, values, starts, ref_values, ref_starts, owner, matched):
    """Match every packed source plane ``p`` to reference plane ``owner[p]`` into `matched`."""
    sizes, ref_sizes = np.diff(starts), np.diff(ref_starts)
    for name, array in (("images", values), ("reference", ref_values)):
        # sync: NaN has no quantile
        if np.dtype(array.dtype).kind == "f" and array.size and not bool(xp.isfinite(array).all()):
            raise ValueError(f"`{name}` must not contain NaN or infinity")
    if int(sizes.max()) * int(ref_sizes.max()) >= 1 << 62:
        raise ValueError("`images` and `reference` planes are too large to compare quantiles "
                         f"exactly ({int(sizes.max())} x {int(ref_sizes.max())} pixels)")
    integers = np.dtype(values.dtype).kind in "iu" and np.dtype(ref_values.dtype).kind in "iu"
    if integers:
        low = int(min(values.min(), ref_values.min()))  # sync: the table width is a shape
        width = int(max(values.max(), ref_values.max())) - low + 1
        table_bytes = 32 * width * (len(sizes) + len(ref_sizes))
        memory = getattr(_validate, "available_memory", lambda xp: 1 << 62)(xp)
        integers = width <= MAX_LEVELS and table_bytes <= memory // 2
    if integers:
        _match_levels(xp, values, starts, ref_values, ref_starts, owner, low, width, matched)
    else:
        _match_sorted(xp, values, starts, ref_values, ref_starts, owner, matched)


def _level_cumulative(xp, values, starts, low, width):
    """``(P, width)`` cumulative counts of levels ``low + w`` of every packed plane."""
    nplanes = len(starts) - 1
    bins = LevelBinning(xp, width, xp.full(nplanes, low, np.intp))
    return xp.cumsum(_packed.histograms(xp, values, None, starts, bins), axis=1), bins


def _match_levels(xp, values, starts, ref_values, ref_starts, owner, low, width, matched):
    """Integer planes: a table per source plane over the batch's levels, then one gather."""
    ref_cumulative, _ = _level_cumulative(xp, ref_values, ref_starts, low, width)
    levels = xp.arange(width, dtype=np.float64) + float(low)
    reference = Knots(xp, ref_cumulative,
                            xp.broadcast_to(levels, ref_cumulative.shape), np.diff(ref_starts))
    source_cumulative, bins = _level_cumulative(xp, values, starts, low, width)
    nplanes = len(starts) - 1
    source_sizes = xp.asarray(np.maximum(np.diff(starts), 1))  # empty planes: never gathered
    queries = xp.broadcast_to(owner[:, None], (nplanes, width)).reshape(-1)
    sizes = xp.broadcast_to(source_sizes[:, None], (nplanes, width)).reshape(-1)
    tables = _interp(xp, source_cumulative.reshape(-1), sizes, queries, reference)
    tables = tables.reshape(nplanes, width)
    _packed.gather_tables(xp, values, starts, bins, tables, matched)


def _sorted_runs(xp, values, starts):
    """Packed planes sorted by (plane, value), with their runs of equal values.

    Returns
    -------
    order : (M,) intp ndarray
        Sorting permutation of the packed pixels.
    ordered : (M,) ndarray
        The sorted values.
    run : (M,) intp ndarray
        Run number of each sorted pixel (runs numbered along the buffer).
    ends : (runs,) int64 ndarray
        For each run, its plane's pixels ``<=`` the run's value.
    plane : (M,) intp ndarray
        Plane of each sorted pixel.
    new : (M,) bool ndarray
        True where a run starts.
    """
    plane = _packed.local_planes(xp, starts, (0, len(starts) - 1, 0, int(starts[-1])))
    order = _packed.segment_argsort(xp, values, starts)
    ordered = xp.take(values, order)
    new = xp.ones(ordered.shape, bool)
    new[1:] = (ordered[1:] != ordered[:-1]) | (plane[1:] != plane[:-1])
    run = xp.cumsum(new) - 1
    run_sizes = xp.bincount(run)
    plane_start = xp.asarray(starts[:-1])
    ends = xp.cumsum(run_sizes) - xp.take(plane_start, xp.take(plane, xp.flatnonzero(new)))
    return order, ordered, run, ends, plane, new


def _match_sorted(xp, values, starts, ref_values, ref_starts, owner, matched):
    """Floating planes: one sort of every plane, one lookup per run of equal source values."""
    _, ref_ordered, ref_run, ref_ends, _, _ = _sorted_runs(xp, ref_values, ref_starts)
    ref_sizes = np.diff(ref_starts)
    width = int(ref_sizes.max())
    # (R, W) rows padded with their last entry: cumulative N_t and the last value, which adds
    # no knot (see the module notes)
    columns = xp.minimum(xp.arange(width), xp.asarray(ref_sizes - 1)[:, None])
    index = xp.asarray(ref_starts[:-1])[:, None] + columns
    reference = Knots(xp, xp.take(xp.take(ref_ends, ref_run), index),
                            xp.take(ref_ordered, index).astype(np.float64), ref_sizes)
    order, _, run, ends, plane, new = _sorted_runs(xp, values, starts)
    run_plane = xp.take(plane, xp.flatnonzero(new))
    source_sizes = xp.asarray(np.diff(starts))
    result = _interp(xp, ends, xp.take(source_sizes, run_plane), xp.take(owner, run_plane),
                    reference)
    matched[order] = xp.take(result, run)
