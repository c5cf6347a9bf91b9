"""Ragged batches: a list or tuple of arrays of any sizes in, a list of results out.

Each entry follows the rules of one array (its own `axes`, `channel_axis`, mask, batch axes: an
entry ``(C, H, W)`` adds ``C`` planes). Unmasked level-indexed equalization on the compiled
engine reads every plane where it lies and writes each entry's own result
(:func:`gpu_histeq._engine.equalize_separate`); otherwise the planes of every entry are packed
once into one buffer, one group of whole images at a time (``_lists.PACK_PIXELS``, so memory stays bounded),
and go through :mod:`._packed` together: one segmented range reduction, ``bincount`` over per-plane
offsets, the tables of every plane at once, one gather. Python loops run over the entries only to
check them, to copy them into the buffer and to hand back views of the result.

Results equal the per-image calls bit for bit. Engines: each packed group goes to the engine
steps (:func:`gpu_histeq._engine.equalize_packed`, :func:`~gpu_histeq._engine.packed_counts`,
:func:`~gpu_histeq._engine.apply_packed`): the compiled CPU kernels and the CUDA kernels take the
per-plane offsets themselves (no padding; on the CPU whole planes on every thread, on the GPU the
blocks each plane needs in one launch), and the portable packed path above runs where an engine
declines (a case its kernels do not cover, an irregular float plane, everything inside
:func:`gpu_histeq._engine.portable`). ``apply_lut`` on NumPy is the portable gather.
``luminance=True`` takes buckets of similar sizes on every backend (:func:`_luma_buckets`:
padded ``(rows, 3, W)`` arrays through the in-memory luma path, so the colour conversions are
exactly its own; a loop over buckets, not images).
:func:`match_histograms` is :mod:`.ragged_matching` (level tables or one sort, per-plane sizes).
:func:`gpu_histeq.clahe` and :func:`gpu_histeq.equalize_adapthist` refuse lists (tile geometry
is per image shape), and so does every function for lists of Dask arrays or tensors.
"""

import functools
import inspect
import math

import numpy as np

from .. import _engine, _validate
from .. import equalize as _equalize
from .._backend import array_module
from .._binning import UniformBinning, range_binning
from .._tables import cdf_dtype, cdf_table
from .._validate import (METHODS, check_finite, check_levels_nbins, check_lut_inputs,
                         check_lut_shape, check_luminance, check_luminance_order,
                         check_nbins, check_out,
                         resolve_method)
from . import _packed
from ._lists import (Layout, arrays, masks_for, pack, packed_group, packed_groups, per_entry,
                     resolve_axes)
from ._packed import plane_starts
from .ragged_matching import match_histograms

__all__ = ["call", "equalize_hist", "histogram", "cumulative_distribution", "apply_lut"]

#: Size buckets per doubling of the plane size on the luma path (padding <= 19 %).
BUCKETS_PER_OCTAVE = 4
#: Padded pixels per in-memory luma call on a bucket (whole images; a larger one alone).
BUCKET_PIXELS = 1 << 22


def call(function, images, *args, **kwargs):
    """Run the ragged version of the public `function` on the list or tuple `images`."""
    name = function.__name__
    handler = _HANDLERS.get(name)
    if handler is None:
        raise TypeError(
            f"`images` must be one array for {name}, got a {type(images).__name__}: its tile "
            "geometry (tile shape, padding, clip limit) follows each image's size, which "
            f"gpu_histeq does not batch across sizes; call {name} per image, or on one array "
            "per size")
    # the public function's own signature and defaults, so both always agree; a parameter the
    # list path does not know is refused unless left at its default
    signature = inspect.signature(function)
    bound = signature.bind(images, *args, **kwargs)
    given = dict(bound.arguments)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    del arguments["images"]
    accepted = inspect.signature(handler).parameters
    for param in [p for p in arguments if p not in accepted]:
        if param in given and given[param] is not signature.parameters[param].default:
            raise TypeError(f"`{param}` is not supported by {name} when `images` is a list: "
                            f"call {name} per image for `{param}={given[param]!r}`")
        del arguments[param]
    return handler(images, **arguments)


# ---------------------------------------------------------------------------------------------
# equalize_hist

def equalize_hist(images, nbins, *, axes, mask, method, channel_axis, luminance, out):
    """:func:`gpu_histeq.equalize_hist` of every image of a list, in one batched computation."""
    nbins = check_nbins(nbins)
    luminance = check_luminance_order(luminance)
    items, xp, dtype = arrays(images, "equalize_hist")
    outs = per_entry(out, items, "out")
    if not items:
        if method is not None and method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS} or None, got {method!r}")
        per_entry(mask, items, "mask")
        return []
    method = resolve_method(method, dtype)
    level_indexed = method in ("opencv", "pil")
    if level_indexed:
        nbins = check_levels_nbins(nbins, dtype, method)
    resolved = [resolve_axes(axes, channel_axis, item.shape) for item in items]
    axes_list = [a for a, _ in resolved]
    result_dtype = dtype if level_indexed else cdf_dtype(dtype)
    for item, o in zip(items, outs):
        if o is not None:
            array_module(item, out=o)
            check_out(o, item.shape, o.dtype if luminance else result_dtype, xp)
    _validate.check_outs_apart(outs)
    masks = masks_for(mask, items, xp)
    layout = Layout(items, axes_list)
    if luminance:
        for item, (_, channel) in zip(items, resolved):
            check_luminance(item.shape, dtype, channel, method)
        equalize_rows = functools.partial(_equalize.equalize_hist, nbins=nbins, axes=(2,),
                                          method=method, channel_axis=1, luminance=luminance)
        results = _luma_buckets(xp, items, masks, _LumaRows(items, resolved), equalize_rows)
    else:
        results = []
        for i0, i1 in layout.groups(xp):
            if masks is None and _engine.separate_planes(xp, dtype, method, nbins):
                # each plane read and written where it lies: no packing copy
                buffers, separate = layout.separate_results(xp, result_dtype, i0, i1)
                _engine.equalize_separate(xp, layout.planes(xp, items, i0, i1),
                                          np.diff(layout.first_plane[i0:i1 + 1]),
                                          layout.sizes[i0:i1], method, buffers)
                results += separate
                continue
            starts, values, packed_mask = packed_group(xp, layout, items, masks, axes_list,
                                                       i0, i1)
            packed = xp.empty(values.shape, result_dtype)
            if not _engine.equalize_packed(xp, values, packed_mask, starts, method, nbins,
                                           packed):
                _packed.equalize(xp, values, packed_mask, starts, method, nbins, result_dtype,
                                 out=packed)
            results += layout.unpack(xp, packed, i0, i1)
    for k, o in enumerate(outs):
        if o is not None:
            if np.dtype(o.dtype) != np.dtype(results[k].dtype):
                raise TypeError(f"`out` must have dtype {results[k].dtype}, got {o.dtype}")
            o[...] = results[k]
            results[k] = o
    return results


class _LumaRows:
    """How each colour image becomes rows ``(P, 3, N)`` of a bucket and back: its channel axis
    kept beside its flattened image axes, one row per plane."""

    def __init__(self, items, resolved):
        self.items, self.resolved = items, resolved
        shapes = [tuple(n for a, n in enumerate(item.shape) if a != c)
                  for item, (_, c) in zip(items, resolved)]
        self.nplanes = np.asarray([math.prod(s) for s in shapes], np.int64)
        self.sizes = np.asarray([math.prod(item.shape[a] for a in axes)
                                 for item, (axes, _) in zip(items, resolved)], np.int64)
        self.nplanes //= np.maximum(self.sizes, 1)

    def to_rows(self, xp, array, i):
        axes, channel = self.resolved[i]
        last = tuple(range(array.ndim - 1 - len(axes), array.ndim))
        moved = xp.moveaxis(array, (channel,) + axes, last)
        return moved.reshape(int(self.nplanes[i]), array.shape[channel], int(self.sizes[i]))

    def from_rows(self, xp, part, i):
        axes, channel = self.resolved[i]
        shape = self.items[i].shape
        last = tuple(range(len(shape) - 1 - len(axes), len(shape)))
        order = [a for a in range(len(shape)) if a not in (channel,) + axes]
        moved = part.reshape(tuple(shape[a] for a in order) + (shape[channel],)
                             + tuple(shape[a] for a in axes))
        return xp.moveaxis(moved, last, (channel,) + axes)


def _luma_buckets(xp, items, masks, rows_of, equalize_rows):
    """Every colour image through one in-memory luma call per bucket of similar sizes.

    Images sorted by plane size are cut into buckets whose sizes differ by less than a factor
    ``2 ** (1 / BUCKETS_PER_OCTAVE)``, at most about ``BUCKET_PIXELS`` padded pixels each. A
    bucket is packed into ``(rows, 3, W)`` (``W`` its largest plane; one row per plane), the
    padding zero and left out of the mask, and goes through ``equalize_rows(padded,
    mask=selected)`` once (the in-memory ``equalize_hist(..., luminance=True)``, in the engine it
    selects), so the colour conversions are exactly its own. Each plane's histogram, and so its
    table, is exactly its own. Python loops over the images pack and unpack; the computation
    runs once per bucket.
    """
    results = [None] * len(items)
    nplanes, sizes = rows_of.nplanes, rows_of.sizes
    filled = np.flatnonzero((sizes > 0) & (nplanes > 0))
    for i in np.flatnonzero((sizes == 0) | (nplanes == 0)).tolist():
        # nothing to compute: the in-memory function's own empty result
        results[i] = equalize_rows(xp.zeros((0, 3, 1), items[i].dtype), mask=None).reshape(
            items[i].shape)
    if filled.size == 0:
        return results
    order = filled[np.argsort(sizes[filled], kind="stable")]
    octave = np.floor(np.log2(sizes[order]) * BUCKETS_PER_OCTAVE).astype(np.int64)
    for bucket in np.split(order, np.flatnonzero(np.diff(octave)) + 1):
        width = int(sizes[bucket[-1]])
        # groups of whole images of at most about BUCKET_PIXELS padded pixels
        group_of = plane_starts(nplanes[bucket] * width)[:-1] // BUCKET_PIXELS
        for group in np.split(bucket, np.flatnonzero(np.diff(group_of)) + 1):
            rows = plane_starts(nplanes[group])
            padded = xp.zeros((int(rows[-1]), 3, width), items[0].dtype)
            exact = masks is None and int(sizes[group].min()) == width  # no padding, no mask
            selected = None if exact else xp.zeros((int(rows[-1]), 1, width), bool)
            for k, i in enumerate(group.tolist()):  # packing: one copy per image
                part = (slice(int(rows[k]), int(rows[k + 1])), slice(None),
                        slice(0, int(sizes[i])))
                padded[part] = rows_of.to_rows(xp, items[i], i)
                if masks is not None:  # pixels selected in every channel count
                    mask_rows = rows_of.to_rows(xp, masks[i], i).all(axis=1)
                    selected[part] = _selecting(xp, mask_rows, i).reshape(selected[part].shape)
                elif not exact:
                    selected[part] = True
            out = equalize_rows(padded, mask=selected)
            for k, i in enumerate(group.tolist()):
                part = out[int(rows[k]):int(rows[k + 1]), :, :int(sizes[i])]
                results[i] = rows_of.from_rows(xp, part, i)
    return results


def _selecting(xp, planes, image):
    """One image's ``(P, N)`` mask planes, checked to select a pixel of every plane."""
    empty = np.flatnonzero(~np.asarray(planes.any(axis=1).tolist(), bool))  # sync: an error
    if empty.size:
        raise ValueError(f"`mask` selects no pixel of plane {int(empty[0])} of image {image} "
                         "(planes counted in C order over its batch axes)")
    return planes


# ---------------------------------------------------------------------------------------------
# histogram, cumulative_distribution

def _histograms(images, nbins, axes, mask, channel_axis, name, cumulative):
    nbins = check_nbins(nbins)
    items, xp, dtype = arrays(images, name)
    if not items:
        per_entry(mask, items, "mask")
        return []
    resolved = [resolve_axes(axes, channel_axis, item.shape) for item in items]
    axes_list = [a for a, _ in resolved]
    masks = masks_for(mask, items, xp)
    layout = Layout(items, axes_list)
    results = []
    for i0, i1, starts, values, packed_mask in packed_groups(xp, layout, items, masks, axes_list):
        if values.size:
            low, high, finite = _packed.plane_stats(xp, values, packed_mask, starts)
            check_finite(finite)
            bins = range_binning(xp, nbins, low, high, masked=packed_mask is not None)
            counts = _engine.packed_counts(xp, values, packed_mask, starts, bins)
            if counts is None:
                counts = _packed.histograms(xp, values, packed_mask, starts, bins)
            centers = bins.centers(slice(None), len(starts) - 1)
            if cumulative:
                counts = cdf_table(xp, counts, dtype)
            if dtype.kind != "f":  # sync: an integer image's width is its widest plane's levels
                spans = (high.astype(np.int64) - low.astype(np.int64) + 1).tolist()
        for i in range(i0, i1):
            batch = layout.shapes[i][0]
            rows = slice(int(layout.first_plane[i] - layout.first_plane[i0]),
                         int(layout.first_plane[i + 1] - layout.first_plane[i0]))
            if layout.sizes[i] == 0 or rows.stop == rows.start:
                part = _empty_histogram(xp, dtype, rows.stop - rows.start, nbins)
                if cumulative:
                    part = (cdf_table(xp, part[0], dtype), part[1])
            else:
                width = nbins if dtype.kind == "f" else max(spans[rows])
                part = (counts[rows, :width], centers[rows, :width])
            results.append(tuple(p.reshape(batch + (p.shape[-1],)) for p in part))
    return results


def _empty_histogram(xp, dtype, nplanes, nbins):
    # as the per-image call: numpy.histogram of an empty array uses the range [0, 1]
    if dtype.kind == "f":
        first = xp.zeros(nplanes, dtype)
        centers = UniformBinning(xp, nbins, first, first + dtype.type(1)).centers(
            slice(None), nplanes)
    else:
        centers = xp.broadcast_to(xp.arange(nbins, dtype=np.intp), (nplanes, nbins)).copy()
    return xp.zeros((nplanes, nbins), np.int64), centers


def histogram(images, nbins, *, axes, mask, channel_axis=None):
    """:func:`gpu_histeq.histogram` of every image of a list: a list of ``(counts, centers)``."""
    return _histograms(images, nbins, axes, mask, channel_axis, "histogram", False)


def cumulative_distribution(images, nbins, *, axes, mask, channel_axis=None):
    """:func:`gpu_histeq.cumulative_distribution` of every image of a list: ``(cdf, centers)``."""
    return _histograms(images, nbins, axes, mask, channel_axis, "cumulative_distribution", True)


# ---------------------------------------------------------------------------------------------
# apply_lut

def apply_lut(images, lut, *, axes, channel_axis=None):
    """:func:`gpu_histeq.apply_lut` of every image of a list: one table for all, or a list of
    tables (one ``(L,)`` or ``(batch..., L)`` per image, one dtype, any lengths)."""
    items, xp, _ = arrays(images, "apply_lut")
    native = getattr(_validate, "native", lambda array: array)
    shared = not isinstance(lut, (list, tuple))
    luts = [lut] * len(items) if shared else per_entry(lut, items, "lut")
    if shared and hasattr(lut, "ndim") and lut.ndim != 1:
        raise ValueError("`lut` must be one table (L,) shared by every image, or a list of "
                         f"tables (one per image) when `images` is a list, got shape {lut.shape}")
    if not items:
        return []
    axes_list = [resolve_axes(axes, channel_axis, item.shape)[0] for item in items]
    layout = Layout(items, axes_list)
    for k, (item, table) in enumerate(zip(items, luts)):
        array_module(item, lut=table)
        check_lut_inputs(item, table)
        batch, _, item_axes = layout.shapes[k]
        check_lut_shape(table, batch, item.shape, item_axes)
    luts = [native(table) for table in luts]
    kinds = {np.dtype(table.dtype) for table in luts}
    if len(kinds) > 1:
        raise TypeError(f"`lut` tables must share one dtype, got {sorted(map(str, kinds))}")
    lengths = np.asarray([table.shape[-1] for table in luts], np.int64)
    results = []
    for i0, i1 in layout.groups(xp):
        starts = layout.starts(i0, i1)
        values = pack(xp, items[i0:i1], axes_list[i0:i1])
        first = layout.first_plane[i0:i1 + 1] - layout.first_plane[i0]
        _check_lut_range(xp, values, starts, first, lengths[i0:i1], i0)
        if shared:
            tables = xp.ascontiguousarray(lut.reshape(1, -1))
        else:  # one row per plane, padded to the longest table
            tables = xp.zeros((int(first[-1]), int(lengths[i0:i1].max(initial=1))), lut[0].dtype)
            for k in range(i0, i1):
                rows = slice(int(first[k - i0]), int(first[k - i0 + 1]))
                tables[rows, :lengths[k]] = luts[k].reshape(-1, int(lengths[k]))
        packed = xp.empty(values.shape, tables.dtype)
        if not _engine.apply_packed(xp, values, starts, tables, packed):
            _packed.apply_tables(xp, values, starts, tables, out=packed)
        results += layout.unpack(xp, packed, i0, i1)
    return results


def _check_lut_range(xp, values, starts, first, lengths, i0):
    """Raise unless every pixel of image ``i`` lies in ``[0, lengths[i])`` (its table)."""
    sizes = np.diff(starts)
    if not sizes.any():
        return
    low, high, _ = _packed.plane_stats(xp, values, None, starts)
    filled = sizes > 0
    low, high = np.asarray(low.tolist()), np.asarray(high.tolist())  # sync: an error
    owner = np.repeat(np.arange(len(lengths)), np.diff(first))
    bad = filled & ((low < 0) | (high >= lengths[owner]))
    if bad.any():
        image = int(owner[np.flatnonzero(bad)[0]])
        rows = owner == image
        length = int(lengths[image])
        raise ValueError(f"`images` values must lie in [0, {length}) to index `lut`, got values "
                         f"in [{low[rows & filled].min()}, {high[rows & filled].max()}] in "
                         f"image {image + i0}")


_HANDLERS = {"equalize_hist": equalize_hist, "histogram": histogram,
             "cumulative_distribution": cumulative_distribution, "apply_lut": apply_lut,
             "match_histograms": match_histograms}
