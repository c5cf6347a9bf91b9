"""Launch the luma kernels of ``color.cu`` on CuPy RGB (imported only for CuPy input).

RGB is C-contiguous ``(outer, 3, inner)`` (channels last: ``inner == 1``; channels first:
``inner == H * W``), the channels in `order` ("rgb", or "bgr" for OpenCV's order: the kernels
swap the red and blue offsets, no copy). Three launchers:

* :func:`split_luma`: Y of every pixel into ``(outer, inner)``, one launch;
* :func:`merge_luma`: the round trip with a new Y, one launch (the chroma recomputed from the
  pixels, never stored);
* :func:`equalize_small_u8`: the whole equalization of small uint8 planes, one launch, one
  block per plane, Y never stored;
* :func:`equalize_levels`: the same for uint8 / uint16 planes of any size, three launches per
  group of planes (the luma histograms, ``levels.cu``'s tables, the round trip through them),
  Y never stored;
* :func:`equalize_ranked`: uint16 planes of at most ``_ranks.SHARED_PIXELS[2]`` pixels by rank,
  one launch, one block per plane (Y sorted in shared memory), no 65536-bin histogram or table;
* :func:`equalize_small_float`: float32 / float64 planes of at most SMALL_PIXELS pixels with at
  most ``_kernels.SMALL_BINS`` bins, one launch, one block per plane, Y never stored.

Nothing is copied from the host but scalars; the only memory added is the per-plane histograms
and tables of :func:`equalize_levels` (``planes x levels``, in groups under CHUNK_BINS) and the
status word of :func:`equalize_small_float`.
"""

import numpy as np

import cupy

from . import _sources
from ._kernels import PRIVATE_BINS, THREADS, WARPS, _launch, plane_groups

#: Blocks of the grid-stride loops of split and merge (enough to fill any current GPU).
MAX_BLOCKS = 8192
#: Planes of at most this many pixels take the one-launch equalization (one block each).
SMALL_PIXELS = 1 << 16


def _grid(count):
    return (max(1, min(MAX_BLOCKS, -(-count // THREADS))),)


def split_luma(rgb, order, luma):
    """``luma[o, i]`` = Y of pixel ``(o, :, i)`` of `rgb` (the dtype of `rgb`)."""
    outer, _, inner = rgb.shape
    _launch("color.cu", "gpu_histeq_split_luma", (rgb.dtype,), _grid(outer * inner),
            (rgb, np.int64(outer * inner), np.int64(inner), np.int32(_sources.ORDERS[order]),
             luma))


def merge_luma(rgb, luma, order, out):
    """`out` = `rgb` with Y replaced by `luma` (of the dtype of `rgb`, or float64 CDF values in
    ``[0, 1]`` for integer `rgb`, taken to ``rint(value * top)``)."""
    outer, _, inner = rgb.shape
    _launch("color.cu", "gpu_histeq_merge_luma", (rgb.dtype, luma.dtype), _grid(outer * inner),
            (rgb, luma, np.int64(outer * inner), np.int64(inner),
             np.int32(_sources.ORDERS[order]), out))


def equalize_small_u8(rgb, nplanes, method, order, out):
    """Equalize the luma of `nplanes` uint8 planes of at most SMALL_PIXELS pixels each (plane
    ``p``: luma indices ``p * n`` to ``(p + 1) * n``) into `out`, one launch."""
    outer, _, inner = rgb.shape
    table_dtype = np.float64 if method == "skimage" else np.uint8
    _launch("color.cu", "gpu_histeq_equalize_luma_small_u8",
            (_sources.METHODS[method], table_dtype), (nplanes,),
            (rgb, np.int64(outer * inner // nplanes), np.int64(inner),
             np.int32(_sources.ORDERS[order]), out))


#: Pixels each thread of the multi-block kernels handles, at least (their grid-stride loops).
PIXELS_PER_THREAD = 16


def equalize_levels(rgb, nplanes, method, order, out):
    """Equalize the luma of `nplanes` uint8 / uint16 planes of any size into `out`: per group
    of planes, the luma histograms, the method's tables and the round trip through them."""
    outer, _, inner = rgb.shape
    npixels = outer * inner // nplanes
    levels = 1 << (8 * rgb.itemsize)
    private = levels <= PRIVATE_BINS
    per_plane = max(1, min(65535, -(-npixels // (THREADS * PIXELS_PER_THREAD))))
    table_dtype = np.float64 if method == "skimage" else rgb.dtype
    bgr = np.int32(_sources.ORDERS[order])
    for group in plane_groups(nplanes, levels):
        count = group.stop - group.start
        hists = cupy.zeros((count, levels), np.uint32)
        _launch("color.cu", "gpu_histeq_luma_histogram", (rgb.dtype,), (count, per_plane),
                (rgb, np.int64(group.start), np.int64(npixels), np.int64(inner), bgr,
                 np.int32(levels), np.int32(private), hists),
                shared_mem=WARPS * levels * 4 if private else 0)
        tables = cupy.empty((count, levels), table_dtype)
        _launch("levels.cu", "gpu_histeq_level_tables", (_sources.METHODS[method], table_dtype),
                (count,), (hists, np.int32(levels), tables))
        _launch("color.cu", "gpu_histeq_luma_remap", (rgb.dtype, table_dtype), (count, per_plane),
                (rgb, np.int64(group.start), np.int64(npixels), np.int64(inner), bgr, tables,
                 np.int32(levels), out))


def equalize_ranked(rgb, nplanes, method, order, out):
    """Equalize the luma of `nplanes` uint16 planes of at most ``_ranks.SHARED_PIXELS[2]``
    pixels each into `out` by rank (``"opencv"`` or ``"skimage"``), one launch, the keys in
    dynamic shared memory. (Larger planes take :func:`equalize_levels`: a sort of a plane in
    global memory by one block takes log2(n)**2 / 2 passes over it, which the 65536-bin
    histograms and tables per plane cost far less than, though they move more bytes.)"""
    from ._ranks import padded
    outer, _, inner = rgb.shape
    npixels = outer * inner // nplanes
    _launch("color.cu", "gpu_histeq_equalize_luma_ranked", (rgb.dtype, _sources.METHODS[method]),
            (nplanes,), (rgb, np.int64(npixels), np.int64(inner),
                         np.int32(_sources.ORDERS[order]), out),
            shared_mem=padded(npixels) * 2)


def equalize_small_float(rgb, nplanes, nbins, order, status, out):
    """Equalize the luma of `nplanes` float32 / float64 planes of at most SMALL_PIXELS pixels
    each (scikit-image's, `nbins` at most ``_kernels.SMALL_BINS``) into `out`, one launch; ORs
    the ``_kernels.STATUS_*`` bits into ``status[0]``."""
    outer, _, inner = rgb.shape
    _launch("color.cu", "gpu_histeq_equalize_luma_small_float", (rgb.dtype,), (nplanes,),
            (rgb, np.int64(outer * inner // nplanes), np.int64(inner),
             np.int32(_sources.ORDERS[order]), np.int32(nbins), status, out))
