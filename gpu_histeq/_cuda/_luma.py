"""The luma round trip of ``luminance=True`` on CuPy: the entry points :func:`split_luma`,
:func:`merge_luma` and :func:`equalize_luma` of :mod:`gpu_histeq._cuda` (the kernels in
``color.cu``, launched by ``_color.py``, which imports CuPy: imported here on first use only).
They answer as every entry point of the package (True, or a ``Declined``; its convention).
"""

import numpy as np

from . import _sources
from ._declined import Declined, _uncovered


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


def equalize_luma(rgb, nplanes, method, order, result, nbins=256):
    """The whole luma equalization of uint8 / uint16 / float32 / float64 planes, Y never stored:
    one launch for uint8 planes of at most ``_color.SMALL_PIXELS`` pixels, for uint16 planes of at
    most ``_ranks.SHARED_PIXELS[2]`` (by rank: no 65536-bin histogram or table) and for float planes
    of at most ``_color.SMALL_PIXELS`` with at most ``_kernels.SMALL_BINS`` bins; else three per
    group of planes (luma histograms, tables, the round trip through them) for integers.

    Parameters
    ----------
    rgb : (outer, 3, inner) C-contiguous cupy.ndarray
        ``nplanes`` planes, plane ``p`` the luma indices ``p * n`` to ``(p + 1) * n`` (``n =
        outer * inner / nplanes``): the image axes are the trailing axes of the luma.
    nplanes : int
    method : {"opencv", "pil", "skimage"}
        ``"pil"`` for uint8 only, ``"skimage"`` only for floats.
    order : {"rgb", "bgr"}
    result : (outer, 3, inner) C-contiguous cupy.ndarray of ``rgb.dtype``
    nbins : int, optional
        Bins of floating planes.

    Returns
    -------
    True or Declined
        True: bit for bit ``luma_path`` with the method's equalization of Y (scikit-image's CDF
        through ``rint(cdf * top)`` for integers). ``Declined("uncovered")``, nothing written,
        for float planes past the one-launch kernel (the caller then runs :func:`split_luma`, the
        uniform kernels and :func:`merge_luma`), planes of 2**31 pixels or more, or arrays as in
        :func:`split_luma`; ``Declined("irregular", written=True)`` for a float plane whose bin
        centers are less than two smallest normals apart (numpy.interp's own search).

    Raises
    ------
    ValueError
        Float planes, as the portable path: NaN or infinity in Y, `nbins` too many for a
        plane's range of Y (found after the kernel ran: `result` partly written).

    Notes
    -----
    Float planes synchronize once, to read the status word; integers never.
    """
    from ._color import SMALL_PIXELS, equalize_levels, equalize_small_u8
    from ._kernels import MAX_PIXELS, SMALL_BINS
    from ._ranks import SHARED_PIXELS
    declined = _uncovered_rgb(rgb, order, result)
    if declined is not None:
        return declined
    dtype = np.dtype(rgb.dtype)
    npixels = rgb.shape[0] * rgb.shape[2] // max(nplanes, 1)
    floating = dtype in _sources.FLOAT_DTYPES
    methods = ("skimage",) if floating else (
        ("opencv", "skimage") + (("pil",) if dtype == np.uint8 else ()))
    if (result.dtype != dtype or method not in methods or not 0 < npixels <= MAX_PIXELS
            or npixels * nplanes != rgb.size // 3
            or floating and not (npixels <= SMALL_PIXELS and nbins <= SMALL_BINS)):
        return _uncovered(f"{nplanes} {dtype} planes of {npixels} pixels, method {method!r}, "
                          f"{nbins} bins")
    with rgb.device:
        if floating:
            return _equalize_float(rgb, nplanes, nbins, order, result)
        if dtype == np.uint8 and npixels <= SMALL_PIXELS:
            equalize_small_u8(rgb, nplanes, method, order, result)
        elif dtype == np.uint16 and npixels <= SHARED_PIXELS[2]:
            from ._color import equalize_ranked
            equalize_ranked(rgb, nplanes, method, order, result)
        else:
            equalize_levels(rgb, nplanes, method, order, result)
    return True


def _equalize_float(rgb, nplanes, nbins, order, result):
    """:func:`equalize_luma` of small float planes: one launch, then the status word, raised or
    answered as ``_cuda._equalize`` answers it for a stored Y."""
    import cupy

    from .._validate import check_edges_increase, check_finite
    from ._color import equalize_small_float
    from ._kernels import STATUS_IRREGULAR, STATUS_NOT_FINITE, STATUS_REPEATED_EDGES
    status = cupy.zeros(1, np.int32)
    equalize_small_float(rgb, nplanes, nbins, order, status, result)
    flags = int(status[0])  # sync: errors and irregular planes, as portably
    check_finite(not flags & STATUS_NOT_FINITE)
    check_edges_increase(not flags & STATUS_REPEATED_EDGES, nbins, rgb.dtype)
    if flags & STATUS_IRREGULAR:
        return Declined("irregular", "bins narrower than two smallest normals", written=True)
    return True
