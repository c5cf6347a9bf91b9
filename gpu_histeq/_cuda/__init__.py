"""CUDA fast paths for CuPy input. Imported only when a CuPy array is seen.

Each entry point below either produces its whole result with the kernels or declines, and the
caller then runs the portable path, which the kernels reproduce bit for bit:

* :func:`equalize` -- the whole of ``equalize_hist`` on uint8 / uint16 planes (every method), on
  int8 / int16 (small planes by rank, ``ranks.cu``, large ones by level) / int32 / uint32 (by
  rank) planes and on float32 / float64 planes, and float16 planes in at most 2048 bins
  (``method="skimage"``; ``uniform.cu``'s gpu_histeq_half: numpy.float16's arithmetic);
* :func:`histogram` -- the whole of ``histogram`` / ``cumulative_distribution`` on integer (8,
  16, 32 bits) and float32 / float64 planes: ranges, counts and the (P, B) end in one launch
  each (``histogram.cu``; the entry point in ``_histogram.py``);
* :func:`block_counts` -- the histograms of a ``LevelBinning`` (uint8 / uint16, and int8 / int16
  with a per-plane lowest level) or a ``UniformBinning`` (float32 / float64);
* :func:`apply_lut` -- the remap of uint8 / uint16 planes through per-plane or shared tables;
* :func:`match` -- scikit-image's ``match_histograms`` of planes through shared or per-plane
  references of the same dtype (``ranks.cu``: both sorted by rank, no table per level);
* :func:`clahe` -- OpenCV's CLAHE of uint8 / uint16 planes (``clahe.cu``: tile tables, blend;
  uint16 tiles that sort in shared memory by rank, without 65536-entry tables);
* :func:`adapthist` -- scikit-image's ``equalize_adapthist`` of images of 2 to 6 axes
  (``adapthist.cu``: levels, region tables with the clip loop on the device, interpolation);
* :func:`split_luma`, :func:`merge_luma`, :func:`equalize_luma` -- the RGB <-> YCrCb round trip
  of ``luminance=True`` (``color.cu``; the entry points in ``_luma.py``), and the whole luma
  equalization of uint8 / uint16 planes and of small float32 / float64 planes;
* :func:`equalize_packed`, :func:`packed_counts`, :func:`apply_packed` -- the same three on
  packed planes of different sizes (a ragged batch: plane ``p`` is ``values[starts[p]:starts[p
  + 1]]`` of one 1-d buffer), as :mod:`gpu_histeq._interop._packed` computes them.

Convention: what an entry point answers (every entry point here, and any new one)
-----------------------------------------------------------------------------------
* **Wrote**: ``True`` for an entry point that writes into a `result` it was given, or the
  result itself (the counts array) for one that returns it. Only then did the kernels produce
  every value of the result.
* **Declined**: a :class:`Declined` (falsy, ``_declined.py``), whose ``reason`` is a key of
  :data:`DECLINES`:
  ``"uncovered"`` -- decided from shapes, dtypes, layouts and arguments *before any launch*,
  nothing written (the portable path is the design for that case); or a reason found by the
  kernels *after* they ran (``"irregular"``), with ``written=True``: `result` was partly
  written and must be redone. A new data-dependent reason is added to :data:`DECLINES` with the
  inputs that cause it. An entry point never answers a bare ``False`` or ``None``.
* **Raised**: a data error (NaN, repeated bin edges) is raised by the entry point itself, in
  the portable path's order, never left for the portable path to find.

:mod:`gpu_histeq._engine` turns a :class:`Declined` into its steps' fallbacks and reports every
outcome to :func:`gpu_histeq._engine.recording` (one :class:`~gpu_histeq._engine.Step` per
step). Tests assert the answer, never only that "a kernel ran": ``assert_wrote(outcome)`` /
``assert_declined(outcome, reason)`` on a direct call, ``expect_decline(reason)`` before a
public call whose decline is the documented expectation; the ``cp`` / ``xp`` CuPy fixtures fail
a test in which any step fell back or declined otherwise (tests/conftest.py,
tests/emulation/README.md).

The kernels are the same for both layouts: each takes an optional ``spans`` array (null for
``(P, N)`` rows at ``p * N``), peels the pixels before a packed plane's first 16-byte pack, and
over packed planes runs a 1-d grid of the blocks each plane needs (``_kernels.Planes``).

No index array is made: extra device memory is per-plane scratch (``planes x bins``). CuPy is
imported by :mod:`._kernels` on first use, so importing this package (or ``_sources``) does not.
Whether these run at all is decided in :func:`gpu_histeq._engine.select` alone.
"""

import numpy as np

from .._binning import LevelBinning, UniformBinning
from .._validate import (check_edges_increase, check_finite, check_levels_nbins,
                         check_unit_range)
from . import _sources
from ._declined import DECLINES, Declined, _uncovered, _uncovered_rows
from ._histogram import histogram
from ._luma import equalize_luma, merge_luma, split_luma

__all__ = ["DECLINES", "Declined", "adapthist", "apply_lut", "apply_packed", "block_counts", "clahe",
           "equalize", "equalize_luma", "equalize_packed", "histogram", "match", "merge_luma",
           "packed_counts", "split_luma"]


_loaded: dict = {}
_INT32_MAX = np.iinfo(np.int32).max


def _launchers():
    """``(_kernels, _ranks, _clahe)``, the launcher modules, imported on the first CuPy call
    (they import CuPy, which importing this package must not); later calls skip the import
    statements, which cost more than a repeated call's plan lookup."""
    modules = _loaded.get("launchers")
    if modules is None:
        from . import _clahe, _kernels, _ranks
        modules = _loaded["launchers"] = (_kernels, _ranks, _clahe)
    return modules


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
    True or Declined
        True when the kernels wrote every value of `result`; ``Declined("uncovered")`` (nothing
        written) for other dtypes, methods or layouts; ``Declined("irregular", written=True)``
        for a floating plane whose bin centers are less than two smallest normals apart, which
        the portable path interpolates with numpy.interp's own search (`result` to be redone).

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
    declined = _uncovered_rows(planes, mask_planes, result)
    if declined is not None:
        return declined
    return _equalize(_launchers()[0].Planes(planes, mask_planes, result), method, nbins)


def _equalize(planes, method, nbins):
    """:func:`equalize` of ``_kernels.Planes`` (either layout) into ``planes.out``."""
    kernels, ranks, _ = _launchers()
    dtype = np.dtype(planes.values.dtype)
    # One path per case, the one with the smaller counted budget (benchmarks/gpu_model.py):
    # uint8 by the 256-level kernels; int8 / uint16 / int16 planes whose keys sort in shared
    # memory (_ranks.SHARED_PIXELS) by rank, one launch; larger ones by the level kernels (int8
    # with its sign bit flipped, int16 binned from a per-plane low of -32768), no sort scratch;
    # int32 / uint32 by rank up to _ranks.MAX_PIXELS pixels.
    with planes.values.device:
        integer = (dtype in _sources.LEVEL_DTYPES and (method != "pil" or dtype == np.uint8)
                   or dtype in _sources.RANK_DTYPES and method == "skimage")
        if integer:
            if method in ("opencv", "pil"):
                check_levels_nbins(nbins, dtype, method)
            if dtype == np.uint8:
                kernels.equalize_levels(planes, method)
            elif dtype.itemsize <= 2:
                small, planes = planes.split(ranks.SHARED_PIXELS[dtype.itemsize])
                if small is not None:
                    ranks.equalize_ranked(small, method)
                if planes is not None:
                    kernels.equalize_levels(_sign_flipped(planes) if dtype == np.int8 else planes,
                                            method)
            elif planes.largest > ranks.MAX_PIXELS:
                return _uncovered(f"{dtype} planes of more than {ranks.MAX_PIXELS} pixels")
            else:
                ranks.equalize_ranked(planes, method)
            return True
        if dtype == _sources.HALF and method == "skimage" and nbins > _sources.HALF_BINS:
            return _uncovered(f"float16 planes in more than {_sources.HALF_BINS} bins")
        if (dtype in _sources.FLOAT_DTYPES or dtype == _sources.HALF) and method == "skimage":
            status = kernels.cupy.zeros(1, np.int32)
            kernels.equalize_uniform(planes, nbins, status)
            flags = int(status[0])  # sync: errors and irregular planes, as portably
            check_finite(not flags & kernels.STATUS_NOT_FINITE)
            check_edges_increase(not flags & kernels.STATUS_REPEATED_EDGES, nbins, dtype)
            if flags & kernels.STATUS_IRREGULAR:
                return Declined("irregular", "bins narrower than two smallest normals",
                                written=True)
            return True
    return _uncovered(f"{dtype} planes with method {method!r}")


def _sign_flipped(planes):
    """int8 / int16 planes as uint8 / uint16 levels in the same order (the sign bit flipped,
    ``v + 2**(bits - 1)``): their skimage tables are the same numbers at every pixel, as the
    portable path's tables over each plane's own range (one elementwise launch, no sync)."""
    import cupy
    from ._kernels import Planes
    unsigned = np.dtype(f"u{planes.itemsize}")
    flipped = cupy.bitwise_xor(planes.values.view(unsigned),
                               unsigned.type(1 << (8 * planes.itemsize - 1)))
    return Planes(flipped, planes.mask, planes.out, planes.spans)


def block_counts(planes, mask_planes, binning):
    """``(P, nbins)`` int64 counts of `binning` over `planes`, or ``Declined("uncovered")``."""
    declined = _uncovered_rows(planes, mask_planes)
    if declined is not None:
        return declined
    from ._kernels import Planes
    return _counts(Planes(planes, mask_planes), binning)


def _counts(planes, binning):
    """:func:`block_counts` of ``_kernels.Planes`` (either layout), one launch per group."""
    import cupy
    from ._kernels import level_histograms, uniform_histograms
    dtype = np.dtype(planes.values.dtype)
    shift = 0
    if (isinstance(binning, LevelBinning) and dtype in _sources.SIGNED_LEVEL_DTYPES
            and binning.low is not None):  # v - low == flipped v - (low + 2**(bits - 1))
        planes, dtype = _sign_flipped(planes), np.dtype(f"u{dtype.itemsize}")
        shift = 1 << (8 * dtype.itemsize - 1)
    if isinstance(binning, LevelBinning) and dtype in _sources.LEVEL_DTYPES:
        low = None if binning.low is None else cupy.ascontiguousarray(binning.low, np.int64)
        if shift:
            low = low + shift
        bounds = None
    elif isinstance(binning, UniformBinning) and dtype in _sources.FLOAT_DTYPES:
        low, bounds = None, (cupy.ascontiguousarray(binning.first[:, 0]),
                             cupy.ascontiguousarray(binning.edges[:, -1]))
    else:
        return _uncovered(f"{type(binning).__name__} of {dtype} planes")
    hists = cupy.zeros((planes.count, binning.nbins), np.uint32)
    with planes.values.device:
        for rows, group in planes.groups():
            if bounds is None:
                level_histograms(group, None if low is None else low[rows], binning.nbins,
                                 hists[rows])
            else:
                uniform_histograms(group, bounds[0][rows], bounds[1][rows], 0, binning.nbins,
                                   hists[rows])
    return hists.astype(np.int64)


def apply_lut(planes, tables, result):
    """``result[p] = tables[p][planes[p]]`` (or ``tables[0]`` for all planes); False if not covered.

    Parameters
    ----------
    planes : (P, N) uint8 or uint16 cupy.ndarray
        Values already checked to lie in ``[0, L)``.
    tables : (P, L) or (1, L) cupy.ndarray
    result : (P, N) cupy.ndarray of ``tables.dtype``

    Returns
    -------
    True or Declined
        ``Declined("uncovered")``, nothing written, for other value or table dtypes, tables of
        2**31 entries or more, empty or non-contiguous arrays.
    """
    dtype = np.dtype(planes.dtype)
    if (dtype not in _sources.LEVEL_DTYPES or np.dtype(tables.dtype) not in _sources.C_TYPES
            or tables.shape[-1] > _INT32_MAX):
        return _uncovered(f"{dtype} values through {np.dtype(tables.dtype)} tables of "
                          f"{tables.shape[-1]} entries")
    declined = _uncovered_rows(planes, tables, result)
    if declined is not None:
        return declined
    return _apply(_launchers()[0].Planes(planes, None, result), tables)


def _apply(planes, tables):
    """:func:`apply_lut` of ``_kernels.Planes`` (either layout) into ``planes.out``."""
    remap = _launchers()[0].remap
    shared = tables.shape[0] == 1
    with planes.values.device:
        for rows, group in planes.groups():
            remap(group, tables if shared else tables[rows], 0 if shared else tables.shape[1])
    return True


def clahe(planes, shape, grid, tile_shape, limit, scale, result):
    """OpenCV's CLAHE of every row of `planes` into `result`: True, or ``Declined("uncovered")``,
    writing nothing, where the kernels do not cover the case (``_clahe.clahe``: other dtypes,
    non-contiguous arrays, planes of 2**31 pixels or more, tiles of 2**32 pixels or more).

    Bit for bit the portable path (``adaptive._clahe_planes``) and ``_clahe.c``; no host
    synchronisation, nothing uploaded: the geometry (reflect-101 sources, neighbour tiles,
    float32 weights) is computed in the kernels from the scalars.
    """
    if _launchers()[2].clahe(planes, shape, grid, tile_shape, limit, scale, result):
        return True
    return _uncovered(f"CLAHE of {np.dtype(planes.dtype)} planes of shape {planes.shape} in "
                      f"tiles of {tile_shape}")


def adapthist(planes, shape, kernel, nbins, clip, result):
    """scikit-image's ``equalize_adapthist`` of every row of `planes` into `result` with the
    kernels of ``adapthist.cu``.

    Parameters
    ----------
    planes : (P, N) cupy.ndarray
        uint8, uint16, int8, int16 or floating planes of ``N = prod(shape)`` pixels.
    shape, kernel : tuple of int
        The image shape and the contextual region shape (one entry per image axis).
    nbins : int
    clip : (int, int, float)
        Clip limit in counts, bin width and table scale (``adaptive._adapthist``).
    result : (P, N) float32 / float64 cupy.ndarray

    Returns
    -------
    True or Declined
        True when the kernels wrote every value of `result`; ``Declined("uncovered")``, nothing
        written, for images of more than 6 axes, non-contiguous arrays, planes of 2**31
        pixels or more or regions of 2**32 pixels or more (``_adapthist.covers``).

    Raises
    ------
    ValueError
        NaN or infinity, then values outside [-1, 1], in floating planes, as
        ``adaptive._adapthist`` (found after the kernels ran: `result` is then partly written).

    Notes
    -----
    Equal to ``adaptive._adapthist_planes`` bit for bit. Integer planes: no synchronisation;
    floating planes synchronize once, to read the status word.
    """
    import cupy
    from . import _adapthist
    why = _adapthist.covers(planes, shape, kernel, nbins, result)
    if why is not None:
        return _uncovered(why)
    with planes.device:
        # float16 is scaled in float32, as adaptive._as_uint16 does it
        values = planes.astype(np.float32) if planes.dtype == np.float16 else planes
        stats = cupy.zeros(4 * planes.shape[0] + 1, np.uint32)  # status word, plane ranges
        _adapthist.adapthist(values, stats, result, shape, kernel, nbins, clip)
        if values.dtype.kind == "f":
            flags = int(stats[0])  # sync: img_as_uint's NaN and [-1, 1] checks
            check_finite(not flags & _adapthist.STATUS_NOT_FINITE)
            if flags & _adapthist.STATUS_OUT_OF_RANGE:  # the message names the range: 2 more
                check_unit_range(float(planes.min()), float(planes.max()))
    return True


def match(planes, ref_planes, owner, result):
    """scikit-image's histogram matching of every row of `planes` through reference row
    ``owner[p]``, into `result`, with the kernels of ``ranks.cu``.

    Parameters
    ----------
    planes : (P, N_s) cupy.ndarray
    ref_planes : (R, N_t) cupy.ndarray
    owner : (P,) intp numpy.ndarray
        The reference row of each plane, on the host: uploaded only when it is neither all 0
        (one reference) nor ``0 .. P - 1`` (one per plane).
    result : (P, N_s) float64 cupy.ndarray, or float32 for float32 planes
        (the float64 match cast to float32 in the kernel, as ``astype`` casts it).

    Returns
    -------
    True or Declined
        True when the kernels wrote every value of `result`; ``Declined("uncovered")``, nothing
        written, for images and reference of different dtypes or of a dtype outside
        ``_sources.MATCH_DTYPES``, rows of more than ``_ranks.MAX_PIXELS`` pixels, empty or
        non-contiguous arrays.

    Raises
    ------
    ValueError
        NaN or infinity in floating images, then in the reference, as ``matching._match_planes``
        (found after the kernels ran: `result` is then partly written).

    Notes
    -----
    Equal to ``matching._match_planes`` bit for bit (every quantile compared as integers, the
    interpolation in its float64 operations). Integer planes: no synchronisation; floating
    planes synchronize once, to read the status word.
    """
    ranks = _launchers()[1]
    dtype = np.dtype(planes.dtype)
    if (dtype not in _sources.MATCH_DTYPES or np.dtype(ref_planes.dtype) != dtype
            or planes.shape[1] > ranks.MAX_PIXELS
            or not 0 < ref_planes.shape[1] <= ranks.MAX_PIXELS
            or result.dtype not in (np.float64, np.float32 if dtype == np.float32 else None)):
        return _uncovered(f"{dtype} images, {np.dtype(ref_planes.dtype)} reference, planes of "
                          f"{planes.shape[1]} and {ref_planes.shape[1]} pixels")
    for declined in (_uncovered_rows(planes, result), _uncovered_rows(ref_planes)):
        if declined is not None:  # a Declined is falsy: compare with None
            return declined
    with planes.device:
        status = ranks.match(planes, ref_planes, owner, result)
        if status is not None:
            flags = int(status[0])  # sync: NaN has no quantile
            for name, bit in (("images", ranks.STATUS_IMAGES_NOT_FINITE),
                              ("reference", ranks.STATUS_REFERENCE_NOT_FINITE)):
                if flags & bit:
                    raise ValueError(f"`{name}` must not contain NaN or infinity")
    return True


# ---------------------------------------------------------------------------------------------
# packed planes of different sizes (ragged batches), as gpu_histeq._interop._packed

def _packed_planes(values, mask, starts, out):
    """``_kernels.Planes`` over the packed planes of `starts`, or ``Declined("uncovered")``: 1-d
    C-contiguous arrays of one length, starts inside them and non-decreasing (the kernels read
    where they point: checked on the host), every plane below the 32-bit count limit."""
    from ._kernels import MAX_PIXELS, Planes
    starts = np.asarray(starts, np.int64)
    if (starts.ndim != 1 or len(starts) < 1 or starts[0] < 0 or starts[-1] > values.size
            or any(a is not None and (a.ndim != 1 or a.size != values.size
                                      or not a.flags.c_contiguous)
                   for a in (values, mask, out))):
        return _uncovered("starts outside the values, or arrays not 1-d C-contiguous of one size")
    sizes = np.diff(starts)
    if len(sizes) and (int(sizes.min()) < 0 or int(sizes.max()) > MAX_PIXELS):
        return _uncovered("decreasing starts, or a plane of 2**31 pixels or more")
    return Planes(values, mask, out, np.stack([starts[:-1], starts[1:]], axis=1))


def equalize_packed(values, mask, starts, method, nbins, result):
    """Equalize every packed plane of `values` into `result` with the fused kernels.

    Parameters
    ----------
    values : (M,) cupy.ndarray
        C-contiguous; plane ``p`` is ``values[starts[p]:starts[p + 1]]`` (any sizes, 0 included).
    mask : (M,) bool cupy.ndarray or None
        Pixels counted in each plane's histogram (every pixel is remapped); the caller checked
        that every non-empty plane selects one.
    starts : (P + 1,) int64 numpy.ndarray
        Host offsets, non-decreasing, ``starts[-1] == M``.
    method : {"opencv", "pil", "skimage"}
    nbins : int
        Bins of floating planes; the dtype's levels for ``"opencv"`` / ``"pil"`` (checked).
    result : (M,) cupy.ndarray
        C-contiguous output of the method's dtype.

    Returns
    -------
    True or Declined
        As :func:`equalize`: ``Declined("uncovered")`` when the kernels do not cover this case
        (other dtypes or methods, non-contiguous arrays, a plane of 2**31 pixels or more:
        nothing written); ``Declined("irregular", written=True)`` when a floating plane needs
        numpy.interp's own search (`result` to be redone for every plane by
        ``_packed.equalize``).

    Raises
    ------
    ValueError
        As :func:`equalize` and in its order (`nbins` and the levels, NaN or infinity, repeated
        bin edges, which a plane of 0 pixels checks over [-0.5, 0.5] as the portable path).

    Notes
    -----
    Bit for bit ``_packed.equalize(cupy, values, mask, starts, method, nbins, result.dtype)``,
    and per plane :func:`gpu_histeq.equalize_hist` of that plane's pixels. Floating planes
    synchronize once, to read the status word; every call copies the spans to the device.
    """
    planes = _packed_planes(values, mask, starts, result)
    if isinstance(planes, Declined):
        return planes
    return _equalize(planes, method, nbins)


def packed_counts(values, mask, starts, binning):
    """``(P, nbins)`` int64 counts of every packed plane, or None when not covered.

    Parameters
    ----------
    values : (M,) cupy.ndarray
        C-contiguous packed planes, plane ``p`` at ``starts[p]:starts[p + 1]``.
    mask : (M,) bool cupy.ndarray or None
    starts : (P + 1,) int64 numpy.ndarray
    binning : LevelBinning or UniformBinning
        Made for these planes (``_packed.binning``): levels of uint8 / uint16 planes (a
        per-plane lowest level or none), uniform bins of float32 / float64 planes.

    Returns
    -------
    (P, nbins) int64 cupy.ndarray or Declined
        As ``_packed.histograms(cupy, values, mask, starts, binning)``; zeros for a plane of 0
        pixels. ``Declined("uncovered")`` for other layouts or binnings.
    """
    planes = _packed_planes(values, mask, starts, None)
    return planes if isinstance(planes, Declined) else _counts(planes, binning)


def apply_packed(values, starts, tables, result):
    """``result[a:b] = tables[p][values[a:b]]`` for every packed plane ``p``; False if not covered.

    Parameters
    ----------
    values : (M,) uint8 or uint16 cupy.ndarray
        C-contiguous packed planes, already checked to lie in ``[0, L)``.
    starts : (P + 1,) int64 numpy.ndarray
    tables : (P, L) or (1, L) C-contiguous cupy.ndarray
        One table per plane, or one shared by every plane.
    result : (M,) cupy.ndarray of ``tables.dtype``

    Returns
    -------
    True or Declined
        True: ``_packed.apply_tables``, bit for bit; ``Declined("uncovered")`` (nothing written)
        for other value or table dtypes, tables of 2**31 entries or more, or neither one nor P
        rows of tables.
    """
    if (np.dtype(values.dtype) not in _sources.LEVEL_DTYPES
            or np.dtype(tables.dtype) not in _sources.C_TYPES
            or tables.shape[-1] > np.iinfo(np.int32).max or not tables.flags.c_contiguous):
        return _uncovered(f"{np.dtype(values.dtype)} values through {np.dtype(tables.dtype)} "
                          f"tables of {tables.shape[-1]} entries")
    planes = _packed_planes(values, None, starts, result)
    if isinstance(planes, Declined):
        return planes
    if tables.ndim != 2 or tables.shape[0] not in (1, planes.count):
        return _uncovered(f"tables of shape {tables.shape} for {planes.count} planes")
    return _apply(planes, tables)
