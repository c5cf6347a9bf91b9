"""Lists of arrays: the checks of a ragged batch and where its planes lie when packed.

Shared by :mod:`.ragged` and :mod:`.ragged_matching`: the entries (all NumPy or all CuPy, one
dtype), per-entry parameters (masks, outputs, tables, references), the image axes of each entry
by the rule of a single array, and :class:`Layout` (planes, their sizes, groups of whole images
packed at a time, views of a packed result in each image's shape).
"""

import math

import numpy as np

from .. import _planes, _validate
from .._backend import array_module, backend_name, is_cupy, is_dask, is_tensor
from .._validate import check_images, check_mask, normalize_axes
from . import _packed
from ._packed import plane_starts

#: Pixels packed into one buffer at a time on the CPU (whole images; a larger image alone).
PACK_PIXELS = 1 << 24
#: The same on the GPU.
PACK_PIXELS_GPU = 1 << 27


def resolve_axes(axes, channel_axis, shape):
    """The image axes and channel axis of one entry, by the rule of a single array."""
    if hasattr(_validate, "image_axes"):
        return _validate.image_axes(axes, channel_axis, shape)
    axes = normalize_axes((-2, -1) if axes is None else axes, len(shape))
    return axes, _validate.check_channel_axis(channel_axis, axes, len(shape))


# ---------------------------------------------------------------------------------------------
# checks and layout

def arrays(images, name):
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


def per_entry(value, items, param):
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


def masks_for(mask, items, xp):
    """Masks broadcast to their images, or None; entries None select every pixel."""
    masks = per_entry(mask, items, "mask")
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
    trailing : list of bool
        Whether each image's image axes are its last ones (its planes are its C-order rows).
    first_plane : (I + 1,) int64 ndarray
        Image ``i`` owns planes ``first_plane[i]:first_plane[i + 1]``.
    sizes : (I,) int64 ndarray
        Pixels of one plane of each image.
    """

    def __init__(self, items, axes_list):
        self.shapes, self.trailing = [], []
        nplanes, sizes = [], []
        for item, axes in zip(items, axes_list):
            batch = tuple(n for a, n in enumerate(item.shape) if a not in axes)
            image = tuple(item.shape[a] for a in axes)
            self.shapes.append((batch, image, axes))
            self.trailing.append(tuple(axes) == tuple(range(len(batch), item.ndim)))
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

    def planes(self, xp, items, i0, i1):
        """Images ``i0:i1`` with their planes one after the other in C order: each image itself
        where its image axes are its last ones and it is C-contiguous, else its ``(P_i, N_i)``
        planes copied."""
        return [item if trailing and item.flags.c_contiguous
                else _planes.to_planes(xp, item, self.shapes[i][2])[0]
                for i, item, trailing in zip(range(i0, i1), items[i0:i1], self.trailing[i0:i1])]

    def separate_results(self, xp, dtype, i0, i1):
        """``(buffers, results)`` of images ``i0:i1``, one array each: the buffer a kernel
        writes (planes one after the other in C order) and the result in the image's shape (the
        buffer itself where the image axes are the last ones, else a view of it)."""
        buffers, results = [], []
        for i in range(i0, i1):
            batch, image, _ = self.shapes[i]
            buffer = xp.empty(batch + image, dtype)
            buffers.append(buffer)
            results.append(buffer if self.trailing[i] else self.in_shape(xp, buffer, i))
        return buffers, results

    def in_shape(self, xp, planes, i):
        """The ``(P_i, N_i)`` `planes` of image `i` as an array of its shape (a view)."""
        batch, image, axes = self.shapes[i]
        return _planes.from_planes(xp, planes, batch, image, axes)

    def unpack(self, xp, packed, i0, i1):
        """Views of the packed result of images ``i0:i1``, each in its image's shape."""
        results, start = [], 0
        for i in range(i0, i1):
            nplanes = int(self.first_plane[i + 1] - self.first_plane[i])
            count = nplanes * int(self.sizes[i])
            planes = packed[start:start + count].reshape(nplanes, int(self.sizes[i]))
            results.append(self.in_shape(xp, planes, i))
            start += count
        return results


def pack(xp, arrays, axes_list):
    """One 1-d buffer of the planes of `arrays` one after the other (one copy)."""
    return xp.concatenate([_planes.to_planes(xp, a, axes)[0].reshape(-1)
                           for a, axes in zip(arrays, axes_list)])


def check_selects(xp, mask, starts, layout, i0):
    """Raise when a mask selects no pixel of a non-empty plane, naming image and plane."""
    if mask is None:
        return
    empty = np.flatnonzero((_packed.selected_counts(xp, mask, starts) == 0) & (np.diff(starts) > 0))
    if empty.size:
        plane = int(empty[0]) + int(layout.first_plane[i0])
        image = int(np.searchsorted(layout.first_plane, plane, side="right")) - 1
        raise ValueError(f"`mask` selects no pixel of plane {plane - int(layout.first_plane[image])} "
                         f"of image {image} (planes counted in C order over its batch axes)")


def packed_group(xp, layout, items, masks, axes_list, i0, i1):
    """Images ``i0:i1`` packed once: ``(starts, values, mask)``, the packed mask (or None)
    checked to select a pixel of every plane."""
    starts = layout.starts(i0, i1)
    values = pack(xp, items[i0:i1], axes_list[i0:i1])
    mask = None if masks is None else pack(xp, masks[i0:i1], axes_list[i0:i1])
    check_selects(xp, mask, starts, layout, i0)
    return starts, values, mask


def packed_groups(xp, layout, items, masks, axes_list):
    """Each group of whole images packed once: ``(i0, i1, starts, values, mask)``, as
    :func:`packed_group`."""
    for i0, i1 in layout.groups(xp):
        yield (i0, i1) + packed_group(xp, layout, items, masks, axes_list, i0, i1)
