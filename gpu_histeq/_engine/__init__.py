"""Which engine runs the pipeline: the one switch for the fast paths, read in one place.

Three engines compute the same steps (count, tables, remap) and the same numbers:

* the portable path -- ``bincount`` over per-plane offsets and a ``take`` gather, on NumPy or
  CuPy (the reference every fast path is tested against, bit for bit);
* the compiled CPU path -- C kernels called through ctypes, for NumPy input, when the extension
  was built;
* the CUDA path -- fused CuPy ``RawModule`` kernels, for CuPy input.

The fast paths are on unless the environment says otherwise (``GPU_HISTEQ_PORTABLE=1`` turns
both off, ``GPU_HISTEQ_CUDA=0`` only the CUDA one; read at every call) or the caller is inside
:func:`portable`, the context manager tests and benchmarks use. Nothing else flips them.

Every step that has a CUDA path reports, for CuPy input, which engine ran it and what the CUDA
entry point answered (``True``, or a ``_cuda.Declined``: the convention at the top of
:mod:`gpu_histeq._cuda`) to the lists of :func:`recording`, which tests read to prove that the
kernels produced what they compare. Nothing is recorded outside a ``recording()`` block.
"""

import contextlib
import threading
from typing import NamedTuple

import numpy as np

from .. import _cpu, _cuda, _planes, color
from .._backend import is_cupy
from .._tables import opencv_lut, pil_lut
from . import portable as _portable

_lock = threading.Lock()
_portable_depth = 0  # process-wide, so that the worker threads of one call see it too
_recorders: list = []  # the lists of the open recording() blocks


class Step(NamedTuple):
    """One step on CuPy input, as :func:`recording` collects it."""

    #: The step: "equalize", "equalize_packed", "histogram", "histograms", "packed_counts",
    #: "apply_tables", "apply_packed", "clahe", "adapthist", "match", "split_luma", "merge_luma",
    #: "equalize_luma".
    name: str
    #: What :func:`select` answered: "cuda", or "portable".
    engine: str
    #: The CUDA entry point's answer: True (it wrote the whole result), a ``_cuda.Declined``,
    #: or None when the CUDA engine was not asked.
    outcome: object
    #: True when the fast paths were switched off (:func:`portable`, the environment).
    switched_off: bool


@contextlib.contextmanager
def recording():
    """Within this block, every step with a CUDA path appends a :class:`Step` for CuPy input to
    the list it yields (process-wide, worker threads included).

    Examples
    --------
    >>> from gpu_histeq import _engine
    >>> with _engine.recording() as steps:
    ...     pass
    >>> steps
    []
    """
    steps = []
    with _lock:
        _recorders.append(steps)
    try:
        yield steps
    finally:
        with _lock:
            del _recorders[next(i for i, r in enumerate(_recorders) if r is steps)]


def _switched_off():
    """True when the CUDA kernels are switched off (:func:`portable`, the environment)."""
    return (_portable_depth > 0 or _planes.getenv("GPU_HISTEQ_PORTABLE") == "1"
            or _planes.getenv("GPU_HISTEQ_CUDA") == "0")


def _report(xp, name, engine, outcome=None):
    """Record one step on CuPy input; returns the CUDA entry point's `outcome` unchanged."""
    if _recorders and is_cupy(xp):
        bare = outcome is None or outcome is False or isinstance(outcome, _cuda.Declined)
        answer = outcome if bare else True  # True, or the counts array: wrote
        step = Step(name, engine, answer, _switched_off())
        for steps in list(_recorders):
            steps.append(step)
    return outcome


@contextlib.contextmanager
def portable():
    """Within this block every call takes the portable bincount path (process-wide).

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import _engine, equalize_hist
    >>> with _engine.portable():
    ...     _engine.compiled_enabled(), _engine.cuda_enabled()
    (False, False)
    """
    global _portable_depth
    with _lock:
        _portable_depth += 1
    try:
        yield
    finally:
        with _lock:
            _portable_depth -= 1


def compiled_enabled():
    """True unless the compiled CPU path is switched off (it may still be unbuilt)."""
    return _portable_depth == 0 and _planes.getenv("GPU_HISTEQ_PORTABLE") != "1"


def cuda_enabled():
    """True unless the CUDA kernels are switched off."""
    return not _switched_off()


def select(xp, dtype):
    """The engine for planes of `dtype` in array module `xp`: the one place that decides.

    Returns
    -------
    {"cuda", "compiled", "portable"}
        ``"cuda"`` for CuPy input, ``"compiled"`` for NumPy input when the extension is built,
        unless switched off; each step below still runs the portable path for a case its fast
        engine does not cover.
    """
    if is_cupy(xp):
        return "cuda" if cuda_enabled() else "portable"
    return "compiled" if _cpu.BUILT and compiled_enabled() else "portable"


# ---------------------------------------------------------------------------------------------
# the pipeline's steps, each run by the selected engine (or the portable one where it declines)

def equalize(xp, planes, mask_planes, method, nbins, result):
    """The whole equalization of ``(P, N)`` `planes` in fused kernels, where an engine has them.

    `nbins` is already the dtype's levels for ``"opencv"`` / ``"pil"``. Returns False, writing
    nothing, when the selected engine has no fused path for this case: the caller then runs the
    steps below.
    """
    engine = select(xp, planes.dtype)
    if engine == "cuda":
        return _report(xp, "equalize", engine,
                       _cuda.equalize(planes, mask_planes, method, nbins, result))
    _report(xp, "equalize", engine)
    if engine == "compiled":
        return _cpu.equalize_planes(planes, mask_planes, method, nbins, result)
    return False


def equalize_small(xp, images, method, result):
    """The whole equalization of a small C-contiguous batch ``(..., H, W)`` of level-indexed
    planes (``"opencv"`` / ``"pil"``, no mask) in one call on the calling thread, where an engine
    has it (the compiled one, up to ``_cpu.SMALL_PIXELS`` pixels); False, writing nothing,
    elsewhere. The path of the common one-image call: no planes view, no blocks."""
    shape = images.shape
    return select(xp, images.dtype) == "compiled" and _cpu.equalize_small(
        images, None, shape[-2] * shape[-1], method, result)


def equalize_packed(xp, values, mask, starts, method, nbins, result):
    """:func:`equalize` of packed planes of any sizes (a ragged batch), where an engine has it.

    Parameters
    ----------
    values : (M,) C-contiguous ndarray
        Plane ``p`` is ``values[starts[p]:starts[p + 1]]``.
    mask : (M,) bool ndarray or None
    starts : (P + 1,) int64 host ndarray
    result : (M,) ndarray of the method's dtype

    Returns
    -------
    bool
        False when the selected engine did not equalize every plane (`result` may be partly
        written): the caller then runs the portable packed path.
    """
    engine = select(xp, values.dtype)
    if engine == "cuda":
        return _report(xp, "equalize_packed", engine,
                       _cuda.equalize_packed(values, mask, starts, method, nbins, result))
    _report(xp, "equalize_packed", engine)
    if engine == "compiled":
        return _cpu.equalize_packed(values, mask, starts, method, nbins, result)
    return False


def separate_planes(xp, dtype, method, nbins):
    """True where an engine equalizes unmasked planes of `dtype` left in their own arrays
    (:func:`equalize_separate`): the compiled one, for its level-indexed methods."""
    return (method != "skimage" and select(xp, dtype) == "compiled"
            and _cpu.equalizes(dtype, method, nbins))


def equalize_separate(xp, arrays, rows, sizes, method, results):
    """:func:`equalize_packed` of unmasked level-indexed planes left in their own arrays (a
    ragged batch not packed: no copy into one buffer), on the engine that has it (the compiled
    one), called only where :func:`separate_planes` says so.

    Parameters
    ----------
    arrays : list of C-contiguous ndarrays
        Image ``i`` holds its ``rows[i]`` planes of ``sizes[i]`` pixels one after the other.
    rows, sizes : (I,) int64 host ndarray
    results : list of C-contiguous ndarrays of the method's dtype, the sizes of `arrays`
    """
    _report(xp, "equalize_separate", "compiled")
    _cpu.equalize_separate(arrays, rows, sizes, method, results)


def packed_counts(xp, values, mask, starts, binning):
    """``(P, nbins)`` int64 counts of packed planes of any sizes where an engine has kernels for
    them, else None (the caller then counts with the portable packed path).

    Parameters
    ----------
    values : (M,) C-contiguous ndarray
        Plane ``p`` is ``values[starts[p]:starts[p + 1]]``.
    mask : (M,) bool ndarray or None
    starts : (P + 1,) int64 host ndarray
    binning : LevelBinning or UniformBinning
        Made for these planes (``_interop._packed.binning``).
    """
    engine = select(xp, values.dtype)
    if engine == "cuda":
        counts = _report(xp, "packed_counts", engine,
                         _cuda.packed_counts(values, mask, starts, binning))
        return None if isinstance(counts, _cuda.Declined) else counts
    _report(xp, "packed_counts", engine)
    if engine == "compiled":
        return _cpu.count_packed(values, mask, starts, binning)
    return None


def apply_packed(xp, values, starts, tables, result):
    """``result[a:b] = tables[p][values[a:b]]`` of packed plane ``p`` (``a:b`` its pixels), or
    ``tables[0]`` for every plane, where an engine has a kernel for it (the CUDA one: uint8 /
    uint16 values); False, writing nothing, elsewhere.

    Parameters
    ----------
    values : (M,) C-contiguous integer ndarray
        Values already checked to lie in each plane's table.
    starts : (P + 1,) int64 host ndarray
    tables : (P, L) or (1, L) C-contiguous ndarray
    result : (M,) ndarray of ``tables.dtype``
    """
    engine = select(xp, values.dtype)
    if engine == "cuda":
        return _report(xp, "apply_packed", engine,
                       _cuda.apply_packed(values, starts, tables, result))
    _report(xp, "apply_packed", engine)
    return False


def count_block(xp, planes, mask_planes, binning, block):
    """Counts of one block ``(rows, cols)`` and the state :func:`remap_block` may reuse.

    Returns
    -------
    counts : (n, nbins) int64 ndarray
    state : tuple
        The block's binning: ``(index, offsets)`` on the portable path, ``(segments, None)``
        (floating planes) or ``(None, None)`` (levels) on the compiled one.
    """
    if select(xp, planes.dtype) == "compiled" and _cpu.covers(binning, planes.dtype):
        rows, cols = block
        selected = None if mask_planes is None else mask_planes[rows, cols]
        counts, segments = _cpu.count(planes[rows, cols], selected, binning, rows)
        return counts, (segments, None)
    return _portable.count_block(xp, planes, mask_planes, binning, block)


def histogram(xp, planes, mask_planes, nbins, cumulative):
    """The whole of ``histogram`` (`cumulative` False) or ``cumulative_distribution`` of
    non-empty ``(P, N)`` `planes`, ``(table, centers)``, where an engine has fused kernels for it
    (the CUDA one: ``_cuda.histogram``, which also raises the data errors); None elsewhere, the
    caller then runs the steps: :func:`histograms`, then the table."""
    engine = select(xp, planes.dtype)
    if engine == "cuda":
        fused = _report(xp, "histogram", engine,
                        _cuda.histogram(planes, mask_planes, nbins, cumulative))
        return None if isinstance(fused, _cuda.Declined) else fused
    _report(xp, "histogram", engine)
    return None


def histograms(xp, planes, mask_planes, binning, block_list):
    """``(P, nbins)`` int64 histograms of every plane of `planes`, block by block."""
    engine = select(xp, planes.dtype)
    if engine == "cuda":
        counts = _report(xp, "histograms", engine,
                         _cuda.block_counts(planes, mask_planes, binning))
        if not isinstance(counts, _cuda.Declined):
            return counts
    else:
        _report(xp, "histograms", engine)
    hist = xp.zeros((planes.shape[0], binning.nbins), np.int64)
    parts = _planes.map_blocks(
        xp, lambda block: count_block(xp, planes, mask_planes, binning, block)[0], block_list)
    for (rows, _), counts in zip(block_list, parts):
        hist[rows] += counts
    return hist


def remap_block(xp, planes, binning, tables, result, block, state=None):
    """Remap block ``(rows, cols)`` of `planes` into `result` through its planes' `tables`.

    `state` is :func:`count_block`'s when the block was just counted.
    """
    if select(xp, planes.dtype) == "compiled" and _cpu.covers(binning, planes.dtype):
        rows, cols = block
        segments = None if state is None else state[0]
        _cpu.remap(planes[rows, cols], binning, rows, tables, result[rows, cols], segments)
        return
    _portable.remap_block(xp, planes, binning, tables, result, block, state)


def apply_tables(xp, planes, tables, result):
    """``result[p] = tables[p][planes[p]]`` (or ``tables[0]`` for all planes): the lut remap.

    Parameters
    ----------
    planes : (P, N) integer ndarray
        Values already checked to lie in ``[0, L)``.
    tables : (P, L) or (1, L) C-contiguous ndarray
    result : (P, N) ndarray of ``tables.dtype``
    """
    engine = select(xp, planes.dtype)
    if engine == "cuda":
        if _report(xp, "apply_tables", engine, _cuda.apply_lut(planes, tables, result)):
            return
    else:
        _report(xp, "apply_tables", engine)
    block_list = _planes.blocks(xp, planes.shape[0], planes.shape[1], tables.shape[-1])
    _portable.apply_tables(xp, planes, tables, result, block_list)


def match(xp, planes, ref_planes, owner, result):
    """scikit-image's histogram matching of ``(P, N_s)`` `planes` through row ``owner[p]`` (a
    ``(P,)`` host array) of ``(R, N_t)`` `ref_planes` into float64 `result`, where an engine has
    fused kernels for it (the CUDA one: ``_cuda.match``); False, writing nothing, elsewhere (the
    caller then runs the portable path of :mod:`gpu_histeq.matching`)."""
    engine = select(xp, planes.dtype)
    if engine == "cuda":
        return _report(xp, "match", engine, _cuda.match(planes, ref_planes, owner, result))
    _report(xp, "match", engine)
    return False


def clahe(xp, planes, shape, grid, sources, limit, scale, neighbours, result):
    """OpenCV's CLAHE of every plane in fused kernels, where an engine has them (uint8 / uint16:
    the compiled one, ``_clahe.c``, and the CUDA one, ``_cuda/clahe.cu``, which takes only the
    geometry and computes sources and weights in the kernels); False, writing nothing, elsewhere.

    Per block of planes one call makes each plane's tile tables (histograms through the
    reflect-101 `sources`, clip at `limit`, CDFs rounded with `scale`) and blends them; blocks
    run on all cores (the call releases the GIL).

    Parameters
    ----------
    planes : (P, H * W) ndarray
    shape : (int, int)
        ``(H, W)``.
    grid : (int, int)
        Tiles along each axis.
    sources : [(Hp,) int64 ndarray, (Wp,) int64 ndarray]
        The source row / column of each row / column of the padded extents.
    neighbours : tuple of four ndarrays
        ``(2, H)`` int64 first/second tile row, ``(2, H)`` float32 their weights, and the same
        for the columns ``(2, W)``.
    result : (P, H * W) ndarray of ``planes.dtype``
    """
    engine = select(xp, planes.dtype)
    if engine == "cuda":
        tile_shape = (len(sources[0]) // grid[0], len(sources[1]) // grid[1])
        return _report(xp, "clahe", engine,
                       _cuda.clahe(planes, shape, grid, tile_shape, limit, scale, result))
    _report(xp, "clahe", engine)
    if not (engine == "compiled" and np.dtype(planes.dtype) in (np.uint8, np.uint16)):
        return False
    nbins = 256 if planes.dtype == np.uint8 else 65536
    nplanes, npixels = planes.shape
    ntables = grid[0] * grid[1] * nbins
    extent = len(sources[0]) * len(sources[1])
    block_list = _planes.plane_blocks(np, nplanes, max(npixels, extent), ntables)

    def run(block):
        rows, _ = block
        _cpu.clahe(planes[rows], shape, grid, sources, limit, scale, neighbours, result[rows])

    _planes.map_blocks(np, run, block_list)
    return True


def adapthist(xp, planes, shape, kernel, nbins, clip, result):
    """scikit-image's CLAHE of every ``(P, prod(shape))`` plane in fused kernels, where an
    engine has them (the CUDA one: ``_cuda/adapthist.cu``, images of 2 to 6 axes, the floating
    range checks included); False, writing nothing, elsewhere (the caller then checks and runs
    the portable path of :func:`gpu_histeq.adaptive.equalize_adapthist`).

    Parameters
    ----------
    planes : (P, N) ndarray
    shape, kernel : tuple of int
        The image shape and the contextual region shape.
    nbins : int
    clip : (int, int, float)
        Clip limit in counts, bin width and table scale (``adaptive._adapthist``).
    result : (P, N) float32 / float64 ndarray
    """
    engine = select(xp, planes.dtype)
    if engine == "cuda":
        return _report(xp, "adapthist", engine,
                       _cuda.adapthist(planes, shape, kernel, nbins, clip, result))
    _report(xp, "adapthist", engine)
    return False


def split_luma(xp, rgb, order="rgb"):
    """Y of C-contiguous ``(outer, 3, inner)`` RGB and the state :func:`merge_luma` needs.

    `order` is ``"rgb"`` or ``"bgr"`` (the channels of `rgb` reversed, OpenCV's order: its
    ``COLOR_BGR2YCrCb``): the CUDA and compiled kernels take it as a parameter and read the
    pixels in place, the portable engine takes a reversed view. The CUDA engine (uint8/uint16/
    float32/float64 CuPy, ``color.cu``) and the compiled one (uint8/uint16 NumPy) write only Y,
    ``(outer, inner)``, and recompute the chroma from `rgb` when merging (state None); the
    portable one keeps Cr and Cb.
    """
    engine = select(xp, rgb.dtype)
    if engine == "cuda":
        luma = xp.empty((rgb.shape[0], rgb.shape[2]), rgb.dtype)
        if _report(xp, "split_luma", engine, _cuda.split_luma(rgb, order, luma)):
            return luma, None
    else:
        _report(xp, "split_luma", engine)
    if engine == "compiled" and _cpu.converts(rgb.dtype):
        return _cpu.rgb_luma(rgb, order), None
    return color.split_luma(xp, rgb[:, ::-1] if order == "bgr" else rgb)


def merge_luma(xp, rgb, luma, state, out, order="rgb"):
    """`out` ``(outer, 3, inner)``: `rgb` with its luma replaced by `luma` ``(outer, inner)``
    (OpenCV's YCrCb -> RGB with the chroma of `rgb`; `order` as :func:`split_luma`).

    `luma` has the dtype of `rgb`, or for unsigned `rgb` is float64 values in ``[0, 1]``
    (scikit-image's CDF), taken to the levels as ``rint(value * top)`` (inside the CUDA merge
    kernel; one more array operation elsewhere)."""
    engine = select(xp, rgb.dtype)
    if engine == "cuda":
        if _report(xp, "merge_luma", engine, _cuda.merge_luma(rgb, luma, order, out)):
            return
    else:
        _report(xp, "merge_luma", engine)
    dtype = np.dtype(rgb.dtype)
    if dtype.kind == "u" and np.dtype(luma.dtype) != dtype:
        luma = xp.rint(luma * np.iinfo(dtype).max).astype(dtype)
    if state is None and engine == "compiled" and _cpu.converts(rgb.dtype):
        _cpu.replace_luma(rgb, luma, out, order)
        return
    if order == "bgr":
        rgb, out = rgb[:, ::-1], out[:, ::-1]
    if state is None:  # the chroma was not kept: recompute it
        state = color.split_luma(xp, rgb)[1]
    color.merge_luma(xp, luma, state, out)


def equalize_luma(xp, rgb, nplanes, method, out, order="rgb", nbins=256):
    """The fused luma equalization, where an engine has it: `rgb` C-contiguous
    ``(outer, 3, inner)`` with each of the `nplanes` planes' pixels together (the image axes are
    the luma's trailing axes), no mask. Counts each plane's Y, makes the method's tables (the
    same functions as every other path) and writes the round trip through them into `out` (same
    shape); `order` as :func:`split_luma`. The compiled engine takes channels-last uint8
    (``inner == 1``) with ``"opencv"`` or ``"pil"``; the CUDA one uint8 and uint16, every method
    that fits, and small float32 / float64 planes (scikit-image's, `nbins` bins), either layout
    (one launch for uint8 and float planes of at most 65536 pixels and uint16 planes by rank up
    to 16384 pixels, else three per group of integer planes). Returns False or a
    ``_cuda.Declined`` where it does not apply: nothing written, except a float plane that needs
    numpy.interp's own search (``"irregular"``, `out` partly written, redone by the caller)."""
    engine = select(xp, rgb.dtype)
    if engine == "cuda":
        return _report(xp, "equalize_luma", engine,
                       _cuda.equalize_luma(rgb, nplanes, method, order, out, nbins))
    _report(xp, "equalize_luma", engine)
    if not (engine == "compiled" and rgb.dtype == np.uint8
            and rgb.shape[2] == 1 and method in ("opencv", "pil")):
        return False
    counts = _cpu.luma_counts(rgb, nplanes, order)
    tables = opencv_lut(np, counts, np.uint8) if method == "opencv" else pil_lut(np, counts)
    _cpu.replace_luma_lut(rgb, np.ascontiguousarray(tables), nplanes, out, order)
    return True
