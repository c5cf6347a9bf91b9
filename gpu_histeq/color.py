"""Luma equalization of RGB images: RGB -> YCrCb (OpenCV's conversion), equalize Y, back.

Integer images use OpenCV's 14-bit fixed-point coefficients, so Y, Cr and Cb are OpenCV's own
values; floating images use its floating coefficients.
"""

import numpy as np

_SHIFT = 14
_HALF_UNIT = 1 << (_SHIFT - 1)
# OpenCV's RGB -> YCrCb coefficients (x 2**14 for integers): Y weights, Cr and Cb scales
_Y_WEIGHTS = (0.299, 0.587, 0.114)
_Y_WEIGHTS_FIXED = (4899, 9617, 1868)
_CR, _CB = 0.713, 0.564
_CR_FIXED, _CB_FIXED = 11682, 9241
# YCrCb -> RGB: R = Y + 1.403 Cr', G = Y - 0.714 Cr' - 0.344 Cb', B = Y + 1.773 Cb'
_BACK = (1.403, -0.714, -0.344, 1.773)
_BACK_FIXED = (22987, -11698, -5636, 29049)


def _descale(value):
    return (value + _HALF_UNIT) >> _SHIFT


def to_ycrcb(xp, red, green, blue, dtype):
    """Y, Cr, Cb of RGB channels: int64 for integer `dtype`, float64 otherwise."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        luma = _Y_WEIGHTS[0] * red + _Y_WEIGHTS[1] * green + _Y_WEIGHTS[2] * blue
        delta = 0.5
        return luma, (red - luma) * _CR + delta, (blue - luma) * _CB + delta
    red, green, blue = (c.astype(np.int64) for c in (red, green, blue))
    delta = (1 << (8 * dtype.itemsize - 1)) << _SHIFT
    luma = _descale(red * _Y_WEIGHTS_FIXED[0] + green * _Y_WEIGHTS_FIXED[1]
                    + blue * _Y_WEIGHTS_FIXED[2])
    chroma_red = _descale((red - luma) * _CR_FIXED + delta)
    chroma_blue = _descale((blue - luma) * _CB_FIXED + delta)
    top = np.iinfo(dtype).max
    return (xp.clip(luma, 0, top), xp.clip(chroma_red, 0, top), xp.clip(chroma_blue, 0, top))


def from_ycrcb(xp, luma, chroma_red, chroma_blue, dtype):
    """RGB channels of `dtype` from Y, Cr, Cb (OpenCV's inverse, saturated for integers)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        cr, cb = chroma_red - 0.5, chroma_blue - 0.5
        return (luma + _BACK[0] * cr, luma + _BACK[1] * cr + _BACK[2] * cb, luma + _BACK[3] * cb)
    half = 1 << (8 * dtype.itemsize - 1)
    luma = luma.astype(np.int64)
    cr, cb = chroma_red.astype(np.int64) - half, chroma_blue.astype(np.int64) - half
    top = np.iinfo(dtype).max
    red = luma + _descale(cr * _BACK_FIXED[0])
    green = luma + _descale(cb * _BACK_FIXED[2] + cr * _BACK_FIXED[1])
    blue = luma + _descale(cb * _BACK_FIXED[3])
    return tuple(xp.clip(c, 0, top).astype(dtype) for c in (red, green, blue))


def equalize_luminance(xp, images, nbins, axes, mask, method, channel_axis, out):
    """Equalize the luma of RGB `images` (channels along `channel_axis`) with `method`."""
    from .equalize import equalize_hist

    if channel_axis is None:
        raise ValueError("`luminance=True` needs `channel_axis`, the axis of the R, G, B channels")
    if images.shape[channel_axis] != 3:
        raise ValueError(f"`luminance=True` needs 3 (R, G, B) channels along `channel_axis` "
                         f"{channel_axis}, got {images.shape[channel_axis]}")
    dtype = np.dtype(images.dtype)
    if dtype.kind == "i":
        raise TypeError(f"`luminance=True` needs unsigned integer or floating `images`, got {dtype}")
    if dtype.kind == "f" and method != "skimage":
        raise TypeError(f"`method={method!r}` does not fit floating `images`")
    red, green, blue = (xp.take(images, c, axis=channel_axis) for c in range(3))
    luma, chroma_red, chroma_blue = to_ycrcb(xp, red, green, blue, dtype)
    # the channel axis is gone from the planes; image axes after it move down by one
    luma_axes = tuple(a - (a > channel_axis) for a in axes)
    luma_mask = None if mask is None else xp.broadcast_to(mask, images.shape).all(axis=channel_axis)
    equalized = equalize_hist(luma.astype(dtype), nbins, axes=luma_axes, mask=luma_mask,
                              method=method)
    if method == "skimage" and dtype.kind == "u":  # cdf in (0, 1] back to the integer range
        equalized = xp.rint(equalized * np.iinfo(dtype).max)
    channels = from_ycrcb(xp, equalized, chroma_red, chroma_blue, dtype)
    result = xp.stack(channels, axis=channel_axis)
    if out is None:
        return result.astype(dtype, copy=False)
    out[...] = result
    return out
