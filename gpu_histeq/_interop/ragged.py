"""Ragged batches: a list or tuple of arrays of any sizes in, a list of results out.

Each entry follows the rules of one array (its own `axes`, `channel_axis`, mask, batch axes: an
entry ``(C, H, W)`` adds ``C`` planes). The planes of every entry are packed once into one
buffer, one group of whole images at a time (``PACK_PIXELS``, so memory stays bounded), and go
through :mod:`._packed` together: one segmented range reduction, ``bincount`` over per-plane
offsets, the tables of every plane at once, one gather. Python loops run over the entries only to
check them, to copy them into the buffer and to hand back views of the result.

Results equal the per-image calls bit for bit. Engines: CuPy lists (and everything inside
:func:`gpu_histeq._engine.portable`) run the packed portable path above; no CUDA kernel takes
per-plane offsets yet. NumPy lists of :func:`equalize_hist`, when the compiled extension is
selected, go to the compiled engine in buckets of similar plane sizes (:func:`_bucketed`: each
plane padded to its bucket's width, the padding masked out; a loop over buckets, not images),
which measured several times faster than the portable path on the CPU
(``benchmarks/results/ragged-*.md``); histograms and ``apply_lut`` stay portable.
:func:`gpu_histeq.clahe` and :func:`gpu_histeq.equalize_adapthist` refuse lists (tile geometry
is per image shape), and so does every function for lists of Dask arrays or tensors, and
``equalize_hist`` for ``luminance=True``.
"""

import functools
import inspect
import math

import numpy as np

from .. import _engine, _planes, _validate
from .. import equalize as _equalize
from .._backend import array_module, backend_name, is_cupy, is_dask, is_tensor
from .._binning import UniformBinning, range_binning
from .._tables import cdf_dtype, cdf_table
from .._validate import (METHODS, check_finite, check_images, check_levels_nbins,
                         check_lut_inputs, check_lut_shape, check_mask, check_nbins, check_out,
                         normalize_axes, resolve_method)
from . import _packed
from ._packed import plane_starts

__all__ = ["call", "equalize_hist", "histogram", "cumulative_distribution", "apply_lut"]

#: Pixels packed into one buffer at a time on the CPU (whole images; a larger image alone).
PACK_PIXELS = 1 << 24
#: The same on the GPU.
PACK_PIXELS_GPU = 1 << 27
#: Size buckets per doubling of the plane size on the compiled CPU path (padding <= 19 %).
BUCKETS_PER_OCTAVE = 4
#: Padded pixels per call of the compiled engine on a bucket (whole images; a larger one alone).
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
    # the public function's own signature and defaults, so both always agree
    bound = inspect.signature(function).bind(images, *args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    del arguments["images"]
    return handler(images, **arguments)


def _unsupported(name, others, defaults):
    """Refuse parameters the list path does not implement (any value but their default)."""
    for param, value in others.items():
        if value is not defaults.get(param, None) and value != defaults.get(param, None):
            raise TypeError(f"`{param}` is not supported by {name} when `images` is a list: "
                            f"call {name} per image for `{param}={value!r}`")


def _axes(axes, channel_axis, shape):
    """The image axes and channel axis of one entry, by the rule of a single array."""
    if hasattr(_validate, "image_axes"):
        return _validate.image_axes(axes, channel_axis, shape)
    axes = normalize_axes((-2, -1) if axes is None else axes, len(shape))
    return axes, _validate.check_channel_axis(channel_axis, axes, len(shape))


# ---------------------------------------------------------------------------------------------
# checks and layout

def _arrays(images, name):
    """The entries of `images` as a list, their array module and their one dtype."""
    items = list(images)
    first = {}
    for k, item in enumerate(items):
        if is_dask(item):
            raise TypeError(
                f"`images` entry {k} is a Dask array: lists of Dask arrays are not supported; "
                f"call gpu_histeq.{name} on each Dask array (each stays lazy) or compute them")
        if is_tensor(item):
            raise TypeError(f"`images` entry {k} is a tensor: lists take NumPy or CuPy arrays; "
                            f"call gpu_histeq.{name} per tensor, or convert them first")
        backend = backend_name(item)
        if backend is None:
            raise TypeError(f"`images` must be a numpy.ndarray or cupy.ndarray, or a list of them; "
                            f"entry {k} of the list is "
                            f"{type(item).__module__}.{type(item).__qualname__}")
        first.setdefault(backend, k)
    if len(first) > 1:
        raise TypeError(
            "`images` entries must be all numpy.ndarray or all cupy.ndarray, got both "
            f"numpy.ndarray (entry {first['numpy']}) and cupy.ndarray (entry {first['cupy']}); "
            "move them explicitly, gpu_histeq never copies between host and device")
    if not items:
        return items, np, None
    native = getattr(_validate, "native", lambda array: array)
    xp = array_module(items[0])
    dtypes = {}
    for k, item in enumerate(items):
        check_images(item, xp)
        items[k] = item = native(item)
        dtypes.setdefault(np.dtype(item.dtype), k)
    if len(dtypes) > 1:
        (one, i), (other, j) = list(dtypes.items())[:2]
        raise TypeError(f"`images` entries must share one dtype, got {one} (entry {i}) and "
                        f"{other} (entry {j}); convert them first")
    return items, xp, np.dtype(items[0].dtype)


def _per_entry(value, items, param):
    """`value` (None, or a list / tuple with one entry per image) as a list of len(items)."""
    if value is None:
        return [None] * len(items)
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"`{param}` must be a list or tuple (one entry per image) when `images` "
                        f"is a list, got {type(value).__module__}.{type(value).__qualname__}")
    if len(value) != len(items):
        raise ValueError(f"`{param}` must have one entry per image ({len(items)}), "
                         f"got {len(value)}")
    return list(value)


def _masks(mask, items, xp):
    """Masks broadcast to their images, or None; entries None select every pixel."""
    masks = _per_entry(mask, items, "mask")
    if all(m is None for m in masks):
        return None
    result = []
    for item, m in zip(items, masks):
        if m is None:
            m = xp.ones((1,) * item.ndim, bool)
        array_module(item, mask=m)
        result.append(check_mask(m, item, xp))
    return result


class Layout:
    """Where the planes of every image lie in the packed buffers.

    Attributes
    ----------
    shapes : list of (batch_shape, image_shape, axes)
        For :func:`gpu_histeq._planes.from_planes`.
    first_plane : (I + 1,) int64 ndarray
        Image ``i`` owns planes ``first_plane[i]:first_plane[i + 1]``.
    sizes : (I,) int64 ndarray
        Pixels of one plane of each image.
    """

    def __init__(self, items, axes_list):
        self.shapes = []
        nplanes, sizes = [], []
        for item, axes in zip(items, axes_list):
            batch = tuple(n for a, n in enumerate(item.shape) if a not in axes)
            image = tuple(item.shape[a] for a in axes)
            self.shapes.append((batch, image, axes))
            nplanes.append(math.prod(batch))
            sizes.append(math.prod(image))
        self.first_plane = plane_starts(nplanes)
        self.sizes = np.asarray(sizes, np.int64)

    def groups(self, xp):
        """``(i0, i1)`` runs of whole images of at most about ``PACK_PIXELS`` pixels each."""
        budget = PACK_PIXELS_GPU if is_cupy(xp) else PACK_PIXELS
        totals = np.diff(self.first_plane) * self.sizes
        window = plane_starts(totals)[:-1] // budget
        new = np.ones(len(totals), bool)
        new[1:] = window[1:] != window[:-1]
        firsts = np.flatnonzero(new).tolist()
        return list(zip(firsts, firsts[1:] + [len(totals)]))

    def starts(self, i0, i1):
        """``(P + 1,)`` starts of the planes of images ``i0:i1`` in their packed buffer."""
        return plane_starts(np.repeat(self.sizes[i0:i1], np.diff(self.first_plane[i0:i1 + 1])))

    def unpack(self, xp, packed, i0, i1):
        """Views of the packed result of images ``i0:i1``, each in its image's shape."""
        results, start = [], 0
        for i in range(i0, i1):
            batch, image, axes = self.shapes[i]
            nplanes = int(self.first_plane[i + 1] - self.first_plane[i])
            count = nplanes * int(self.sizes[i])
            planes = packed[start:start + count].reshape(nplanes, int(self.sizes[i]))
            results.append(_planes.from_planes(xp, planes, batch, image, axes))
            start += count
        return results


def _pack(xp, arrays, axes_list):
    """One 1-d buffer of the planes of `arrays` one after the other (one copy)."""
    return xp.concatenate([_planes.to_planes(xp, a, axes)[0].reshape(-1)
                           for a, axes in zip(arrays, axes_list)])


def _check_selects(xp, mask, starts, layout, i0):
    """Raise when a mask selects no pixel of a non-empty plane, naming image and plane."""
    if mask is None:
        return
    empty = np.flatnonzero((_packed.selected_counts(xp, mask, starts) == 0) & (np.diff(starts) > 0))
    if empty.size:
        plane = int(empty[0]) + int(layout.first_plane[i0])
        image = int(np.searchsorted(layout.first_plane, plane, side="right")) - 1
        raise ValueError(f"`mask` selects no pixel of plane {plane - int(layout.first_plane[image])} "
                         f"of image {image} (planes counted in C order over its batch axes)")


# ---------------------------------------------------------------------------------------------
# equalize_hist

def equalize_hist(images, nbins, *, axes, mask, method, channel_axis, luminance, out, **others):
    """:func:`gpu_histeq.equalize_hist` of every image of a list, in one batched computation."""
    _unsupported("equalize_hist", others, {})
    nbins = check_nbins(nbins)
    if not isinstance(luminance, (bool, np.bool_)):
        raise TypeError(f"`luminance` must be a bool, got {luminance!r}")
    if luminance:
        raise TypeError("`luminance=True` is not supported when `images` is a list: call "
                        "equalize_hist per image, or on one array per size")
    items, xp, dtype = _arrays(images, "equalize_hist")
    outs = _per_entry(out, items, "out")
    if not items:
        if method is not None and method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS} or None, got {method!r}")
        _per_entry(mask, items, "mask")
        return []
    method = resolve_method(method, dtype)
    level_indexed = method in ("opencv", "pil")
    if level_indexed:
        nbins = check_levels_nbins(nbins, dtype, method)
    axes_list = [_axes(axes, channel_axis, item.shape)[0] for item in items]
    result_dtype = dtype if level_indexed else cdf_dtype(dtype)
    for item, o in zip(items, outs):
        if o is not None:
            array_module(item, out=o)
            check_out(o, item.shape, result_dtype, xp)
    masks = _masks(mask, items, xp)
    layout = Layout(items, axes_list)
    if _engine.select(xp, dtype) == "compiled":
        equalize_rows = functools.partial(_equalize.equalize_hist, nbins=nbins, axes=(1,),
                                          method=method)
        results = _bucketed(xp, items, masks, layout, result_dtype, equalize_rows)
    else:
        results = []
        for i0, i1 in layout.groups(xp):
            starts = layout.starts(i0, i1)
            values = _pack(xp, items[i0:i1], axes_list[i0:i1])
            packed_mask = None if masks is None else _pack(xp, masks[i0:i1], axes_list[i0:i1])
            _check_selects(xp, packed_mask, starts, layout, i0)
            packed = _packed.equalize(xp, values, packed_mask, starts, method, nbins,
                                      result_dtype)
            results += layout.unpack(xp, packed, i0, i1)
    for k, o in enumerate(outs):
        if o is not None:
            o[...] = results[k]
            results[k] = o
    return results


def _bucketed(xp, items, masks, layout, result_dtype, equalize_rows):
    """Every image through ``equalize_rows(rows, mask=...)`` (the in-memory function on one
    array, in the engine it selects: the compiled one on the CPU), in buckets of similar sizes.

    Images sorted by plane size are cut into buckets whose sizes differ by less than a factor
    ``2 ** (1 / BUCKETS_PER_OCTAVE)``, at most about ``BUCKET_PIXELS`` padded pixels each. A
    bucket is packed into ``(rows, W)`` (``W`` its largest plane; one row per plane), the padding
    zero and left out of the mask: each plane's histogram, and so its table, is exactly its own.
    The results are views of each bucket's rows. Python loops over the images pack and unpack;
    the computation runs once per bucket.
    """
    results = [None] * len(items)
    nplanes = np.diff(layout.first_plane)
    sizes = layout.sizes
    filled = np.flatnonzero((sizes > 0) & (nplanes > 0))
    for i in np.flatnonzero((sizes == 0) | (nplanes == 0)).tolist():
        results[i] = xp.empty(items[i].shape, result_dtype)
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
            padded = xp.zeros((int(rows[-1]), width), items[0].dtype)
            selected = xp.zeros((int(rows[-1]), width), bool)
            for k, i in enumerate(group.tolist()):  # packing: one copy per image
                part = (slice(int(rows[k]), int(rows[k + 1])), slice(0, int(sizes[i])))
                padded[part] = _planes.to_planes(xp, items[i], layout.shapes[i][2])[0]
                if masks is None:
                    selected[part] = True
                else:
                    selected[part] = _selecting(xp, masks[i], layout.shapes[i][2], i)
            out = equalize_rows(padded, mask=selected)
            for k, i in enumerate(group.tolist()):  # views of the result rows
                batch, image, axes = layout.shapes[i]
                part = out[int(rows[k]):int(rows[k + 1]), :int(sizes[i])]
                results[i] = _planes.from_planes(xp, part, batch, image, axes)
    return results


def _selecting(xp, mask, axes, image):
    """The ``(P, N)`` planes of one image's mask, checked to select a pixel of every plane."""
    planes = _planes.to_planes(xp, mask, axes)[0]
    empty = np.flatnonzero(~np.asarray(planes.any(axis=1).tolist(), bool))  # sync: an error
    if empty.size:
        raise ValueError(f"`mask` selects no pixel of plane {int(empty[0])} of image {image} "
                         "(planes counted in C order over its batch axes)")
    return planes


# ---------------------------------------------------------------------------------------------
# histogram, cumulative_distribution

def _histograms(images, nbins, axes, mask, channel_axis, name, cumulative):
    nbins = check_nbins(nbins)
    items, xp, dtype = _arrays(images, name)
    if not items:
        _per_entry(mask, items, "mask")
        return []
    axes_list = [_axes(axes, channel_axis, item.shape)[0] for item in items]
    masks = _masks(mask, items, xp)
    layout = Layout(items, axes_list)
    results = []
    for i0, i1 in layout.groups(xp):
        starts = layout.starts(i0, i1)
        values = _pack(xp, items[i0:i1], axes_list[i0:i1])
        packed_mask = None if masks is None else _pack(xp, masks[i0:i1], axes_list[i0:i1])
        _check_selects(xp, packed_mask, starts, layout, i0)
        if values.size:
            low, high, finite = _packed.plane_stats(xp, values, packed_mask, starts)
            check_finite(finite)
            bins = range_binning(xp, nbins, low, high, masked=packed_mask is not None)
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


def histogram(images, nbins, *, axes, mask, channel_axis=None, **others):
    """:func:`gpu_histeq.histogram` of every image of a list: a list of ``(counts, centers)``."""
    _unsupported("histogram", others, {})
    return _histograms(images, nbins, axes, mask, channel_axis, "histogram", False)


def cumulative_distribution(images, nbins, *, axes, mask, channel_axis=None, **others):
    """:func:`gpu_histeq.cumulative_distribution` of every image of a list: ``(cdf, centers)``."""
    _unsupported("cumulative_distribution", others, {})
    return _histograms(images, nbins, axes, mask, channel_axis, "cumulative_distribution", True)


# ---------------------------------------------------------------------------------------------
# apply_lut

def apply_lut(images, lut, *, axes, channel_axis=None, **others):
    """:func:`gpu_histeq.apply_lut` of every image of a list: one table for all, or a list of
    tables (one ``(L,)`` or ``(batch..., L)`` per image, one dtype, any lengths)."""
    _unsupported("apply_lut", others, {})
    items, xp, _ = _arrays(images, "apply_lut")
    native = getattr(_validate, "native", lambda array: array)
    shared = not isinstance(lut, (list, tuple))
    luts = [lut] * len(items) if shared else _per_entry(lut, items, "lut")
    if shared and hasattr(lut, "ndim") and lut.ndim != 1:
        raise ValueError("`lut` must be one table (L,) shared by every image, or a list of "
                         f"tables (one per image) when `images` is a list, got shape {lut.shape}")
    if not items:
        return []
    axes_list = [_axes(axes, channel_axis, item.shape)[0] for item in items]
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
        values = _pack(xp, items[i0:i1], axes_list[i0:i1])
        first = layout.first_plane[i0:i1 + 1] - layout.first_plane[i0]
        _check_lut_range(xp, values, starts, first, lengths[i0:i1], i0)
        if shared:
            tables = xp.ascontiguousarray(lut.reshape(1, -1))
        else:  # one row per plane, padded to the longest table
            tables = xp.zeros((int(first[-1]), int(lengths[i0:i1].max(initial=1))), lut[0].dtype)
            for k in range(i0, i1):
                rows = slice(int(first[k - i0]), int(first[k - i0 + 1]))
                tables[rows, :lengths[k]] = luts[k].reshape(-1, int(lengths[k]))
        packed = _packed.apply_tables(xp, values, starts, tables)
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
             "cumulative_distribution": cumulative_distribution, "apply_lut": apply_lut}
