"""Argument checks shared by every public function: shapes and dtypes only, no device work."""

import numbers

import numpy as np

METHODS = ("opencv", "pil", "skimage")


def check_images(images, xp):
    """Check the dtype and number of dimensions of `images`."""
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
        raise ValueError(
            f"`nbins` must be {levels} (one bin per level of {np.dtype(dtype)}) or the default 256 "
            f"with `method={method!r}`, got {nbins}"
        )
    return levels


def check_mask(mask, images, xp):
    """Return `mask` broadcast to `images.shape` as a boolean array of the same backend."""
    if mask is None:
        return None
    if not hasattr(mask, "dtype") or np.dtype(mask.dtype) != np.bool_:
        raise TypeError(f"`mask` must be a boolean array, got {getattr(mask, 'dtype', type(mask))}")
    try:
        return xp.broadcast_to(mask, images.shape)
    except ValueError:
        raise ValueError(
            f"`mask` of shape {mask.shape} does not broadcast to `images` of shape {images.shape}"
        ) from None


def check_out(out, shape, dtype, xp):
    """Check a preallocated result array."""
    if out is None:
        return None
    if out.shape != tuple(shape):
        raise ValueError(f"`out` must have shape {tuple(shape)}, got {out.shape}")
    if np.dtype(out.dtype) != np.dtype(dtype):
        raise TypeError(f"`out` must have dtype {np.dtype(dtype)}, got {out.dtype}")
    if xp is np and not out.flags.writeable:
        raise ValueError("`out` must be writeable")
    return out


def check_lut_inputs(images, lut):
    """Check that `images` can index the tables `lut` (integer pixels, a table axis last)."""
    if np.dtype(images.dtype).kind not in "iu":
        raise TypeError(f"`images` must be an integer array to index a table, got {images.dtype}")
    if not hasattr(lut, "ndim") or lut.ndim < 1:
        raise ValueError("`lut` must be an array with the table along its last axis")
