"""Pure colour conversions: RGB <-> YCrCb exactly as OpenCV converts (imports nothing above it).

Integer images use OpenCV's 14-bit fixed-point coefficients, so Y, Cr and Cb are OpenCV's own
values; floating images use its floating coefficients. The luma equalization that uses them is
orchestrated in :mod:`gpu_histeq.equalize`.
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
