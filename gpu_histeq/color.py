"""Pure colour conversions (imports nothing of the package).

* RGB <-> YCrCb exactly as OpenCV converts: integer images use OpenCV's 14-bit fixed-point
  coefficients, so Y, Cr and Cb are OpenCV's own values; floating images use its floating
  coefficients. This is the portable twin of ``_color.c``; the luma path that uses them is
  orchestrated in :mod:`gpu_histeq.equalize`.
* RGB <-> HSV exactly as :func:`skimage.color.rgb2hsv` / :func:`skimage.color.hsv2rgb` (after
  :func:`as_float`, scikit-image's ``img_as_float``), for ``equalize_adapthist`` of RGB images.
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


def _work_type(dtype):
    """Integer type that holds every intermediate exactly: int32 up to 16 bits, else int64."""
    return np.int32 if np.dtype(dtype).itemsize <= 2 else np.int64


def to_ycrcb(xp, red, green, blue, dtype):
    """Y, Cr, Cb of RGB channels: integers (int32 up to 16 bits, int64 above) for unsigned
    `dtype` up to 32 bits, the floating type of the channels otherwise."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        luma = _Y_WEIGHTS[0] * red + _Y_WEIGHTS[1] * green + _Y_WEIGHTS[2] * blue
        delta = 0.5
        return luma, (red - luma) * _CR + delta, (blue - luma) * _CB + delta
    work = _work_type(dtype)
    top = np.iinfo(dtype).max
    delta = ((1 << (8 * dtype.itemsize - 1)) << _SHIFT) + _HALF_UNIT
    red, blue = red.astype(work), blue.astype(work)
    # in place, one temporary at a time (the same integer arithmetic as OpenCV's fixed point)
    luma = xp.multiply(green, _Y_WEIGHTS_FIXED[1], dtype=work)
    luma += red * _Y_WEIGHTS_FIXED[0]
    luma += blue * _Y_WEIGHTS_FIXED[2]
    luma += _HALF_UNIT
    luma >>= _SHIFT  # within [0, top]: the weights sum to 2**14
    chroma = []
    for channel, scale in ((red, _CR_FIXED), (blue, _CB_FIXED)):
        channel -= luma
        channel *= scale
        channel += delta
        channel >>= _SHIFT
        chroma.append(xp.clip(channel, 0, top, out=channel))
    return luma, chroma[0], chroma[1]


def from_ycrcb(xp, luma, chroma_red, chroma_blue, dtype):
    """RGB channels of `dtype` from Y, Cr, Cb (OpenCV's inverse, saturated for integers)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        cr, cb = chroma_red - 0.5, chroma_blue - 0.5
        return (luma + _BACK[0] * cr, luma + _BACK[1] * cr + _BACK[2] * cb, luma + _BACK[3] * cb)
    half = 1 << (8 * dtype.itemsize - 1)
    work = _work_type(dtype)
    top = np.iinfo(dtype).max
    cr = chroma_red.astype(work)
    cr -= half
    cb = chroma_blue.astype(work)
    cb -= half
    channels = []
    for first, (weight_cr, weight_cb) in ((cr, (_BACK_FIXED[0], 0)),
                                          (None, (_BACK_FIXED[1], _BACK_FIXED[2])),
                                          (cb, (0, _BACK_FIXED[3]))):
        if weight_cr and weight_cb:  # green: both chroma terms, then one descale
            term = cb * weight_cb
            term += cr * weight_cr
        else:
            term = first * (weight_cr or weight_cb)
        term += _HALF_UNIT
        term >>= _SHIFT
        term += luma
        channels.append(xp.clip(term, 0, top, out=term).astype(dtype))
    return tuple(channels)


def split_luma(xp, rgb):
    """Y of C-contiguous ``(outer, 3, inner)`` RGB, and the chroma :func:`merge_luma` needs.

    Returns
    -------
    luma : (outer, inner) ndarray
        The dtype of `rgb` for integers, a floating type for floats.
    chroma : tuple of two (outer, inner) ndarrays
        Cr and Cb.
    """
    dtype = np.dtype(rgb.dtype)
    luma, chroma_red, chroma_blue = to_ycrcb(xp, rgb[:, 0], rgb[:, 1], rgb[:, 2], dtype)
    if dtype.kind != "f":
        luma = luma.astype(dtype)
    return luma, (chroma_red, chroma_blue)


def merge_luma(xp, luma, chroma, out):
    """Write RGB from the new `luma` and the `chroma` of :func:`split_luma` into `out`,
    ``(outer, 3, inner)``: saturated for integers, clipped to ``[0, 1]`` for floats."""
    dtype = np.dtype(out.dtype)
    if dtype.kind == "f":
        channels = from_ycrcb(xp, luma, chroma[0], chroma[1], dtype)
        for c, channel in enumerate(channels):
            out[:, c] = xp.clip(channel, 0, 1)
        return
    for c, channel in enumerate(from_ycrcb(xp, luma, chroma[0], chroma[1], dtype)):
        out[:, c] = channel


def as_float(xp, image):
    """:func:`skimage.util.img_as_float` as ``skimage.color`` calls it: float32 for float16 and
    float32 input, float64 otherwise, with scikit-image's arithmetic per integer dtype."""
    dtype = np.dtype(image.dtype)
    out = np.float32 if dtype in (np.float16, np.float32) else np.float64
    if dtype.kind == "f":
        return image.astype(out)
    info = np.iinfo(dtype)
    compute = np.float32 if dtype.itemsize <= 4 and out == np.float32 else np.float64
    scaled = xp.multiply(image, 1.0 / info.max, dtype=compute)
    if dtype.kind == "i":
        xp.maximum(scaled, -1.0, out=scaled)
    return scaled.astype(out, copy=False)


def rgb_to_hsv(xp, rgb):
    """Hue, saturation and value of floating RGB (channels last), :func:`skimage.color.rgb2hsv`'s
    arithmetic step by step."""
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = rgb.max(-1)
    delta = value - rgb.min(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        saturation = delta / value
        saturation[delta == 0.0] = 0.0
        hue = xp.where(blue == value, 4.0 + (red - green) / delta,
                       xp.where(green == value, 2.0 + (blue - red) / delta,
                                (green - blue) / delta))
        hue = (hue / 6.0) % 1.0
    hue[delta == 0.0] = 0.0
    hue[xp.isnan(hue)] = 0
    saturation[xp.isnan(saturation)] = 0
    return hue, saturation, value


def hsv_to_rgb(xp, hue, saturation, value):
    """RGB (channels last) of floating HSV, :func:`skimage.color.hsv2rgb`'s arithmetic."""
    sector = xp.floor(hue * 6)
    fraction = hue * 6 - sector
    p = value * (1 - saturation)
    q = value * (1 - fraction * saturation)
    t = value * (1 - (1 - fraction) * saturation)
    sector = sector.astype(np.uint8) % 6
    choices = ((value, t, p), (q, value, p), (p, value, t), (p, q, value), (t, p, value),
               (value, p, q))
    channels = []
    for c in range(3):
        channel = xp.empty_like(value)
        for k, choice in enumerate(choices):
            xp.copyto(channel, choice[c], where=sector == k)
        channels.append(channel)
    return xp.stack(channels, axis=-1)
