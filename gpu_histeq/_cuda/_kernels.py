"""Build and launch the CUDA kernels on CuPy arrays (imported only for CuPy input).

Each launcher takes :class:`Planes` -- C-contiguous ``(P, N)`` rows, or spans of packed 1-d
arrays (a ragged batch: planes of any sizes one after the other) -- and writes into
preallocated arrays; the only device memory it adds is per-plane scratch, at most
``_planes.CHUNK_BINS`` bins at a time, and for packed planes their ``(K, 2)`` spans and
``(K + 1,)`` first blocks, one buffer copied from the host once per distinct layout (then
reused from :data:`_LAYOUTS`). Multi-block kernels over
packed planes run a 1-d grid of exactly the blocks each plane needs (none for a plane of 0
pixels), not planes x the largest plane's.
"""

import threading

import cupy
import numpy as np

from .. import _planes
from . import _plans, _sources
from ._plans import scratch

#: Threads of every block (GPU_HISTEQ_THREADS in common.cuh).
THREADS = 256
WARPS = THREADS // 32
#: Planes of at most this many pixels are equalized by one block each, in one launch.
SMALL_PIXELS = 1 << 16
#: Bins of the shared-memory tables of the one-block kernels (GPU_HISTEQ_SMALL_BINS).
SMALL_BINS = 256
#: Plane bytes the one-block kernels keep in shared memory (their static shared memory plus this
#: stays under the 48 KiB a block gets without opting in).
CACHE_BYTES_U8 = 32 << 10
CACHE_BYTES_FLOAT = 38 << 10
#: Bins up to which the multi-block histograms are private to each warp in shared memory.
PRIVATE_BINS = 1024
#: 16-byte packs each thread of a multi-block kernel handles.
PACKS_PER_THREAD = 8
#: Counts are 32-bit: planes must have fewer pixels.
MAX_PIXELS = (1 << 31) - 1
#: Bits of the status word of the float kernels (GPU_HISTEQ_* in uniform.cu): NaN or infinity;
#: repeated bin edges; a plane the portable path interpolates with numpy.interp's own search.
STATUS_NOT_FINITE = 1
STATUS_REPEATED_EDGES = 2
STATUS_IRREGULAR = 4
#: ... and of gpu_histeq_uniform_finish (histogram.cu): a plane with no selected pixel.
STATUS_NO_PIXEL = 8

_NULL = np.uint64(0)  # a null pointer argument (no mask, no per-plane low level)


@cupy.memoize(for_each_device=True)
def kernel(filename, name):
    """The compiled instantiation `name` (a name expression of `filename`) on this device."""
    if name not in _sources.INSTANTIATIONS[filename]:
        raise KeyError(f"{name} is not an instantiation listed in _sources.INSTANTIATIONS")
    module = cupy.RawModule(code=_sources.source(filename), options=_sources.OPTIONS,
                            name_expressions=(name,))
    return module.get_function(name)


#: ``(filename, kernel name, template arguments, device) -> compiled function``: :func:`kernel`
#: without building the name expression again (bounded: a few dozen instantiations exist).
_functions: dict = {}


def _launch(filename, kernel_name, template_args, grid, args, shared_mem=0):
    key = (filename, kernel_name, template_args, cupy.cuda.Device().id)
    function = _functions.get(key)
    if function is None:
        function = kernel(filename, _sources.expression(kernel_name, *template_args))
        if len(_functions) >= _plans.PLAN_CACHE_SIZE:
            _functions.clear()
        _functions[key] = function
    function(grid, (THREADS,), args, shared_mem=shared_mem)
    _plans.record(function, grid, (THREADS,), args, shared_mem)


# ---- launch plans (_plans.py): a configuration already seen replays its launches

def _tuning():
    """The module constants the launchers read (tests change them): part of every plan key."""
    return (SMALL_PIXELS, SMALL_BINS, CACHE_BYTES_U8, CACHE_BYTES_FLOAT, PRIVATE_BINS,
            PACKS_PER_THREAD, MAX_GRID_BLOCKS, _planes.CHUNK_BINS)


def planned(tuning=_tuning):
    """:func:`_plans.planned`, keyed by this module's constants unless `tuning` says more."""
    return _plans.planned(tuning)


def clear_plans():
    """Drop every launch plan and compiled-function lookup (the next call records again)."""
    _plans.clear()
    _functions.clear()


#: Blocks of one 1-d grid (packed layout): at most this many planes of 65535 blocks per launch.
MAX_GRID_BLOCKS = (1 << 31) - 1


def _pointer(array):
    return _NULL if array is None else array


def aligned(planes, mask_planes=None, out=None):
    """1 when every plane row (and its mask and output rows) starts on a 16-byte pack."""
    per_pack = 16 // planes.itemsize
    ok = planes.shape[1] % per_pack == 0 and packed_aligned(planes, mask_planes, out)
    return np.int32(ok)


def packed_aligned(values, mask=None, out=None):
    """1 when the arrays' bases start on a pack (values 16 bytes, mask and `out` one pack of
    theirs): a plane at any offset then peels the pixels before its first pack
    (``gpu_histeq_head`` in common.cuh) and loads 16 bytes at a time from there."""
    per_pack = 16 // values.itemsize
    ok = values.data.ptr % 16 == 0
    if mask is not None:
        ok = ok and mask.data.ptr % per_pack == 0
    if out is not None:
        ok = ok and out.data.ptr % min(16, per_pack * out.itemsize) == 0
    return np.int32(ok)


def blocks_per_plane(npixels, itemsize):
    """Blocks of a multi-block kernel for one plane: PACKS_PER_THREAD packs per thread."""
    per_block = THREADS * (16 // itemsize) * PACKS_PER_THREAD
    return max(1, min(65535, -(-npixels // per_block)))


def plane_groups(nplanes, bins):
    """Slices of planes whose per-plane scratch (``bins`` entries each) stays under CHUNK_BINS."""
    size = max(1, _planes.CHUNK_BINS // max(bins, 1))
    return [slice(p, min(p + size, nplanes)) for p in range(0, nplanes, size)]


class Planes:
    """The planes of one launch: C-contiguous ``(P, N)`` rows, or spans of packed 1-d arrays.

    Parameters
    ----------
    values : (P, N) or (M,) cupy.ndarray
    mask : (P, N) or (M,) bool cupy.ndarray or None
    out : (P, N) or (M,) cupy.ndarray or None
        The output the launches write, when they write one.
    spans : (K, 2) int64 numpy.ndarray or None
        Packed layout: plane ``q`` of the launch is ``values[spans[q, 0]:spans[q, 1]]`` (any
        subset of a ragged batch's planes, in any order); None for ``(P, N)`` rows.
    """

    def __init__(self, values, mask=None, out=None, spans=None):
        self.values, self.mask, self.out, self.spans = values, mask, out, spans
        self.itemsize = values.itemsize
        if spans is None:  # (the per-plane sizes only when asked: every row has `width`)
            self.count, width = values.shape
            self._sizes, self.largest = None, width if self.count else 0
        else:
            self.count = len(spans)
            self._sizes = spans[:, 1] - spans[:, 0]
            self.largest = int(self._sizes.max()) if self.count else 0
        self._device_spans = self._first_blocks = None

    @property
    def sizes(self):
        """``(K,)`` int64 pixels of each plane (host)."""
        if self._sizes is None:
            self._sizes = np.full(self.count, self.largest, np.int64)
        return self._sizes

    def select(self, rows):
        """The planes `rows` (a slice, or host indices in the packed layout)."""
        if self.spans is None:
            return Planes(self.values[rows], _rows(self.mask, rows), _rows(self.out, rows))
        return Planes(self.values, self.mask, self.out, self.spans[rows])

    def split(self, limit):
        """``(planes of at most `limit` pixels, the others)``, either None when it has none."""
        if not self.count:
            return None, None
        if self.spans is None:
            return (self, None) if self.largest <= limit else (None, self)
        small = self.sizes <= limit
        if small.all():
            return self, None
        if self.spans is None or not small.any():
            return None, self
        return self.select(np.flatnonzero(small)), self.select(np.flatnonzero(~small))

    def _aligned(self, with_mask, with_out):
        mask = self.mask if with_mask else None
        out = self.out if with_out else None
        if self.spans is None:
            return aligned(self.values, mask, out)
        return packed_aligned(self.values, mask, out)

    def _layout(self):
        if self.spans is None:
            return _NULL, np.int64(self.largest)
        if self._device_spans is None:
            self._device_spans, first, total = _device_layout(
                self.values, np.ascontiguousarray(self.spans, np.int64))
            self._first_blocks = (total, first)
        return self._device_spans, np.int64(0)

    def one_block(self, with_mask=True):
        """``(grid, args)`` of a one-block-per-plane kernel: ``(values, [mask,] spans, n,
        aligned)``."""
        spans, width = self._layout()
        masks = (_pointer(self.mask),) if with_mask else ()
        return (self.count,), (self.values, *masks, spans, width,
                               self._aligned(with_mask, self.out is not None))

    def multi_block(self, with_mask=True):
        """``(grid, args)`` of a multi-block kernel: ``(values, [mask,] spans, first_blocks,
        nplanes, n, aligned)``; grid None when no plane has a pixel (nothing to launch)."""
        spans, width = self._layout()
        masks = (_pointer(self.mask),) if with_mask else ()
        is_aligned = self._aligned(with_mask, not with_mask and self.out is not None)
        if self.spans is None:
            grid = (self.count, blocks_per_plane(self.largest, self.itemsize))
            return grid, (self.values, *masks, spans, _NULL, np.int64(self.count), width,
                          is_aligned)
        total, first_blocks = self._first_blocks  # set by _layout
        if total == 0:
            return None, None
        return (total,), (self.values, *masks, spans, first_blocks, np.int64(self.count), width,
                          is_aligned)

    def groups(self, bins=None):
        """``(rows, planes)`` per launch: :func:`plane_groups` for `bins` entries of scratch per
        plane (None: no scratch, one group of ``(P, N)`` rows); packed groups also hold at most
        MAX_GRID_BLOCKS // 65535 planes, so that the 1-d grid of their blocks stays valid."""
        if self.spans is None:
            slices = [slice(None)] if bins is None else plane_groups(self.count, bins)
        else:
            size = MAX_GRID_BLOCKS // 65535
            if bins is not None:
                size = max(1, min(_planes.CHUNK_BINS // max(bins, 1), size))
            slices = [slice(p, min(p + size, self.count)) for p in range(0, self.count, size)]
        if len(slices) == 1 and self.spans is None:
            return [(slices[0], self)]  # all the rows: these planes, no views
        return [(rows, self.select(rows)) for rows in slices]

    def cache(self, limit):
        """``(cache, shared_mem)`` of a one-block kernel that keeps planes in shared memory:
        a packed plane's copy keeps its phase (up to a pack less one pixel more)."""
        if not self._aligned(True, True):
            return np.int32(0), 0
        extra = 0 if self.spans is None else 16 - self.itemsize
        nbytes = self.largest * self.itemsize + extra
        return (np.int32(1), nbytes) if nbytes <= limit else (np.int32(0), 0)


def _rows(array, rows):
    return None if array is None else array[rows]


#: Layouts of packed launches already on a device: (device, host int64 bytes) -> device copy.
#: Read-only to the kernels, so a call with the planes sizes of an earlier one uploads nothing.
_LAYOUTS: dict = {}
#: Layouts kept (a few KiB each at most for ordinary batches); the oldest is dropped first.
LAYOUT_CACHE = 64
_LAYOUT_LOCK = threading.Lock()


def _device_layout(values, spans):
    """One int64 device buffer ``[spans.ravel(), first_blocks]`` of packed planes `spans`
    (first_blocks: each plane's first block of the 1-d multi-block grid, PACKS_PER_THREAD packs
    per thread, none for a plane of 0 pixels), uploaded once per distinct layout and device.

    Returns
    -------
    spans : (K, 2) int64 cupy.ndarray, first_blocks : (K + 1,) int64 cupy.ndarray, total : int
        Views of the one buffer, and the blocks of the whole grid.
    """
    count = len(spans)
    sizes = spans[:, 1] - spans[:, 0]
    per_block = THREADS * (16 // values.itemsize) * PACKS_PER_THREAD
    host = np.zeros(3 * count + 1, np.int64)
    host[:2 * count] = spans.ravel()
    np.cumsum(np.minimum(65535, -(-sizes // per_block)), out=host[2 * count + 1:])
    key = (values.device.id, values.itemsize, host.tobytes())
    with _LAYOUT_LOCK:
        device = _LAYOUTS.get(key)
        if device is None:
            while len(_LAYOUTS) >= LAYOUT_CACHE:
                del _LAYOUTS[next(iter(_LAYOUTS))]
            device = _LAYOUTS[key] = cupy.asarray(host)
    return device[:2 * count].reshape(count, 2), device[2 * count:], int(host[-1])


# ---- integer levels (levels.cu)

def level_histograms(planes, low, nbins, hists):
    """Add the counts of ``clamp(value - low[p], 0, nbins - 1)`` into ``(P, nbins)`` uint32 `hists`."""
    private = nbins <= PRIVATE_BINS
    grid, args = planes.multi_block()
    if grid is not None:
        _launch("levels.cu", "gpu_histeq_level_histogram", (planes.values.dtype,), grid,
                (*args, _pointer(low), np.int32(nbins), np.int32(private), hists),
                shared_mem=WARPS * nbins * 4 if private else 0)


@planned()
def remap(planes, tables, table_stride):
    """``out[p, i] = tables[p * table_stride + values[p, i]]`` (stride 0: one shared table)."""
    grid, args = planes.multi_block(with_mask=False)
    if grid is not None:
        _launch("levels.cu", "gpu_histeq_remap", (planes.values.dtype, planes.out.dtype), grid,
                (*args, tables, np.int64(table_stride), np.int32(tables.shape[-1]), planes.out))


@planned()
def equalize_levels(planes, method):
    """Equalize uint8 / uint16 planes (every method) and int16 planes (``"skimage"``) into
    ``planes.out``, one bin per level."""
    method_id = _sources.METHODS[method]
    result_dtype = planes.out.dtype
    small, large = planes.split(SMALL_PIXELS if planes.values.dtype == np.uint8 else -1)
    if large is not None:  # the multi-block launches run anyway: the small planes join them
        small, planes = None, planes  # (one launch fewer; their pixels read twice, not once)
    else:
        planes = None
    if small is not None:
        cache, shared_mem = small.cache(CACHE_BYTES_U8)
        grid, args = small.one_block()
        _launch("levels.cu", "gpu_histeq_equalize_small_u8", (method_id, result_dtype), grid,
                (*args, cache, small.out), shared_mem=shared_mem)
    if planes is None:
        return
    levels = 1 << (8 * planes.itemsize)
    # int16 (skimage only): level v counted in bin v + 32768 (a per-plane low of -32768), and its
    # cumulative count read 32768 entries into each plane's
    signed = planes.values.dtype.kind == "i"
    for _, group in planes.groups(levels):
        hists = scratch((group.count, levels), np.uint32, 0)
        low = scratch(group.count, np.int64, -(levels // 2)) if signed else None
        level_histograms(group, low, levels, hists)
        if method == "skimage" and levels == 65536:  # no float64 table: 4, not 8 + 8, bytes per level
            stats = scratch((group.count, 2), np.int64)
            _launch("levels.cu", "gpu_histeq_level_cumulative", (np.uint32,), (group.count,),
                    (hists, np.int32(levels), stats))
            grid, args = group.multi_block(with_mask=False)
            if grid is not None:
                _launch("levels.cu", "gpu_histeq_remap_cumulative", (group.values.dtype,), grid,
                        (*args, hists, np.int64(levels), np.int64(levels // 2 if signed else 0),
                         stats, group.out))
            continue
        tables = scratch((group.count, levels), result_dtype)  # unsigned levels only here
        _launch("levels.cu", "gpu_histeq_level_tables", (method_id, result_dtype), (group.count,),
                (hists, np.int32(levels), tables))
        remap(group, tables, levels)


# ---- floating values, uniform bins (uniform.cu)

def range_dtype(dtype):
    """The dtype of the uniform kernels' per-plane low / high of `dtype` planes: float32 for
    float16 (their atomics have no 16-bit form; every float16 is a float32), else `dtype`."""
    return np.dtype(np.float32) if np.dtype(dtype) == np.float16 else np.dtype(dtype)


def uniform_histograms(planes, low, high, widen, nbins, hists):
    """Add numpy.histogram's counts over ``[low[p], high[p]]`` into ``(P, nbins)`` uint32 `hists`."""
    private = nbins <= PRIVATE_BINS
    grid, args = planes.multi_block()
    if grid is not None:
        _launch("uniform.cu", "gpu_histeq_uniform_histogram", (planes.values.dtype,), grid,
                (*args, low, high, np.int32(widen), np.int32(nbins), np.int32(private), hists),
                shared_mem=WARPS * nbins * 4 if private else 0)


@planned()
def equalize_uniform(planes, nbins, status):
    """Equalize float32 / float64 planes into ``planes.out`` as scikit-image; ORs STATUS_* bits
    into ``status[0]``. A plane of 0 pixels gets the range [0, 0] (its edges are checked, as
    the portable path checks them) and nothing written."""
    dtype = planes.values.dtype
    small, planes = planes.split(SMALL_PIXELS if nbins <= SMALL_BINS else -1)
    if small is not None:
        cache, shared_mem = small.cache(CACHE_BYTES_FLOAT)
        grid, args = small.one_block()
        _launch("uniform.cu", "gpu_histeq_equalize_small_float", (dtype,), grid,
                (*args, cache, np.int32(nbins), status, small.out), shared_mem=shared_mem)
    if planes is None:
        return
    wide = range_dtype(dtype)
    for _, group in planes.groups(nbins):
        low, high = scratch(group.count, wide, np.inf), scratch(group.count, wide, -np.inf)
        if group.spans is not None:  # planes of 0 pixels: [0, 0], as the portable plane_stats
            spans, _ = group._layout()
            empty = spans[:, 1] == spans[:, 0]
            low, high = cupy.where(empty, wide.type(0), low), cupy.where(empty, wide.type(0), high)
        grid, args = group.multi_block()
        if grid is not None:
            _launch("uniform.cu", "gpu_histeq_minmax", (dtype,), grid, (*args, low, high, status))
        hists = scratch((group.count, nbins), np.uint32, 0)
        uniform_histograms(group, low, high, 1, nbins, hists)
        values, positions, slopes = (scratch((group.count, nbins), np.float64) for _ in range(3))
        _launch("uniform.cu", "gpu_histeq_uniform_tables", (dtype,), (group.count,),
                (hists, low, high, np.int32(nbins), values, positions, slopes, status))
        grid, args = group.multi_block(with_mask=False)
        if grid is not None:
            _launch("uniform.cu", "gpu_histeq_uniform_remap", (dtype,), grid,
                    (*args, low, high, np.int32(nbins), values, positions, slopes, group.out))


# ---- histogram / cumulative_distribution (histogram.cu finishes the counts of either binning)

def level_range(planes, ranges):
    """Lowest / highest selected level of each plane into rows 0 / 1 of ``(2, P)`` int64
    `ranges` (atomics: they start at the largest / smallest int64, which an unselected plane
    keeps)."""
    grid, args = planes.multi_block()
    if grid is not None:
        _launch("levels.cu", "gpu_histeq_level_range", (planes.values.dtype,), grid,
                (*args, ranges))


def plane_minmax(planes, low, high, status):
    """Minimum / maximum of each plane's selected pixels into `low` / `high` (starting at +inf /
    -inf), STATUS_NOT_FINITE into ``status[0]`` for a NaN or infinity anywhere."""
    grid, args = planes.multi_block()
    if grid is not None:
        _launch("uniform.cu", "gpu_histeq_minmax", (planes.values.dtype,), grid,
                (*args, low, high, status))


def histogram_finish(hists, low, high, counts, cdf, centers, status=None):
    """``(P, B)`` int64 `counts` (or None) and `cdf` (or None) and `centers` from ``(P, B)``
    uint32 `hists`: level bins from `low` when `high` is None, else uniform bins over ``[low,
    high]`` with STATUS_REPEATED_EDGES / STATUS_NO_PIXEL and the first plane without a selected
    pixel (``P - status[1]``) in `status`."""
    nplanes, nbins = hists.shape
    if high is None:
        _launch("histogram.cu", "gpu_histeq_level_finish", (np.float64,), (nplanes,),
                (hists, _pointer(low), np.int32(nbins), _pointer(counts), _pointer(cdf), centers))
        return
    cdf_type = np.float64 if centers.dtype == np.float64 else np.float32  # _tables.cdf_dtype
    _launch("histogram.cu", "gpu_histeq_uniform_finish", (centers.dtype, cdf_type), (nplanes,),
            (hists, low, high, np.int32(nbins), _pointer(counts), _pointer(cdf), centers, status))
