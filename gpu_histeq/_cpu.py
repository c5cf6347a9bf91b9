"""Bindings of the optional compiled kernels on the CPU (``_levels.c``, ``_clahe.c``,
``_color.c``): ctypes for most, and the module's own ``METH_FASTCALL`` entry points
(``equalize_levels``, ``clahe``) for the calls a small image pays for most -- they take the
arrays through the buffer protocol, where ctypes needs about 1 us per array address.

They cover uint8/uint16 planes binned by level, float32/float64 planes binned uniformly, the
whole equalization of both plane by plane, OpenCV's CLAHE of uint8/uint16 planes and its
RGB <-> YCrCb luma round trip of uint8/uint16 pixels, and
compute exactly what the bincount path computes (tests compare them bit for bit).
:data:`BUILT` is False when the extension was not built (no C compiler at install time); whether
it runs is decided in :func:`gpu_histeq._engine.select` alone.
"""

import ctypes
import importlib.util

import numpy as np

from . import _planes
from ._validate import check_edges_increase, check_finite

_POINTER, _SIZE = ctypes.c_void_p, ctypes.c_int64
_SIGNATURES = {
    "count_u8": [_POINTER, _POINTER, _SIZE, _SIZE, _POINTER, _POINTER],
    "count_u16": [_POINTER, _POINTER, _SIZE, _SIZE, _POINTER, _POINTER],
    "remap_u8": [_POINTER, _SIZE, _SIZE, _POINTER, _POINTER],
    "remap_u16": [_POINTER, _SIZE, _SIZE, _POINTER, _POINTER],
    "bin_f32": [_POINTER, _POINTER, _SIZE, _SIZE] + [_POINTER] * 4 + [_SIZE, _POINTER, _POINTER],
    "bin_f64": [_POINTER, _POINTER, _SIZE, _SIZE] + [_POINTER] * 4 + [_SIZE, _POINTER, _POINTER],
    "interp_f32": [_POINTER, _POINTER, _SIZE, _SIZE, _SIZE, _POINTER, _POINTER, _POINTER, _POINTER],
    "interp_f64": [_POINTER, _POINTER, _SIZE, _SIZE, _SIZE, _POINTER, _POINTER, _POINTER, _POINTER],
    "equalize_f32": [_POINTER, _POINTER, _SIZE, _SIZE, _POINTER, _SIZE, _POINTER, _POINTER],
    "equalize_f64": [_POINTER, _POINTER, _SIZE, _SIZE, _POINTER, _SIZE, _POINTER, _POINTER],
    # _color.c (the last argument: 1 for B, G, R channels, 0 for R, G, B)
    "luma_u8": [_POINTER, _SIZE, _SIZE, _POINTER, _SIZE],
    "luma_u16": [_POINTER, _SIZE, _SIZE, _POINTER, _SIZE],
    "replace_luma_u8": [_POINTER, _POINTER, _SIZE, _SIZE, _POINTER, _SIZE],
    "replace_luma_u16": [_POINTER, _POINTER, _SIZE, _SIZE, _POINTER, _SIZE],
    "luma_counts_u8": [_POINTER, _SIZE, _SIZE, _POINTER, _SIZE],
    "replace_luma_lut_u8": [_POINTER, _POINTER, _SIZE, _SIZE, _POINTER, _SIZE],
}
_SUFFIX = {np.dtype(np.uint8): "u8", np.dtype(np.uint16): "u16",
           np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def _load():
    """The ctypes functions of :data:`_SIGNATURES` and the module (its Python entry points, such
    as ``equalize_levels``), or (None, None) when the extension was not built."""
    try:
        spec = importlib.util.find_spec("gpu_histeq._cpu_kernels")
    except ImportError:
        return None, None
    if spec is None or not spec.origin:
        return None, None
    library = ctypes.CDLL(spec.origin)
    functions = {}
    for name, argtypes in _SIGNATURES.items():
        function = getattr(library, "gpu_histeq_" + name)
        function.argtypes, function.restype = argtypes, ctypes.c_int
        functions[name] = function
    module = importlib.util.module_from_spec(spec)  # the same library, as a Python module
    spec.loader.exec_module(module)
    return functions, module


_FUNCTIONS, _MODULE = _load()
#: True when the extension was built (no C compiler at install time leaves it out). Whether it
#: runs is decided by :func:`gpu_histeq._engine.select`.
BUILT = _FUNCTIONS is not None


def simd():
    """The SIMD loops the compiled kernels choose now, from the CPU and ``GPU_HISTEQ_CPU_SIMD``:
    ``"generic"``, ``"avx2"``, ``"avx512"``, or ``"avx512-vbmi"`` (also the uint8 byte lookups
    and the pipelined uint8 equalize, each plane's remap inside the next plane's count); None
    when the extension was not built."""
    return None if _MODULE is None else _MODULE.simd()


#: Most bins per floating plane on the compiled path: bin numbers stay exact in float32.
MAX_FLOAT_BINS = 1 << 24
#: What :func:`equalize` reports besides success (0).
NOT_FINITE, REPEATED_EDGES = 1, 2
#: The level tables the compiled equalize builds (``_levels.c``'s method codes).
_LEVEL_METHODS = {(np.dtype(np.uint8), "opencv"): 0, (np.dtype(np.uint8), "pil"): 1,
                  (np.dtype(np.uint16), "opencv"): 0}


def covers(binning, dtype):
    """True when the compiled count and remap handle NumPy planes of `dtype` with `binning`."""
    if np.dtype(dtype) not in _SUFFIX:
        return False
    if np.dtype(dtype).kind == "u":
        return getattr(binning, "low", False) is None  # levels from 0
    return hasattr(binning, "edges") and binning.nbins <= MAX_FLOAT_BINS


def equalizes(dtype, method, nbins):
    """True when :func:`equalize` does `method` with `nbins` bins on NumPy planes of `dtype`."""
    if method == "skimage":
        return np.dtype(dtype) in (np.float32, np.float64) and nbins <= MAX_FLOAT_BINS
    return (np.dtype(dtype), method) in _LEVEL_METHODS


def _address(array):
    if array is None:
        return None
    if not array.flags.c_contiguous:
        raise ValueError("internal error: the compiled path needs C-contiguous blocks")
    return array.ctypes.data


def _bin(values, selected, shape, starts, binning, rows, segments, counts):
    """The compiled binning of floating planes `rows` (``shape`` ``(n, m)``: rows of `values`,
    or with `starts` packed planes of up to ``m`` pixels): each pixel's :func:`numpy.interp`
    segment into `segments` (unless None) and the selected pixels' counts into `counts`
    (unless None)."""
    status = _FUNCTIONS["bin_" + _SUFFIX[values.dtype]](
        _address(values), _address(selected), *shape, _address(starts),
        _address(binning.first[rows]), _address(binning.width[rows]),
        _address(binning.edges[rows]), binning.nbins, _address(segments), _address(counts))
    if status:
        raise MemoryError("no memory for a histogram of the block")


def _segments(values, selected, binning, rows, counts=None):
    """``(n, m)`` int32 :func:`numpy.interp` segment of each pixel of a floating block: its bin
    (exactly as :class:`UniformBinning` bins), less one left of the bin's center. Also counts
    the selected pixels' bins into `counts` when given."""
    segments = np.empty(values.shape, np.int32)
    _bin(values, selected, values.shape, None, binning, rows, segments, counts)
    return segments


def count(values, selected, binning, rows):
    """Counts of the C-contiguous ``(n, m)`` block `values` of planes `rows`.

    Returns
    -------
    counts : (n, nbins) int64 ndarray
    segments : (n, m) int32 ndarray or None
        Each pixel's interpolation segment for floating planes (the remap reuses it); None for
        levels.
    """
    counts = np.zeros((values.shape[0], binning.nbins), np.int64)
    selected = None if selected is None else selected.view(np.uint8)
    suffix = _SUFFIX[values.dtype]
    if suffix in ("u8", "u16"):
        _FUNCTIONS["count_" + suffix](_address(values), _address(selected), *values.shape, None,
                                      _address(counts))
        return counts, None
    return counts, _segments(values, selected, binning, rows, counts)


def equalize(values, selected, method, nbins, out, starts=None):
    """Equalize every plane of the C-contiguous block `values` into `out`, plane by plane.

    Floating planes (``"skimage"``): the range, :class:`UniformBinning`'s edges, the counts, the
    tables of ``table_maker`` and the remap of :func:`remap`, a plane of up to 65536 pixels read
    from memory once with its segments and tables in the cache. Level-indexed planes (``"opencv"``, ``"pil"``):
    the counts, ``opencv_lut`` / ``pil_lut`` and the gather. Bit for bit what the bincount
    path computes.

    Parameters
    ----------
    values : (n, m) ndarray, or (M,) ndarray with `starts`
        Planes as rows, or packed planes of any sizes.
    selected : bool ndarray of the shape of `values`, or None
    starts : (P + 1,) int64 ndarray or None
        With (M,) `values`: plane ``p`` is ``values[starts[p]:starts[p + 1]]``.
    out : ndarray of the shape of `values`

    Returns
    -------
    status : int
        0, or :data:`NOT_FINITE` (a NaN or infinity) or :data:`REPEATED_EDGES` (`nbins` too many
        for a plane's range) for the floating plane where the block stopped.
    """
    selected = None if selected is None else selected.view(np.uint8)
    suffix = _SUFFIX[values.dtype]
    if starts is None:
        shape = values.shape
    else:
        starts = np.ascontiguousarray(starts, np.int64)
        shape = (len(starts) - 1, int(np.diff(starts).max(initial=0)))
    if method != "skimage":
        status = _MODULE.equalize_levels(values, selected, *shape, starts,
                                         _LEVEL_METHODS[values.dtype, method], out)
    else:
        failed = ctypes.c_int64(0)
        status = _FUNCTIONS["equalize_" + suffix](
            _address(values), _address(selected), *shape, _address(starts), nbins,
            _address(out), ctypes.byref(failed))
    if status < 0:
        raise MemoryError("no memory for the tables of a plane")
    return status


#: Pixels up to which level-indexed planes are equalized in one C call on the calling thread:
#: about 20 us of work at most, less than waking a second thread costs.
SMALL_PIXELS = 1 << 16


def equalize_small(values, selected, npixels, method, out):
    """Equalize the C-contiguous level-indexed planes of `npixels` pixels each in `values` into
    `out` (same shape) in one call on this thread, the common small call's path: True; False,
    writing nothing, for more than :data:`SMALL_PIXELS` pixels or a case the kernels do not
    cover.

    Parameters
    ----------
    values : (..., H, W) or (P, N) C-contiguous uint8 / uint16 ndarray
        Planes of ``npixels`` (``H * W`` or ``N``) pixels one after the other.
    selected : bool ndarray of the shape of `values`, or None
    npixels : int
    method : {"opencv", "pil"}
    out : C-contiguous ndarray of the shape and dtype of `values`
    """
    code = _LEVEL_METHODS.get((values.dtype, method))
    if code is None or values.size > SMALL_PIXELS:
        return False
    selected = None if selected is None else np.ascontiguousarray(selected).view(np.uint8)
    _MODULE.equalize_levels(values, selected, values.size // npixels, npixels, None, code, out)
    return True


def equalize_planes(planes, mask_planes, method, nbins, result):
    """The whole pipeline plane by plane (count, table, remap in one C call per block; one call
    for at most :data:`SMALL_PIXELS` pixels of levels).

    Returns False, writing nothing, where this path is not the faster one: cases
    :func:`equalizes` does not cover, and planes larger than a block when there are fewer of
    them than threads (counting and remapping one plane's blocks on every thread is faster
    there).
    """
    nplanes, npixels = planes.shape
    if not equalizes(planes.dtype, method, nbins):
        return False
    if method != "skimage" and equalize_small(planes, mask_planes, npixels, method, result):
        return True
    if not (nplanes == 0 or _planes.holds_whole_planes(np, npixels)
            or nplanes >= _planes.thread_count()):
        return False

    def run(block):
        rows, cols = block
        selected = None if mask_planes is None else mask_planes[rows, cols]
        status = equalize(planes[rows, cols], selected, method, nbins, result[rows, cols])
        check_finite(status != NOT_FINITE)
        check_edges_increase(status != REPEATED_EDGES, nbins, planes.dtype)

    _planes.map_blocks(np, run, _planes.plane_blocks(np, nplanes, npixels, 1))
    return True


def packed_blocks(starts, threads, most=None):
    """Blocks ``slice(p0, p1)`` of whole packed planes for `threads` threads: the planes that
    start in one window of ``min(CHUNK_PIXELS, pixels / (4 * threads))`` pixels (about four
    blocks per thread, so the threads finish together), at most `most` planes (when given)."""
    nplanes = len(starts) - 1
    step = max(1, min(_planes.CHUNK_PIXELS, -(-int(starts[-1]) // (4 * threads))))
    return [slice(a, b) for a, b in _planes.packed_runs(starts, step, most or max(nplanes, 1))]


def count_packed(values, selected, starts, binning):
    """Counts of packed planes of any sizes, whole planes on every thread; None where these
    kernels do not count this case.

    Parameters
    ----------
    values : (M,) ndarray
        Plane ``p`` is ``values[starts[p]:starts[p + 1]]``.
    selected : (M,) bool ndarray or None
    starts : (P + 1,) int64 ndarray
    binning : UniformBinning or LevelBinning
        Uniform bins of float32 / float64 planes, or one bin per level of uint8 / uint16 planes
        from 0 or from each plane's own lowest level (``binning.low``): those are the dtype's
        level counts of the plane shifted by it (a mask's clip changes no selected pixel's bin).

    Returns
    -------
    (P, binning.nbins) int64 ndarray or None
    """
    dtype = np.dtype(values.dtype)
    if dtype not in _SUFFIX:
        return None
    floating = dtype.kind == "f"
    levels = 1 << (8 * dtype.itemsize)
    if floating and not covers(binning, dtype):
        return None
    if not floating and (not hasattr(binning, "low")
                         or (binning.low is None and binning.nbins != levels)):
        return None
    starts = np.ascontiguousarray(starts, np.int64)
    nplanes, nbins = len(starts) - 1, binning.nbins
    largest = int(np.diff(starts).max(initial=0))
    counts = np.zeros((nplanes, nbins), np.int64)
    selected = None if selected is None else selected.view(np.uint8)

    def run(rows):
        part, n = starts[rows.start:rows.stop + 1], rows.stop - rows.start
        if floating:
            _bin(values, selected, (n, largest), part, binning, rows, None, counts[rows])
            return
        full = counts[rows] if binning.low is None else np.zeros((n, levels), np.int64)
        _FUNCTIONS["count_" + _SUFFIX[dtype]](_address(values), _address(selected), n, largest,
                                              _address(part), _address(full))
        if binning.low is not None:  # the window [low, low + nbins) of each plane's levels
            window = binning.low[rows, None] + np.arange(nbins)
            inside = window < levels
            counts[rows] = np.where(inside, np.take_along_axis(
                full, np.minimum(window, levels - 1), axis=1), 0)

    most = None if floating else max(1, _planes.CHUNK_BINS // levels)
    _planes.map_blocks(np, run, packed_blocks(starts, _planes.thread_count(), most))
    return counts


def equalize_packed(values, selected, starts, method, nbins, out):
    """Equalize packed planes of any sizes (a ragged batch), whole planes on every thread.

    Parameters
    ----------
    values : (M,) ndarray
        Planes one after the other, plane ``p`` at ``starts[p]:starts[p + 1]``.
    selected : (M,) bool ndarray or None
        Counted pixels (at least one in every non-empty plane, checked by the caller).
    starts : (P + 1,) int64 ndarray
    method : {"opencv", "pil", "skimage"}
    nbins : int
        The dtype's levels for ``"opencv"`` / ``"pil"``.
    out : (M,) ndarray
        The result, of the method's dtype.

    Returns
    -------
    bool
        False where these kernels do not equalize this case (nothing written), or where a
        floating plane has a NaN or infinity or too many bins for its range (`out` partly
        written): the caller then runs the portable path, which raises the error as a
        per-image call does, checking every plane's values before any plane's bins.
    """
    if not equalizes(values.dtype, method, nbins):
        return False
    starts = np.ascontiguousarray(starts, np.int64)
    statuses = _planes.map_blocks(np, lambda rows: equalize(
        values, selected, method, nbins, out,
        starts=starts[rows.start:rows.stop + 1]), packed_blocks(starts, _planes.thread_count()))
    return not any(statuses)


def equalize_separate(arrays, rows, sizes, method, outs):
    """:func:`equalize_packed` of level-indexed planes left in their own arrays (a ragged batch
    not packed): each plane read where it lies and written where its result lies, whole planes
    on every thread. The caller has checked :func:`equalizes` for `method`.

    Parameters
    ----------
    arrays : list of C-contiguous ndarrays
        Image ``i`` holds its ``rows[i]`` planes of ``sizes[i]`` pixels one after the other, all
        of one uint8 / uint16 dtype.
    rows, sizes : (I,) int64 ndarray
    method : {"opencv", "pil"}
    outs : list of C-contiguous writable ndarrays
        Their results, of the same dtype and sizes.
    """
    dtype, count = np.dtype(arrays[0].dtype), len(arrays)
    if (len(outs) != count or any(a.dtype != dtype or o.dtype != dtype or a.size != o.size
                                  for a, o in zip(arrays, outs))
            or not np.array_equal(np.fromiter((a.size for a in arrays), np.int64, count),
                                  rows * sizes)):
        raise ValueError("internal error: planes and results that do not match")
    plane_sizes = np.repeat(sizes, rows)
    starts = np.zeros(len(plane_sizes) + 1, np.int64)  # as if packed: the blocks per thread
    np.cumsum(plane_sizes, out=starts[1:])
    # where every plane is read and written: its array's address plus the planes before it
    plane = np.arange(len(plane_sizes)) - np.repeat(np.cumsum(rows) - rows, rows)
    places, bases = np.empty((len(plane), 2), np.int64), np.empty(count, np.int64)
    for side, held in enumerate((arrays, outs)):
        _MODULE.addresses(held, side == 1, bases)  # C-contiguous (results: writable) or raise
        places[:, side] = np.repeat(bases, rows) + plane * plane_sizes * dtype.itemsize
    code, empty, largest = _LEVEL_METHODS[dtype, method], np.empty(0, dtype), int(sizes.max())
    statuses = _planes.map_blocks(np, lambda block: _MODULE.equalize_levels(
        empty, None, block.stop - block.start, largest, starts[block.start:block.stop + 1],
        code, empty, places[block]), packed_blocks(starts, _planes.thread_count()))
    if any(status < 0 for status in statuses):
        raise MemoryError("no memory for the tables of a plane")


def remap(values, binning, rows, tables, out, segments=None):
    """Write each pixel's table entry (levels) or interpolated CDF value (floats) into `out`;
    `segments` are the floating block's from :func:`count`, when it was just counted."""
    suffix = _SUFFIX[values.dtype]
    if suffix in ("u8", "u16"):
        _FUNCTIONS["remap_" + suffix](_address(values), *values.shape, _address(tables), _address(out))
        return
    if segments is None:
        segments = _segments(values, None, binning, rows)
    status = _FUNCTIONS["interp_" + suffix](
        _address(values), _address(segments), *values.shape, binning.nbins, _address(tables.positions),
        _address(tables.slopes), _address(tables.values), _address(out))
    if status:
        raise MemoryError("no memory for the table of a plane")


def clahe(values, shape, grid, sources, limit, scale, neighbours, out):
    """OpenCV's CLAHE of the C-contiguous ``(n, H * W)`` uint8 / uint16 block `values` into
    `out`, plane by plane in one call: the tile tables (OpenCV's clipped and rounded tile CDFs,
    exactly as ``opencv_tables`` of the tile histograms) and the bilinear blend of each pixel's
    four neighbouring tables.

    Parameters
    ----------
    shape, grid : (int, int)
        ``(H, W)`` and the tiles along each axis.
    sources : ((Hp,) int64 ndarray, (Wp,) int64 ndarray)
        The image row / column of every row / column of the padded image.
    limit : int
        The integer clip limit (0: no clipping).
    scale : numpy.float32
    neighbours : tuple of four ndarrays
        ``(2, H)`` int64 first / second tile row, ``(2, H)`` float32 their weights, and the same
        for the columns ``(2, W)``.
    """
    tile_rows, tile_cols = sources[0].size // grid[0], sources[1].size // grid[1]
    _MODULE.clahe(values, values.shape[0], *shape, *grid, tile_rows, tile_cols, *sources, limit,
                  float(scale), *neighbours, out)


def converts(dtype):
    """True when :func:`rgb_luma` and :func:`replace_luma` take RGB of `dtype`."""
    return np.dtype(dtype) in (np.uint8, np.uint16)


#: Pixels per call of the colour kernels (a few per thread, each in the cache).
_COLOR_PIXELS = 1 << 16


def _color_blocks(outer, inner):
    per_block = max(1, _COLOR_PIXELS // max(inner, 1))
    return [slice(a, min(a + per_block, outer)) for a in range(0, outer, per_block)]


#: The colour kernels' last argument, per channel order.
_BGR = {"rgb": 0, "bgr": 1}


def rgb_luma(rgb, order="rgb"):
    """``(outer, inner)`` OpenCV Y (``COLOR_RGB2YCrCb``'s first channel, or
    ``COLOR_BGR2YCrCb``'s for `order` ``"bgr"``) of C-contiguous ``(outer, 3, inner)``
    uint8/uint16 pixels, on all cores."""
    outer, _, inner = rgb.shape
    luma = np.empty((outer, inner), rgb.dtype)
    function, bgr = _FUNCTIONS["luma_" + _SUFFIX[rgb.dtype]], _BGR[order]

    def run(rows):
        function(_address(rgb[rows]), rows.stop - rows.start, inner, _address(luma[rows]), bgr)

    _planes.map_blocks(np, run, _color_blocks(outer, inner))
    return luma


def replace_luma(rgb, luma, out, order="rgb"):
    """`out` = `rgb` with its Y replaced by `luma` (OpenCV's YCrCb -> RGB of the new Y and the
    original Cr, Cb; channels in `order`, ``"rgb"`` or ``"bgr"``); `out` may be `rgb` itself.
    All C-contiguous, ``(outer, 3, inner)`` and ``(outer, inner)``."""
    outer, _, inner = rgb.shape
    function, bgr = _FUNCTIONS["replace_luma_" + _SUFFIX[rgb.dtype]], _BGR[order]

    def run(rows):
        function(_address(rgb[rows]), _address(luma[rows]), rows.stop - rows.start, inner,
                 _address(out[rows]), bgr)

    _planes.map_blocks(np, run, _color_blocks(outer, inner))


def _luma_plane_blocks(nplanes, npixels):
    per_block = max(1, _COLOR_PIXELS // max(npixels, 1))
    return [slice(a, min(a + per_block, nplanes)) for a in range(0, nplanes, per_block)]


def luma_counts(rgb, nplanes, order="rgb"):
    """``(nplanes, 256)`` int64 counts of the OpenCV Y of C-contiguous channels-last uint8
    pixels, ``(nplanes * npixels, 3, 1)`` in `order` (``"rgb"`` or ``"bgr"``), plane by plane
    (Y itself is not stored)."""
    npixels = rgb.shape[0] // max(nplanes, 1)
    counts = np.empty((nplanes, 256), np.int64)
    planes = rgb.reshape(nplanes, npixels * 3)

    def run(rows):
        _FUNCTIONS["luma_counts_u8"](_address(planes[rows]), rows.stop - rows.start, npixels,
                                     _address(counts[rows]), _BGR[order])

    _planes.map_blocks(np, run, _luma_plane_blocks(nplanes, npixels))
    return counts


def replace_luma_lut(rgb, tables, nplanes, out, order="rgb"):
    """`out` = `rgb` (as for :func:`luma_counts`) with each pixel's Y mapped through its plane's
    row of `tables`, ``(nplanes, 256)`` uint8, and converted back to `order`."""
    npixels = rgb.shape[0] // max(nplanes, 1)
    planes, target = rgb.reshape(nplanes, npixels * 3), out.reshape(nplanes, npixels * 3)

    def run(rows):
        _FUNCTIONS["replace_luma_lut_u8"](_address(planes[rows]), _address(tables[rows]),
                                          rows.stop - rows.start, npixels, _address(target[rows]),
                                          _BGR[order])

    _planes.map_blocks(np, run, _luma_plane_blocks(nplanes, npixels))
