"""The luma round trip of ``luminance=True`` on CuPy: the entry points :func:`split_luma`,
:func:`merge_luma` and :func:`equalize_luma` of :mod:`gpu_histeq._cuda` (the kernels in
``color.cu``, launched by ``_color.py``, which imports CuPy: imported here on first use only).
They answer as every entry point of the package (True, or a ``Declined``; its convention).
"""

import numpy as np

from . import _sources
from ._declined import _uncovered


def _uncovered_rgb(rgb, order, *others):
    """Why C-contiguous ``(outer, 3, inner)`` `rgb` is not covered, or None: a dtype of
    ``_sources.LUMA_DTYPES``, an order of ``_sources.ORDERS``, pixels, C-contiguous arrays."""
    dtype = np.dtype(rgb.dtype)
    if dtype not in _sources.LUMA_DTYPES or order not in _sources.ORDERS:
        return _uncovered(f"{dtype} pixels in {order!r} order")
    if rgb.ndim != 3 or rgb.shape[1] != 3 or rgb.size == 0:
        return _uncovered(f"pixels of shape {rgb.shape}")
    if not all(a.flags.c_contiguous for a in (rgb, *others)):
        return _uncovered("arrays that are not C-contiguous")
    return None


def split_luma(rgb, order, luma):
    """Y of every pixel of `rgb` into `luma`, as ``color.split_luma`` computes it.

    Parameters
    ----------
    rgb : (outer, 3, inner) C-contiguous cupy.ndarray
        uint8, uint16, float32 or float64; channels in `order`.
    order : {"rgb", "bgr"}
    luma : (outer, inner) C-contiguous cupy.ndarray of ``rgb.dtype``

    Returns
    -------
    True or Declined
        ``Declined("uncovered")``, nothing written, for other dtypes (float16, uint32), orders,
        shapes, or non-contiguous arrays.
    """
    declined = _uncovered_rgb(rgb, order, luma)
    if declined is not None:
        return declined
    from ._color import split_luma as launch
    with rgb.device:
        launch(rgb, order, luma)
    return True


def merge_luma(rgb, luma, order, result):
    """`result` = `rgb` with its luma replaced by `luma`, as ``color.merge_luma`` of the chroma
    of ``color.split_luma(rgb)``: the chroma recomputed from `rgb`, never stored.

    Parameters
    ----------
    rgb : (outer, 3, inner) C-contiguous cupy.ndarray
    luma : (outer, inner) C-contiguous cupy.ndarray
        Of ``rgb.dtype``; for uint8 / uint16 `rgb` also float64 values in ``[0, 1]``
        (scikit-image's CDF), which become ``rint(value * top)`` as on the portable path.
    order : {"rgb", "bgr"}
    result : (outer, 3, inner) C-contiguous cupy.ndarray of ``rgb.dtype``

    Returns
    -------
    True or Declined
        As :func:`split_luma`; also ``Declined("uncovered")`` for another `luma` or `result`
        dtype.
    """
    dtype = np.dtype(rgb.dtype)
    luma_dtypes = (dtype, np.dtype(np.float64)) if dtype.kind == "u" else (dtype,)
    if np.dtype(luma.dtype) not in luma_dtypes or np.dtype(result.dtype) != dtype:
        return _uncovered(f"{np.dtype(luma.dtype)} luma of {dtype} pixels into "
                          f"{np.dtype(result.dtype)}")
    declined = _uncovered_rgb(rgb, order, luma, result)
    if declined is not None:
        return declined
    from ._color import merge_luma as launch
    with rgb.device:
        launch(rgb, luma, order, result)
    return True


def equalize_luma(rgb, nplanes, method, order, result):
    """The whole luma equalization of uint8 / uint16 planes, Y counted and never stored: one
    launch for uint8 planes of at most ``_color.SMALL_PIXELS`` pixels, else three per group of
    planes (luma histograms, tables, the round trip through them).

    Parameters
    ----------
    rgb : (outer, 3, inner) C-contiguous uint8 or uint16 cupy.ndarray
        ``nplanes`` planes, plane ``p`` the luma indices ``p * n`` to ``(p + 1) * n`` (``n =
        outer * inner / nplanes``): the image axes are the trailing axes of the luma.
    nplanes : int
    method : {"opencv", "pil", "skimage"}
        ``"pil"`` for uint8 only.
    order : {"rgb", "bgr"}
    result : (outer, 3, inner) C-contiguous cupy.ndarray of ``rgb.dtype``

    Returns
    -------
    True or Declined
        True: bit for bit ``luma_path`` with the method's equalization of Y (scikit-image's CDF
        through ``rint(cdf * top)``). ``Declined("uncovered")``, nothing written, for floating
        pixels (the caller then runs :func:`split_luma`, the uniform kernels and
        :func:`merge_luma`), planes of 2**31 pixels or more, or arrays as in
        :func:`split_luma`.
    """
    from ._color import SMALL_PIXELS, equalize_levels, equalize_small_u8
    from ._kernels import MAX_PIXELS
    declined = _uncovered_rgb(rgb, order, result)
    if declined is not None:
        return declined
    dtype = np.dtype(rgb.dtype)
    npixels = rgb.shape[0] * rgb.shape[2] // max(nplanes, 1)
    if (dtype not in _sources.LEVEL_DTYPES or result.dtype != dtype
            or method not in ("opencv", "skimage") + (("pil",) if dtype == np.uint8 else ())
            or not 0 < npixels <= MAX_PIXELS or npixels * nplanes != rgb.size // 3):
        return _uncovered(f"{nplanes} {dtype} planes of {npixels} pixels, method {method!r}")
    with rgb.device:
        if dtype == np.uint8 and npixels <= SMALL_PIXELS:
            equalize_small_u8(rgb, nplanes, method, order, result)
        else:
            equalize_levels(rgb, nplanes, method, order, result)
    return True
