"""CUDA fast paths for CuPy input. Imported only when a CuPy array is seen.

Each function here returns False (or None) for a case its kernels do not cover, and the caller
runs the portable path, which the kernels reproduce bit for bit:

* :func:`equalize` -- the whole of ``equalize_hist`` on uint8 / uint16 planes (every method) and
  on float32 / float64 planes (``method="skimage"``);
* :func:`block_counts` -- the histograms of a ``LevelBinning`` (uint8 / uint16) or a
  ``UniformBinning`` (float32 / float64);
* :func:`apply_lut` -- the remap of uint8 / uint16 planes through per-plane or shared tables.

No index array is made: extra device memory is per-plane scratch (``planes x bins``). CuPy is
imported by :mod:`._kernels` on first use, so importing this package (or ``_sources``) does not.
Whether these run at all is decided in :func:`gpu_histeq._engine.select` alone.
"""

import numpy as np

from .._binning import LevelBinning, UniformBinning
from .._validate import check_edges_increase, check_finite, check_levels_nbins
from . import _sources


def _covers(planes, *others):
    """Non-empty C-contiguous (P, N) planes with N below the 32-bit count limit."""
    from ._kernels import MAX_PIXELS
    nplanes, npixels = planes.shape
    return (nplanes > 0 and 0 < npixels <= MAX_PIXELS
            and all(a is None or a.flags.c_contiguous for a in (planes, *others)))


def equalize(planes, mask_planes, method, nbins, result):
    """Equalize every row of `planes` into `result` with the fused kernels.

    Parameters
    ----------
    planes : (P, N) cupy.ndarray
        C-contiguous planes.
    mask_planes : (P, N) bool cupy.ndarray or None
        Pixels counted in each plane's histogram (every pixel is remapped).
    method : {"opencv", "pil", "skimage"}
    nbins : int
        Bins of floating planes; checked against the levels for ``"opencv"`` / ``"pil"``.
    result : (P, N) cupy.ndarray
        Output of the method's dtype.

    Returns
    -------
    bool
        False when the kernels do not cover this case: nothing was written, or (a floating plane
        whose bin centers are less than two smallest normals apart, which the portable path
        interpolates with numpy.interp's own search) `result` was written and must be redone.

    Raises
    ------
    ValueError
        As the portable path and in its order: `nbins` that does not fit the levels, NaN or
        infinity in floating planes, `nbins` too many for a floating plane's range (repeated bin
        edges). Found after the kernels ran: `result` is then left partly written.

    Notes
    -----
    Floating planes synchronize once, to read the status word.
    """
    if not _covers(planes, mask_planes, result):
        return False
    from ._kernels import equalize_levels, equalize_uniform
    dtype = np.dtype(planes.dtype)
    with planes.device:
        if dtype in _sources.LEVEL_DTYPES:
            if method in ("opencv", "pil"):
                check_levels_nbins(nbins, dtype, method)
            equalize_levels(planes, mask_planes, method, result)
            return True
        if dtype in _sources.FLOAT_DTYPES and method == "skimage":
            import cupy
            from ._kernels import STATUS_IRREGULAR, STATUS_NOT_FINITE, STATUS_REPEATED_EDGES
            status = cupy.zeros(1, np.int32)
            equalize_uniform(planes, mask_planes, nbins, result, status)
            flags = int(status[0])  # sync: errors and irregular planes, as portably
            check_finite(not flags & STATUS_NOT_FINITE)
            check_edges_increase(not flags & STATUS_REPEATED_EDGES, nbins, dtype)
            return not flags & STATUS_IRREGULAR
    return False


def block_counts(planes, mask_planes, binning):
    """``(P, nbins)`` int64 counts of `binning` over `planes`, or None when not covered."""
    if not _covers(planes, mask_planes):
        return None
    import cupy
    from ._kernels import level_histograms, uniform_histograms
    dtype = np.dtype(planes.dtype)
    hists = cupy.zeros((planes.shape[0], binning.nbins), np.uint32)
    with planes.device:
        if isinstance(binning, LevelBinning) and dtype in _sources.LEVEL_DTYPES:
            low = None if binning.low is None else cupy.ascontiguousarray(binning.low, np.int64)
            level_histograms(planes, mask_planes, low, binning.nbins, hists)
        elif isinstance(binning, UniformBinning) and dtype in _sources.FLOAT_DTYPES:
            first = cupy.ascontiguousarray(binning.first[:, 0])
            last = cupy.ascontiguousarray(binning.edges[:, -1])
            uniform_histograms(planes, mask_planes, first, last, 0, binning.nbins, hists)
        else:
            return None
    return hists.astype(np.int64)


def apply_lut(planes, tables, result):
    """``result[p] = tables[p][planes[p]]`` (or ``tables[0]`` for all planes); False if not covered.

    Parameters
    ----------
    planes : (P, N) uint8 or uint16 cupy.ndarray
        Values already checked to lie in ``[0, L)``.
    tables : (P, L) or (1, L) cupy.ndarray
    result : (P, N) cupy.ndarray of ``tables.dtype``
    """
    dtype = np.dtype(planes.dtype)
    if (dtype not in _sources.LEVEL_DTYPES or np.dtype(tables.dtype) not in _sources.C_TYPES
            or tables.shape[-1] > np.iinfo(np.int32).max or not _covers(planes, tables, result)):
        return False
    from ._kernels import remap
    with planes.device:
        remap(planes, tables, 0 if tables.shape[0] == 1 else tables.shape[1], result)
    return True
