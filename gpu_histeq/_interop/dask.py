"""Dask arrays in, dask arrays out: the public functions as lazy task graphs.

Chunks may be NumPy or CuPy arrays; every task calls the in-memory pipeline on its chunk, so one
code path serves both (and a ``dask_cuda.LocalCUDACluster`` spreads CuPy chunks over GPUs).

* **Whole images per chunk** -- ``equalize_hist`` maps the in-memory function over the blocks.
  When a chunk splits an image, the images are rechunked whole, as many per chunk as fit in
  Dask's ``array.chunk-size`` (or the input's largest chunk, if larger); an image larger than
  that stays split and takes the two-pass path below (per-image work warns: a
  ``PerformanceWarning``).
* **Images split over chunks** (dataset-wide ``axes`` that include batch axes, or images larger
  than a chunk) -- a tree reduction of per-chunk histograms (``sum`` over the image axes, after a
  ``min``/``max`` reduction of the ranges for ``method="skimage"``), then one table per image
  applied blockwise. The steps are those of :mod:`gpu_histeq._chunked`, so the result equals the
  in-memory one bit for bit. Each pass reads the input again: the chunks of a later pass come
  from a clone of the input's graph bound to the finished reduction of the pass before
  (:func:`dask.graph_manipulation.bind`), so a worker holds a few chunks at a time, never the
  input until its histogram is complete (which would spill a dataset larger than memory to
  disk). An input that is expensive to compute and fits in memory can be ``persist()``-ed first.

Errors that need the data (NaN, a mask selecting no pixel, a value outside a table) are raised
when the graph is computed; errors of type, shape and parameters are raised at once.
``dask`` is imported only when a dask array is seen.
"""

import math
import string

import numpy as np

from .. import _chunked
from ..adaptive import clahe as _clahe, equalize_adapthist as _equalize_adapthist
from ..equalize import BYTES_PER_FLOAT_BIN as _BYTES_PER_FLOAT_BIN
from ..equalize import equalize_hist as _equalize_hist
from ..histogram import cumulative_distribution as _cumulative_distribution
from ..histogram import histogram as _histogram_in_memory
from ..lut import apply_lut as _apply_lut
from ..matching import match_histograms as _match_histograms
from .._backend import array_module, is_dask
from .._tables import cdf_table
from .._validate import (check_allocation, check_images, check_lut_inputs,
                         check_luminance_order, check_nbins, image_axes, native, refuse_masked)

__all__ = ["equalize_hist", "histogram", "cumulative_distribution", "apply_lut", "clahe",
           "equalize_adapthist", "match_histograms"]


def _da():
    import dask.array as da
    return da


def _meta_module(images, **others):
    """The chunks' array module (numpy or cupy), checked against the other arrays' chunks."""
    metas = {name: (other._meta if is_dask(other) else other) for name, other in others.items()}
    return array_module(images._meta, **metas)


def _indices(ndim, axes):
    """blockwise index letters: of the array, of its batch axes, and a free letter for bins."""
    letters = string.ascii_lowercase[:ndim]
    batch = "".join(letters[a] for a in range(ndim) if a not in axes)
    return letters, batch, "z" if ndim < 26 else string.ascii_uppercase[0]


def _prepare(images, nbins, axes, mask, channel_axis=None):
    """Validate as the in-memory functions do; return ``(images, xp, axes, channel_axis,
    mask)``: `images` in native byte order, `mask` as dask."""
    da = _da()
    xp = _meta_module(images, mask=mask)
    check_images(images, xp)
    images = native(images)
    check_nbins(nbins)
    axes, channel_axis = image_axes(axes, channel_axis, images.shape)
    if images.dtype.kind == "f":  # each task's tables: at least one plane's (the in-memory check)
        check_allocation("nbins", nbins, _BYTES_PER_FLOAT_BIN * nbins, xp)
    refuse_masked(mask, "mask")
    if mask is not None:
        if not hasattr(mask, "dtype") or np.dtype(mask.dtype) != np.bool_:
            got = getattr(mask, "dtype", type(mask))
            raise TypeError(f"`mask` must be a boolean array, got {got}")
        try:
            np.broadcast_shapes(mask.shape, images.shape)
            mask = da.broadcast_to(da.asarray(mask), images.shape)
        except ValueError:
            raise ValueError(f"`mask` of shape {mask.shape} does not broadcast to `images` of "
                             f"shape {images.shape}") from None
        mask = mask.rechunk(images.chunks)
    return images, xp, axes, channel_axis, mask


def _empty_result(xp, images, fn, *args, **kwargs):
    """Zero-size input: the in-memory function on an empty stand-in, wrapped as dask."""
    da = _da()
    result = fn(xp.empty(images.shape, images.dtype), *args, **kwargs)
    if isinstance(result, tuple):
        return tuple(da.from_array(part) for part in result)
    return da.from_array(result)


def _partials(fn, images, mask, axes, width, dtype, xp, *plane_arrays, **kwargs):
    """Per-chunk ``(batch..., 1 per image axis..., width)`` partial results of `fn`.

    `plane_arrays` are dask arrays over the batch shape, handed to `fn` as the block that
    matches each chunk's planes.
    """
    da = _da()
    ind, batch, free = _indices(images.ndim, axes)
    args = [images, ind, mask, None if mask is None else ind]
    for array in plane_arrays:
        args += [array, batch]
    return da.blockwise(
        fn, ind + free, *args, axes=axes, width=width,
        new_axes={free: width}, adjust_chunks={ind[a]: 1 for a in axes},
        dtype=dtype, meta=xp.empty((0,) * (images.ndim + 1), dtype), **kwargs)


def _block(array):
    """A block as an array: reductions to zero dimensions hand NumPy scalars to the tasks."""
    return np.asarray(array) if isinstance(array, np.generic) else array


def _stats_block(chunk, mask, axes, width):
    low, high = _chunked.chunk_stats(chunk, mask, axes)
    shape = tuple(1 if a in axes else n for a, n in enumerate(chunk.shape))
    return array_module(chunk).stack([low, high], axis=-1).reshape(shape + (2,))


def _counts_block(chunk, mask, *ranges, axes, width, spec):
    low, high = (_block(r).reshape(-1) for r in ranges) if ranges else (None, None)
    counts = _chunked.chunk_counts(chunk, mask, axes, spec, width, low, high)
    shape = tuple(1 if a in axes else n for a, n in enumerate(chunk.shape))
    return counts.reshape(shape + (width,))


def _read_again(images, mask, after):
    """`images` and `mask` read again once every array in `after` is computed.

    A clone of their graphs (new keys, same tasks) whose first tasks wait for `after`: the pass
    that uses them recomputes its input chunks instead of keeping the earlier pass's chunks in
    memory until the reduction between the passes is complete.
    """
    from dask.graph_manipulation import bind

    if not after:
        return images, mask
    seed = "-".join(a.name for a in after)  # deterministic keys: the same call, the same graph
    if mask is None:
        return bind(images, list(after), seed=seed), None
    return bind((images, mask), list(after), seed=seed)


def _ranges(images, mask, axes, xp):
    """Lazy per-plane ``(low, high)`` over the batch shape: a min / max tree reduction."""
    stats = _partials(_stats_block, images, mask, axes, 2, images.dtype, xp)
    return stats[..., 0].min(axis=axes), stats[..., 1].max(axis=axes)


def _counts(images, mask, axes, spec, width, xp, ranges):
    """Lazy ``(batch..., width)`` int64 histograms: per-chunk counts summed by a tree reduction."""
    images, mask = _read_again(images, mask, ranges)
    partial = _partials(_counts_block, images, mask, axes, width, np.int64, xp, *ranges, spec=spec)
    return partial.sum(axis=axes, dtype=np.int64)


def _width(spec, ranges, static):
    """Bins per plane; integer ``"skimage"`` needs the ranges (computed now unless `static`)."""
    if spec.level_indexed or spec.dtype.kind == "f":
        return spec.nbins
    if static and spec.dtype.itemsize <= 2:
        return 1 << (8 * spec.dtype.itemsize)  # every level: the same tables, no early compute
    low, high = (r.compute() for r in ranges)  # sync: the table width is a shape
    return _chunked.level_width(spec, low, high)


def _equalize_block(chunk, counts, *ranges, axes, spec, width):
    xp = array_module(chunk)
    counts = counts.reshape(-1, width)
    low, high = (_block(r).reshape(-1) for r in ranges) if ranges else (None, None)
    npixels = math.prod(chunk.shape[a] for a in axes)
    _chunked.check_counts(xp, counts, npixels)
    return _chunked.chunk_equalize(chunk, axes, spec, width, counts, low, high)


def _two_pass(images, mask, axes, spec, xp):
    da = _da()
    ranges = _ranges(images, mask, axes, xp) if spec.needs_stats else ()
    width = _width(spec, ranges, static=True)
    counts = _counts(images, mask, axes, spec, width, xp, ranges)
    images, _ = _read_again(images, None, (counts,))
    ind, batch, free = _indices(images.ndim, axes)
    args = [counts, batch + free]
    for array in ranges:
        args += [array, batch]
    return da.blockwise(
        _equalize_block, ind, images, ind, *args, axes=axes, spec=spec, width=width,
        concatenate=True, dtype=spec.result_dtype,
        meta=xp.empty((0,) * images.ndim, spec.result_dtype))


def _chunk_nbytes(images):
    return max(math.prod(max(c) if c else 0 for c in images.chunks), 1) * images.dtype.itemsize


def _chunk_limit(images):
    """Bytes a rechunked chunk may hold: Dask's ``array.chunk-size``, or the input's largest
    chunk if the user chose larger ones."""
    import dask
    from dask.utils import parse_bytes

    return max(parse_bytes(dask.config.get("array.chunk-size")), _chunk_nbytes(images))


def _whole_images(images, axes, extra=()):
    """`images` rechunked so that no chunk splits an image, or None for the two-pass path.

    Images split over chunks are rechunked whole when one image fits in a chunk (Dask's
    ``array.chunk-size``, or the input's largest chunk if larger), with as many images per chunk
    as fit (``"auto"`` along the batch axes, multiples of the input's chunks): chunks of a
    fraction of an image become chunks of many images, not as many tiny tasks. Larger images,
    and a split array whose "image" is all of it (no batch axis: one chunk would be one task),
    stay as they are for the two-pass path; when the leading axis is a batch axis (per-image
    work), with a ``PerformanceWarning``: dataset-wide ``axes`` are two-pass by design.
    """
    whole = tuple(sorted(set(axes) | set(extra)))
    if all(len(images.chunks[a]) == 1 for a in whole):
        return images
    image_nbytes = math.prod(images.shape[a] for a in whole) * images.dtype.itemsize
    limit = _chunk_limit(images)
    if extra or (len(whole) < images.ndim and image_nbytes <= limit):
        return _rechunk_whole(images, whole)
    if 0 not in whole:
        import warnings
        from dask.array import PerformanceWarning

        warnings.warn(
            f"chunks {images.chunksize} split images of {image_nbytes} bytes, larger than a "
            f"chunk may be ({limit} bytes: dask's `array.chunk-size` or the input's largest "
            f"chunk): each image is equalized in two passes over {images.npartitions} chunks. "
            f"Chunks of whole images (or a larger `array.chunk-size`) take the one-pass path",
            PerformanceWarning, stacklevel=4)
    return None


def _rechunk_whole(images, whole):
    """`images` with the `whole` axes in one chunk, the others ``"auto"`` (see above)."""
    if all(len(images.chunks[a]) == 1 for a in whole):
        return images
    image_nbytes = math.prod(images.shape[a] for a in whole) * images.dtype.itemsize
    batch = {a: "auto" for a in range(images.ndim) if a not in whole}
    return images.rechunk({**batch, **{a: -1 for a in whole}},
                          block_size_limit=max(_chunk_limit(images), image_nbytes))


def equalize_hist(images, nbins=256, *, axes=None, mask=None, method=None,
                  channel_axis=None, luminance=False, out=None):
    """:func:`gpu_histeq.equalize_hist` of a dask array, lazily; see the module docstring."""
    in_memory = _equalize_hist

    if out is not None:
        raise TypeError("`out` is not supported for dask arrays (they are immutable): "
                        "store the result with dask.array.store or .to_zarr instead")
    luminance = check_luminance_order(luminance)
    images, xp, axes, channel_axis, mask = _prepare(images, nbins, axes, mask, channel_axis)
    spec = _chunked.make_spec(images.dtype, nbins, method, mask is not None)
    kwargs = dict(nbins=nbins, axes=axes, method=method, channel_axis=channel_axis,
                  luminance=luminance or False)
    if images.size == 0:
        return _empty_result(xp, images, in_memory, **kwargs)
    extra = (channel_axis,) if luminance else ()
    whole = _whole_images(images, axes, extra)
    if whole is None:
        return _two_pass(images, mask, axes, spec, xp)
    arrays = [whole] if mask is None else [whole, mask.rechunk(whole.chunks)]
    if mask is None:
        block_fn = _equalize_whole
    else:
        block_fn = _equalize_whole_masked
    return _da().map_blocks(block_fn, *arrays, dtype=spec.result_dtype,
                            meta=xp.empty((0,) * images.ndim, spec.result_dtype), **kwargs)


def _equalize_whole(chunk, **kwargs):
    return _equalize_hist(chunk, **kwargs)


def _equalize_whole_masked(chunk, mask, **kwargs):
    return _equalize_hist(chunk, mask=mask, **kwargs)


def _histogram(images, nbins, axes, mask, channel_axis, name):
    """Lazy ``(counts, centers)`` with the batch shape, as the in-memory ``histogram``."""

    images, xp, axes, _, mask = _prepare(images, nbins, axes, mask, channel_axis)
    if images.size == 0:
        return _empty_result(xp, images, _in_memory(name), nbins, axes=axes)
    # the skimage binning: per-plane ranges, one bin per level for integers, `nbins` for floats
    spec = _chunked.Spec("skimage", np.dtype(images.dtype), _chunked.cdf_dtype(images.dtype),
                         int(nbins), mask is not None)
    ranges = _ranges(images, mask, axes, xp)
    width = _width(spec, ranges, static=False)
    counts = _counts(images, mask, axes, spec, width, xp, ranges)
    ind, batch, free = _indices(images.ndim, axes)
    center_dtype = images.dtype if spec.dtype.kind == "f" else np.dtype(np.intp)
    low, high = ranges
    centers = _da().blockwise(
        _centers_block, batch + free, low, batch, high, batch, spec=spec,
        width=width, new_axes={free: width}, dtype=center_dtype,
        meta=xp.empty((0,) * (len(batch) + 1), center_dtype))
    if name == "histogram":
        return counts, centers
    cdf_dtype = _chunked.cdf_dtype(images.dtype)
    cdf = counts.map_blocks(_cdf_block, dtype=cdf_dtype, image_dtype=images.dtype,
                            meta=xp.empty((0,) * counts.ndim, cdf_dtype))
    return cdf, centers


def _centers_block(low, high, spec, width):
    low, high = _block(low), _block(high)
    xp = array_module(low)
    shape = low.shape
    bins = _chunked.binning(xp, spec, width, low.reshape(-1), high.reshape(-1))
    return bins.centers(slice(None), low.size).reshape(shape + (width,))


def _cdf_block(counts, image_dtype):
    return cdf_table(array_module(counts), counts, image_dtype)


def histogram(images, nbins=256, *, axes=None, mask=None, channel_axis=None):
    """:func:`gpu_histeq.histogram` of a dask array: lazy counts and centers.

    Integer images compute their per-plane ranges at once: the number of bins is a shape.
    """
    return _histogram(images, nbins, axes, mask, channel_axis, "histogram")


def cumulative_distribution(images, nbins=256, *, axes=None, mask=None, channel_axis=None):
    """:func:`gpu_histeq.cumulative_distribution` of a dask array: lazy cdf and centers."""
    return _histogram(images, nbins, axes, mask, channel_axis, "cumulative_distribution")


def _lut_block(chunk, lut, axes):
    return _apply_lut(chunk, lut, axes=axes)


def apply_lut(images, lut, *, axes=None, channel_axis=None):
    """:func:`gpu_histeq.apply_lut` of a dask array: each chunk through its planes' tables."""
    da = _da()
    xp = _meta_module(images, lut=lut)
    check_images(images, xp)
    check_lut_inputs(images, lut)
    images, lut = native(images), native(lut)
    axes, _ = image_axes(axes, channel_axis, images.shape)
    ind, batch, free = _indices(images.ndim, axes)
    batch_shape = tuple(images.shape[a] for a in range(images.ndim) if a not in axes)
    lut = da.asarray(lut)
    if lut.ndim == 1:
        lut_ind = free
        lut = lut.rechunk(-1)
    else:
        if lut.shape[:-1] != batch_shape:
            raise ValueError(
                f"`lut` must have shape (L,) or {batch_shape + ('L',)} for `images` of shape "
                f"{images.shape} with axes {axes}, got {lut.shape}")
        lut_ind = batch + free
        lut = lut.rechunk(tuple(images.chunks[a] for a in range(images.ndim) if a not in axes)
                          + (-1,))
    return da.blockwise(_lut_block, ind, images, ind, lut, lut_ind, axes=axes, concatenate=True,
                        dtype=lut.dtype, meta=xp.empty((0,) * images.ndim, lut.dtype))


_IN_MEMORY = {function.__name__: function for function in (
    _equalize_hist, _histogram_in_memory, _cumulative_distribution, _apply_lut, _clahe,
    _equalize_adapthist, _match_histograms)}


def _in_memory(name):
    """The in-memory public function `name`."""
    return _IN_MEMORY[name]


def _per_image_block(chunk, *arrays, function_name, **kwargs):
    return _in_memory(function_name)(chunk, *arrays, **kwargs)


def _result_meta(xp, images, name, batch, axes, *args, **kwargs):
    """The in-memory function's result (an empty array of its type) for `images` emptied along
    their first batch axis (no image), or without batch axes along their first image axis
    (zero-size planes, which every in-memory function answers with an empty result of its
    dtype), so that dask never has to guess the type of a single image's result."""
    empty_axis = batch[0] if batch else axes[0]
    shape = tuple(0 if a == empty_axis else n for a, n in enumerate(images.shape))
    return _in_memory(name)(xp.empty(shape, images.dtype), *args, axes=axes, **kwargs)


def _map_whole_images(name, images, axes, channel_axis, **kwargs):
    """A per-image function mapped over chunks that hold whole images (rechunked if needed;
    with their channels too when `channel_axis` is given)."""
    xp = _meta_module(images)
    check_images(images, xp)
    images = native(images)
    axes, channel_axis = image_axes(axes, channel_axis, images.shape)
    whole_axes = axes + (() if channel_axis is None else (channel_axis,))
    whole = _rechunk_whole(images, whole_axes)
    kwargs["channel_axis"] = channel_axis
    batch = [a for a in range(images.ndim) if a not in whole_axes]
    meta = _result_meta(xp, images, name, batch, axes, **kwargs)
    return _da().map_blocks(_per_image_block, whole, function_name=name, axes=axes, **kwargs,
                            dtype=meta.dtype, meta=meta)


def clahe(images, clip_limit=40.0, tile_grid=(8, 8), *, axes=None, channel_axis=None,
          luminance=False):
    """:func:`gpu_histeq.clahe` of a dask array: each chunk of whole images, lazily."""
    return _map_whole_images("clahe", images, axes, channel_axis, clip_limit=clip_limit,
                             tile_grid=tile_grid, luminance=luminance)


def equalize_adapthist(images, kernel_size=None, clip_limit=0.01, nbins=256, *, axes=None,
                       channel_axis=None):
    """:func:`gpu_histeq.equalize_adapthist` of a dask array: whole images per chunk, lazily."""
    return _map_whole_images("equalize_adapthist", images, axes, channel_axis,
                             kernel_size=kernel_size, clip_limit=clip_limit, nbins=nbins)


def match_histograms(images, reference, *, axes=None, channel_axis=None):
    """:func:`gpu_histeq.match_histograms` of a dask array, lazily.

    A shared `reference` (image axes only) goes whole to every task; a per-image reference (the
    dimensions of `images`) is aligned with the chunks of `images` along the batch axes.
    """
    da = _da()
    xp = _meta_module(images, reference=reference)
    check_images(images, xp)
    images, reference = native(images), native(reference)
    axes, channel_axis = image_axes(axes, channel_axis, images.shape)
    extra = () if channel_axis is None else (channel_axis,)
    whole = _rechunk_whole(images, tuple(axes) + tuple(extra))
    reference = da.asarray(reference)
    ind = string.ascii_lowercase[:images.ndim]
    batch = [a for a in range(images.ndim) if a not in axes and a not in extra]
    stand_in = reference.shape
    if reference.ndim == images.ndim and batch:  # per image: none of the images' references
        stand_in = tuple((0 if reference.shape[a] == images.shape[a] else 1)
                         if a == batch[0] else n for a, n in enumerate(reference.shape))
    meta = _result_meta(xp, images, "match_histograms", batch, axes,
                        xp.zeros(stand_in, reference.dtype), channel_axis=channel_axis)
    if reference.ndim == images.ndim:
        # per image: batch axes follow the images' chunks (or broadcast), the rest whole
        chunks = tuple(whole.chunks[a] if a not in axes and a not in extra
                       and reference.shape[a] == images.shape[a] else -1
                       for a in range(images.ndim))
        reference = reference.rechunk(chunks)
        ref_ind = "".join(ind[a] if a not in axes and a not in extra
                          and reference.shape[a] == images.shape[a]
                          else string.ascii_uppercase[a] for a in range(images.ndim))
    else:
        reference = reference.rechunk(-1)
        ref_ind = string.ascii_uppercase[:reference.ndim]
    return da.blockwise(_per_image_block, ind, whole, ind, reference, ref_ind,
                        function_name="match_histograms", concatenate=True, axes=axes,
                        channel_axis=channel_axis, dtype=meta.dtype, meta=meta)
