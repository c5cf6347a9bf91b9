"""Every argument check and data-error raiser, shared by the in-memory functions, Dask and the CLI.

Argument checks look at shapes, dtypes and parameter values only (no device work); the raisers at
the end turn what an engine found in the data (NaN, repeated bin edges, an empty mask) into the
one message every engine gives. Imports nothing of the package.
"""

import math
import numbers
import os
import warnings

import numpy as np

METHODS = ("opencv", "pil", "skimage")


def check_images(images, xp):
    """Check the dtype and number of dimensions of `images` (masked arrays are refused)."""
    refuse_masked(images, "images")
    dtype = np.dtype(images.dtype)
    if dtype.kind == "b" or dtype.kind not in "uif":
        raise TypeError(
            f"`images` must have an integer or real floating dtype, got {dtype}"
        )
    if dtype.kind == "f" and dtype.itemsize not in (2, 4, 8):
        raise TypeError(f"`images` must be float16, float32 or float64 when floating, got {dtype}")
    if images.ndim < 2:
        raise ValueError(
            f"`images` must have at least 2 dimensions (one image is (H, W)), got shape {images.shape}"
        )


def refuse_masked(array, param):
    """Raise TypeError for a :class:`numpy.ma.MaskedArray`: its mask would be ignored silently."""
    if isinstance(array, np.ma.MaskedArray):
        hint = (" pass `images.data` and `mask=~numpy.ma.getmaskarray(images)` (equalize_hist, "
                "histogram and cumulative_distribution take a mask)" if param == "images"
                else f" pass `{param}.data` (or `{param}.filled(...)`)")
        raise TypeError(f"`{param}` must not be a numpy.ma.MaskedArray (its mask would be "
                        f"ignored):{hint}")


def native(array):
    """`array` in the native byte order (the same array when it already is): byte order never
    changes an answer or a result dtype. Applied to every input array at the boundary."""
    dtype = getattr(array, "dtype", None)
    if dtype is None or not isinstance(dtype, np.dtype) or dtype.isnative:
        return array
    return array.astype(dtype.newbyteorder("="))


def check_nbins(nbins):
    """Check that `nbins` is a positive integer and return it as an int."""
    if isinstance(nbins, (bool, np.bool_)) or not isinstance(nbins, numbers.Integral) or nbins < 1:
        raise ValueError(f"`nbins` must be a positive integer, got {nbins!r}")
    return int(nbins)


def normalize_axes(axes, ndim, param="axes"):
    """Return `axes` as a sorted tuple of distinct non-negative axis numbers below `ndim`."""
    if isinstance(axes, numbers.Integral) and not isinstance(axes, bool):
        axes = (axes,)
    try:
        axes = tuple(axes)
    except TypeError:
        raise TypeError(f"`{param}` must be a tuple of ints, got {axes!r}") from None
    if not axes or any(isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in axes):
        raise TypeError(f"`{param}` must be a non-empty tuple of ints, got {axes!r}")
    if any(not -ndim <= a < ndim for a in axes):
        raise ValueError(f"`{param}` {axes!r} is out of range for an array with {ndim} dimensions")
    normalized = tuple(sorted(int(a) % ndim for a in axes))
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"`{param}` must not repeat an axis, got {axes!r}")
    return normalized


def _spatial_axes(ndim, channel_axis):
    """The two trailing axes other than `channel_axis` (None when fewer than two remain)."""
    spatial = [a for a in range(ndim) if a != channel_axis]
    return tuple(spatial[-2:]) if len(spatial) >= 2 else None


def image_axes(axes, channel_axis, shape, *, color_warning=True):
    """Resolve the image axes and the channel axis of `images` of `shape`, as scikit-image does.

    The one rule every public function, Dask and the CLI use:

    * `axes` given: those axes (normalized), and `channel_axis` must not be one of them;
    * `axes` None and `channel_axis` given: the two trailing axes other than the channel axis
      (``(H, W, C)`` -> ``(0, 1)``, ``(N, H, W, C)`` -> ``(1, 2)``, ``(N, C, H, W)`` with
      ``channel_axis=1`` -> ``(2, 3)``);
    * both None: ``(-2, -1)``. Then a last axis of length 3 or 4 after two axes of at least 8
      is probably a colour axis (``(H, W, 3)``, ``(N, H, W, 4)``): a UserWarning names the fix
      (``channel_axis=-1``), as scikit-image warns about probable colour images. Passing
      ``axes=(-2, -1)`` keeps the planes without it. (Smaller shapes such as a batch of 3x3
      images ``(N, 3, 3)`` are taken as they are.)

    Parameters
    ----------
    axes : int, tuple of int or None
    channel_axis : int or None
    shape : tuple of int
        The shape of `images`.

    Returns
    -------
    axes : tuple of int
        Sorted, non-negative.
    channel_axis : int or None
        Non-negative.
    """
    ndim = len(shape)
    if channel_axis is not None:
        (channel_axis,) = normalize_axes(channel_axis, ndim, "channel_axis")
    if axes is not None:
        axes = normalize_axes(axes, ndim)
        if channel_axis is not None and channel_axis in axes:
            spatial = _spatial_axes(ndim, channel_axis)
            hint = ("" if spatial is None else
                    f": leave `axes` out (with `channel_axis={channel_axis}` the image axes are "
                    f"the trailing axes {spatial}) or pass `axes={spatial}`")
            raise ValueError(f"`channel_axis` {channel_axis} must not be one of the image `axes` "
                             f"{axes}{hint}")
        return axes, channel_axis
    if channel_axis is None:
        if color_warning and probable_colour(shape):
            warnings.warn(
                f"`images` of shape {tuple(shape)} might be colour images (a last axis of length "
                f"{shape[-1]}), but without `channel_axis` each ({shape[-2]}, {shape[-1]}) plane "
                "of the last two axes is one image. Pass `channel_axis=-1` for colour channels, "
                "or `axes=(-2, -1)` to keep these planes without this warning.",
                UserWarning, stacklevel=4)
        return (ndim - 2, ndim - 1), None
    spatial = _spatial_axes(ndim, channel_axis)
    if spatial is None:
        raise ValueError(f"`images` of shape {tuple(shape)} has no two image axes besides "
                         f"`channel_axis` {channel_axis}")
    return spatial, channel_axis


class Resolved:
    """The checked arguments of calls already seen, by configuration: a repeated call skips the
    checks it passed before (a bounded dict, emptied when full).

    A key is made only of arguments whose equality means the checks would pass again with the
    same result: the exact type of `images` (a masked array is another type), its shape and
    dtype (byte order included), and plain Python values (:func:`plain_key`); a call whose
    checks warn is never kept, so every call warns. Bad input never gets here: it raised.
    """

    SIZE = 256

    def __init__(self):
        self._known = {}

    def get(self, key):
        return None if key is None else self._known.get(key)

    def put(self, key, value):
        if key is None:
            return
        if len(self._known) >= self.SIZE:
            self._known.clear()
        self._known[key] = value

    def __len__(self):
        return len(self._known)


def plain_key(*values):
    """`values` as a key for :class:`Resolved`, or None when one of them is not plain: only
    None, ``str``, ``int`` and tuples of those compare equal exactly when every check gives the
    same answer (``True == 1`` and ``256.0 == 256``, but a check refuses a bool or a float)."""
    for value in values:
        entries = value if type(value) is tuple else (value,)
        for entry in entries:
            if entry is not None and type(entry) is not str and type(entry) is not int:
                return None
    return values


def probable_colour(shape):
    """The shape :func:`image_axes` warns about without `axes` and `channel_axis`."""
    return len(shape) >= 3 and shape[-1] in (3, 4) and min(shape[-3:-1]) >= 8


def plane_count(shape, axes):
    """Planes of `images` of `shape` with image `axes`: the product of the batch axes."""
    return math.prod(n for a, n in enumerate(shape) if a not in axes)


def resolve_method(method, dtype):
    """Return the method name for `dtype`, checking that they fit together."""
    dtype = np.dtype(dtype)
    if method is None:
        return "opencv" if dtype in (np.uint8, np.uint16) else "skimage"
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS} or None, got {method!r}")
    if method == "opencv" and dtype not in (np.uint8, np.uint16):
        raise TypeError(f"`method='opencv'` needs uint8 or uint16 `images`, got {dtype}")
    if method == "pil" and dtype != np.uint8:
        raise TypeError(f"`method='pil'` needs uint8 `images`, got {dtype}")
    return method


def check_levels_nbins(nbins, dtype, method):
    """For the level-indexed methods the bins are the dtype's levels; `nbins` must agree."""
    levels = 1 << (8 * np.dtype(dtype).itemsize)
    if nbins not in (256, levels):
        allowed = "the default 256" if levels == 256 else f"{levels} or the default 256"
        raise ValueError(
            f"`nbins` must be {allowed} with `method={method!r}` (one bin per level of "
            f"{np.dtype(dtype)}), got {nbins}; for {nbins} bins use `method='skimage'` on "
            f"floating images (e.g. `images.astype(numpy.float32)`)"
        )
    return levels


def check_mask(mask, images, xp):
    """Return `mask` broadcast to `images.shape` as a boolean array of the same backend."""
    if mask is None:
        return None
    check_mask_shape(mask, images.shape)
    return xp.broadcast_to(mask, images.shape)


def check_out(out, shape, dtype, xp):
    """Check a preallocated result array: an array of `xp` (any byte order) of the result's
    shape and dtype."""
    if out is None:
        return None
    if isinstance(out, np.ma.MaskedArray) or not isinstance(out, xp.ndarray):
        raise TypeError(f"`out` must be a {xp.__name__}.ndarray like `images`, got "
                        f"{type(out).__module__}.{type(out).__qualname__}")
    if out.shape != tuple(shape):
        raise ValueError(f"`out` must have shape {tuple(shape)}, got {out.shape}")
    if np.dtype(out.dtype).newbyteorder("=") != np.dtype(dtype).newbyteorder("="):
        raise TypeError(f"`out` must have dtype {np.dtype(dtype)}, got {out.dtype}")
    if xp is np and not out.flags.writeable:
        raise ValueError("`out` must be writeable")
    return out


def _byte_span(array):
    """``(first, end)``: the addresses of the bytes `array` can touch, from its data pointer,
    shape and strides alone (CuPy's ``data.ptr`` too: no device work, no sync)."""
    pointer = getattr(array.data, "ptr", None)
    if pointer is None:
        pointer = array.__array_interface__["data"][0]
    if array.size == 0:
        return pointer, pointer
    first = end = pointer
    for length, stride in zip(array.shape, array.strides):
        if stride < 0:
            first += (length - 1) * stride
        else:
            end += (length - 1) * stride
    return first, end + array.itemsize


def _same_view(a, b):
    """Whether `a` and `b` are the same elements in the same order (an in-place call)."""
    return (_byte_span(a)[0] == _byte_span(b)[0] and a.shape == b.shape
            and a.strides == b.strides and a.itemsize == b.itemsize)


def out_overlaps(out, *arrays):
    """Whether `out` may share memory with one of `arrays` (None skipped) without being exactly
    that array: writing the result into it would overwrite input not yet read, so the caller
    computes into a new array and copies. Judged from pointer ranges, like
    :func:`numpy.may_share_memory` (interleaved views count as overlapping)."""
    if out is None:
        return False
    first, end = _byte_span(out)
    for array in arrays:
        if array is None or array is out or not hasattr(array, "strides"):
            continue
        other_first, other_end = _byte_span(array)
        if first < other_end and other_first < end and not _same_view(out, array):
            return True
    return False


def check_outs_apart(outs):
    """Raise ValueError when two entries of a list `out` may share memory (one result would
    overwrite another); None entries are skipped. Sorted pointer ranges: no device work."""
    spans = sorted((_byte_span(o) + (k,) for k, o in enumerate(outs)
                    if o is not None and o.size), key=lambda span: span[:2])
    reach = None  # (end, entry) of the span reaching furthest so far
    for first, end, j in spans:
        if reach is not None and first < reach[0]:
            k = reach[1]
            raise ValueError(f"`out` entries {min(k, j)} and {max(k, j)} share memory: each "
                             "image needs its own result array")
        if reach is None or end > reach[0]:
            reach = (end, j)


def check_lut_inputs(images, lut):
    """Check that `images` can index the tables `lut` (integer pixels, a table axis last)."""
    if np.dtype(images.dtype).kind not in "iu":
        raise TypeError(f"`images` must be an integer array to index a table, got {images.dtype}")
    if not hasattr(lut, "ndim") or lut.ndim < 1:
        raise ValueError("`lut` must be an array with the table along its last axis")
    refuse_masked(lut, "lut")
    if np.dtype(lut.dtype).kind not in "biufc":
        raise TypeError(f"`lut` must hold numbers (bool, integer, floating or complex), got "
                        f"{lut.dtype}")


#: What `luminance` takes: False, True (the same as "rgb"), or the order of the channels.
LUMINANCE_ORDERS = ("rgb", "bgr")


def check_luminance_order(luminance):
    """`luminance` as None (off), ``"rgb"`` or ``"bgr"``: False, True (RGB) or either string."""
    if isinstance(luminance, (bool, np.bool_)):
        return "rgb" if luminance else None
    if not isinstance(luminance, str):
        raise TypeError("`luminance` must be a bool or the channel order 'rgb' or 'bgr' (OpenCV's "
                        f"order, as cv2.imread gives), got {luminance!r}")
    if luminance not in LUMINANCE_ORDERS:
        raise ValueError("`luminance` must be True (RGB), 'rgb' or 'bgr' (OpenCV's order, as "
                         f"cv2.imread gives), got {luminance!r}")
    return luminance


def check_luminance(shape, dtype, channel_axis, method):
    """Check that `luminance=True` fits: RGB channels along `channel_axis`, a dtype and method
    the YCrCb round trip supports."""
    if channel_axis is None:
        raise ValueError("`luminance=True` needs `channel_axis`, the axis of the R, G, B channels "
                         "(e.g. `channel_axis=-1` for (..., H, W, 3) images; for OpenCV's B, G, R "
                         "order pass `luminance='bgr'`)")
    if shape[channel_axis] != 3:
        raise ValueError(f"`luminance=True` needs 3 (R, G, B) channels along `channel_axis` "
                         f"{channel_axis}, got {shape[channel_axis]} (for OpenCV's BGR images "
                         "pass `luminance='bgr'`; BGRA: drop the alpha channel first)")
    dtype = np.dtype(dtype)
    if dtype.kind == "i" or (dtype.kind == "u" and dtype.itemsize > 4):
        raise TypeError("`luminance=True` needs uint8, uint16, uint32 or floating `images` (the "
                        f"fixed-point conversion overflows 64 bits beyond), got {dtype}")
    if dtype.kind == "f" and method != "skimage":
        raise TypeError(f"`method={method!r}` does not fit floating `images`")


def check_mask_shape(mask, shape):
    """Check that `mask` is a boolean array that broadcasts to `shape` (no device work)."""
    if mask is None:
        return
    if not hasattr(mask, "dtype") or np.dtype(mask.dtype) != np.bool_:
        raise TypeError(f"`mask` must be a boolean array, got {getattr(mask, 'dtype', type(mask))}")
    try:
        np.broadcast_shapes(mask.shape, tuple(shape))
    except ValueError:
        raise ValueError(
            f"`mask` of shape {mask.shape} does not broadcast to `images` of shape {tuple(shape)}"
        ) from None


def check_lut_shape(lut, batch_shape, images_shape, axes):
    """Check that `lut` is one table ``(L,)`` or one per plane ``(batch..., L)``."""
    if lut.ndim > 1 and lut.shape[:-1] != tuple(batch_shape):
        raise ValueError(
            f"`lut` must have shape (L,) or {tuple(batch_shape) + ('L',)} for `images` of shape "
            f"{tuple(images_shape)} with axes {axes}, got {lut.shape}"
        )


def check_clip_limit(clip_limit):
    """Return `clip_limit` as a finite float >= 0."""
    if isinstance(clip_limit, (bool, np.bool_)) or not isinstance(clip_limit, numbers.Real):
        raise TypeError(f"`clip_limit` must be a real number, got {clip_limit!r}")
    clip_limit = float(clip_limit)
    if not math.isfinite(clip_limit) or clip_limit < 0:
        raise ValueError(f"`clip_limit` must be a finite number >= 0, got {clip_limit!r}")
    return clip_limit


def check_int_sequence(value, length, param, what):
    """Return `value` (an int or a sequence of `length` ints) as a tuple of `length` ints >= 1."""
    if type(value) is tuple and len(value) == length and all(
            type(e) is int and e >= 1 for e in value):
        return value  # the common form, as the checks below would return it
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        value = (value,) * length
    try:
        entries = tuple(value)
    except TypeError:
        raise TypeError(f"`{param}` must be an int or a sequence of {length} ints, "
                        f"got {value!r}") from None
    if len(entries) != length:
        raise ValueError(f"`{param}` must have {length} entries ({what}), got {value!r}")
    if any(isinstance(e, (bool, np.bool_)) or not isinstance(e, numbers.Integral) for e in entries):
        raise TypeError(f"`{param}` entries must be integers, got {value!r}")
    if any(e < 1 for e in entries):
        raise ValueError(f"`{param}` entries must be >= 1, got {value!r}")
    return tuple(int(e) for e in entries)


def check_bool(value, param):
    """Return `value` as a bool; TypeError for anything else."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{param}` must be a bool, got {value!r}")
    return bool(value)


# ---------------------------------------------------------------------------------------------
# memory: parameters that size an allocation are checked before it is made

def available_memory(xp):
    """Bytes the backend of `xp` can still allocate: the host's available memory (Linux
    ``MemAvailable``, else the physical memory) for NumPy, the device's free memory for CuPy."""
    runtime = getattr(getattr(xp, "cuda", None), "runtime", None)
    if xp is not np and hasattr(runtime, "memGetInfo"):  # (a host stand-in has none)
        return int(runtime.memGetInfo()[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover
        return 1 << 40


def _size(nbytes):
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


#: Working memory that :func:`check_allocation` takes as available without asking (reading
#: it costs tens of microseconds, more than a small image's whole call).
ALWAYS_AVAILABLE = 1 << 24


def check_allocation(param, value, nbytes, xp):
    """Raise ValueError when `param` = `value` needs an estimated `nbytes` of working memory
    above half of what the backend has available (:func:`available_memory`); up to
    :data:`ALWAYS_AVAILABLE` bytes pass unasked."""
    if nbytes <= ALWAYS_AVAILABLE:
        return
    limit = available_memory(xp) // 2
    if nbytes > limit:
        raise ValueError(f"`{param}` {value!r} needs about {_size(nbytes)} of working memory, "
                         f"more than half of the {_size(2 * limit)} available: use a smaller "
                         f"`{param}`")


# ---------------------------------------------------------------------------------------------
# errors found in the data (raised by every engine with the same message)

#: Widest per-plane integer range handled with one bin per level (64 MiB of int32 per plane).
MAX_LEVELS = 1 << 24


def check_finite(finite):
    """Raise unless `finite` (a NaN or infinity was found otherwise)."""
    if not finite:
        raise ValueError("`images` must not contain NaN or infinity")


def check_unit_range(low, high):
    """Raise unless floating images with the range [`low`, `high`] are finite (NaN compares
    false) and lie in [-1, 1] (img_as_uint's rule), in that order."""
    check_finite(math.isfinite(low) and math.isfinite(high))
    if low < -1.0 or high > 1.0:
        raise ValueError("`images` of floating dtype must lie in [-1, 1] (img_as_uint's rule), "
                         f"got values in [{low}, {high}]")


def check_edges_increase(increasing, nbins, dtype):
    """Raise unless `increasing`: numpy.histogram refuses bin edges that repeat."""
    if not increasing:
        raise ValueError(
            f"`nbins` {nbins} is too many for the range of a plane in {np.dtype(dtype)}: its bin "
            "edges would repeat (numpy.histogram refuses this too); use fewer bins or float64"
        )


def check_level_span(widest):
    """Raise if one plane spans more than :data:`MAX_LEVELS` integer levels."""
    if widest > MAX_LEVELS:
        raise ValueError(
            f"`images` spans {widest} integer levels in one plane; at most {MAX_LEVELS} are "
            "supported with one bin per level: convert to float to use `nbins` bins"
        )


def check_planes_selected(xp, selects):
    """Raise unless `selects`, ``(P,)`` bool, is True for every plane: a plane whose mask
    selects no pixel has no histogram to equalize by."""
    if not bool(selects.all()):  # sync: the error names the first such plane
        no_pixel_selected(int(xp.argmin(selects)))


def no_pixel_selected(plane):
    """Raise: the mask selects no pixel of `plane` (the first such plane)."""
    raise ValueError(f"`mask` selects no pixel of plane {plane} (planes counted in C order "
                     "over the batch axes)")


def check_mask_selects(xp, mask_planes):
    """Raise unless the mask selects at least one pixel of every non-empty plane."""
    if mask_planes is None or mask_planes.shape[1] == 0 or mask_planes.shape[0] == 0:
        return
    check_planes_selected(xp, mask_planes.any(axis=1))
