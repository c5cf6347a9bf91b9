"""From an N-d array and its image axes to a 2-d ``(planes, pixels)`` array, in blocks.

Every public function works on ``planes``: the image axes moved last and flattened into one pixel
axis, every other (batch) axis flattened into one plane axis. Work is cut into blocks of whole
planes (or, for planes larger than a block, column ranges of one plane) so that the per-pixel
index array never exceeds ``CHUNK_PIXELS`` elements and a block's histograms never exceed
``CHUNK_BINS`` bins: the peak extra memory is bounded whatever the batch size.
"""

import contextlib
import importlib.util
import math
import numbers
import os
import queue
import sys
import threading

import numpy as np

from ._backend import is_cupy

#: Index elements per block on the CPU: 2**19 int64 = 4 MiB, which stays in the cache.
CHUNK_PIXELS = 1 << 19
#: Index elements per block on the GPU: 2**26 int64 = 512 MiB.
CHUNK_PIXELS_GPU = 1 << 26
#: Histogram bins per block (planes in the block x bins per plane).
CHUNK_BINS = 1 << 22


def to_planes(xp, array, axes):
    """Return `array` as a C-contiguous ``(planes, pixels)`` array and the batch/image shapes.

    Parameters
    ----------
    xp : module
    array : (...) ndarray
    axes : tuple of int
        Sorted, distinct image axes.

    Returns
    -------
    planes : (P, N) ndarray
        A view where the layout allows it, otherwise one copy.
    batch_shape, image_shape : tuple of int
    """
    batch_axes = tuple(a for a in range(array.ndim) if a not in axes)
    trailing = tuple(range(len(batch_axes), array.ndim))
    moved = array if tuple(axes) == trailing else xp.moveaxis(array, axes, trailing)
    batch_shape = moved.shape[: len(batch_axes)]
    image_shape = moved.shape[len(batch_axes):]
    planes = xp.ascontiguousarray(moved.reshape(math.prod(batch_shape), math.prod(image_shape)))
    return planes, batch_shape, image_shape


def from_planes(xp, planes, batch_shape, image_shape, axes):
    """Inverse of :func:`to_planes`: a view of `planes` with the original axis order."""
    ndim = len(batch_shape) + len(image_shape)
    stacked = planes.reshape(tuple(batch_shape) + tuple(image_shape))
    trailing = tuple(range(len(batch_shape), ndim))
    return stacked if tuple(axes) == trailing else xp.moveaxis(stacked, trailing, axes)


def writable_planes(xp, out, axes):
    """Return a ``(planes, pixels)`` view of `out` that writes through, or None if none exists."""
    batch_ndim = out.ndim - len(axes)
    moved = xp.moveaxis(out, axes, tuple(range(batch_ndim, out.ndim)))
    if not moved.flags.c_contiguous:
        return None
    nplanes = math.prod(moved.shape[:batch_ndim])
    return moved.reshape(nplanes, math.prod(moved.shape[batch_ndim:]))


def holds_whole_planes(xp, npixels):
    """True when :func:`blocks` cuts planes of `npixels` pixels into blocks of whole planes."""
    return npixels <= (CHUNK_PIXELS_GPU if is_cupy(xp) else CHUNK_PIXELS)


def blocks(xp, nplanes, npixels, nbins):
    """Cut a ``(nplanes, npixels)`` array into blocks ``(plane_slice, pixel_slice)``.

    A block holds whole planes when a plane fits (``pixel_slice`` is then the full range), else a
    column range of one plane.
    """
    chunk_pixels = CHUNK_PIXELS_GPU if is_cupy(xp) else CHUNK_PIXELS
    if holds_whole_planes(xp, npixels):
        per_block = max(1, min(chunk_pixels // max(npixels, 1), CHUNK_BINS // nbins))
        return [(slice(p, min(p + per_block, nplanes)), slice(0, npixels))
                for p in range(0, nplanes, per_block)]
    return [(slice(p, p + 1), slice(c, min(c + chunk_pixels, npixels)))
            for p in range(nplanes) for c in range(0, npixels, chunk_pixels)]


def packed_runs(starts, step, most, alone=None):
    """Runs ``(p0, p1)`` of whole planes packed one after the other (plane ``p`` at pixels
    ``starts[p]:starts[p + 1]``): a run holds the planes that start in one window of `step`
    pixels, at most `most` of them; each plane flagged in `alone` (``(P,)`` bool) is a run of
    its own. Every engine's blocks of a ragged batch are cut here."""
    nplanes = len(starts) - 1
    if nplanes == 0:
        return []
    plane = np.arange(nplanes)
    window = np.asarray(starts[:-1]) // step
    new = np.ones(nplanes, bool)
    new[1:] = (window[1:] != window[:-1]) | (plane[1:] // most != plane[:-1] // most)
    if alone is not None:
        new[1:] |= alone[1:] | alone[:-1]
    firsts = np.flatnonzero(new).tolist()
    return list(zip(firsts, firsts[1:] + [nplanes]))


#: On the CPU, a block's tables (int64) stay below this many bytes, to stay in cache.
CPU_TABLE_BYTES = 1 << 21


def plane_blocks(xp, nplanes, npixels, nbins):
    """Blocks of whole planes, `nbins` table entries per plane (a large plane is its own block).

    On the CPU a block's tables are also kept under ``CPU_TABLE_BYTES``: the clip, cumulative
    sum and gathers then run in cache.
    """
    chunk_pixels = CHUNK_PIXELS_GPU if is_cupy(xp) else CHUNK_PIXELS
    per_block = (max(1, min(chunk_pixels // max(npixels, 1), CHUNK_BINS // nbins))
                 if holds_whole_planes(xp, npixels) else 1)  # the planes of a blocks() block
    most = per_block if is_cupy(xp) else max(1, CPU_TABLE_BYTES // (8 * nbins))
    if most >= per_block:  # (the common case, without the nested ranges: a call's fixed cost)
        return [(slice(a, min(a + per_block, nplanes)), slice(0, npixels))
                for a in range(0, nplanes, per_block)]
    starts = [p for a in range(0, nplanes, per_block) for p in range(a, min(a + per_block, nplanes), most)]
    return [(slice(a, b), slice(0, npixels)) for a, b in zip(starts, starts[1:] + [nplanes])]


def whole_planes(block_list, npixels):
    """True when every block holds whole planes, so one pass can count and remap each block."""
    return all(cols.stop - cols.start == npixels for _, cols in block_list)


#: The cap of :func:`thread_limit` (and of threadpoolctl's ``threadpool_limits``): None, or the
#: innermost limit in force, process-wide (the helper threads of one call see it too).
_limits = []
_limits_lock = threading.Lock()


def getenv(name):
    """``os.environ.get(name)``, read at every call as that is, at a twentieth of its cost.

    ``os.environ.get`` of a variable that is not set raises and catches a KeyError inside:
    about 1 us, several times the work of a small image's call, which reads two switches. On
    POSIX, CPython keeps the encoded variables in ``os.environ._data``, which every change made
    through ``os.environ`` (and so ``monkeypatch.setenv``) writes; elsewhere, or where it is
    missing, this is ``os.environ.get``.
    """
    environ = os.environ
    data = getattr(environ, "_data", None)
    if os.name != "posix" or not isinstance(data, dict):
        return environ.get(name)
    value = data.get(name.encode())
    return None if value is None else os.fsdecode(value)


def configured_threads():
    """``GPU_HISTEQ_NUM_THREADS`` as an int, or None when it is not set.

    Raises
    ------
    ValueError
        If it is set to anything but a positive integer (every call checks it, whether or not
        it runs threads).
    """
    asked = getenv("GPU_HISTEQ_NUM_THREADS")
    if asked is None:
        return None
    if not asked.strip().isdigit() or int(asked) < 1:
        raise ValueError(f"environment variable GPU_HISTEQ_NUM_THREADS must be a positive "
                         f"integer, got {asked!r}")
    return int(asked)


def default_thread_count():
    """Threads without :func:`thread_limit`: ``GPU_HISTEQ_NUM_THREADS`` when set (used as given),
    else the cores this process may use, capped by the limits users already set for other
    libraries: ``OMP_NUM_THREADS`` (its first entry), ``torch.get_num_threads()`` when torch is
    already imported, and 1 inside a torch ``DataLoader`` worker."""
    asked = configured_threads()
    if asked is not None:
        return asked
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        count = os.cpu_count() or 1
    omp = (getenv("OMP_NUM_THREADS") or "").split(",")[0].strip()
    if omp.isdigit() and int(omp) >= 1:  # as OpenMP, an unusable value is ignored
        count = min(count, int(omp))
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        count = min(count, max(1, torch.get_num_threads()))
        data = sys.modules.get("torch.utils.data")
        if data is not None and data.get_worker_info() is not None:
            count = 1  # a DataLoader worker: the workers are the parallelism
    return count


#: The limit threadpoolctl set (``threadpool_limits``), or None.
_library_limit = None


def thread_count():
    """CPU threads for blocks: :func:`default_thread_count`, capped by the innermost
    :func:`thread_limit` and by threadpoolctl's limit."""
    count = default_thread_count()
    innermost = _limits[-1:]  # (one read: another thread may leave its block meanwhile)
    if innermost:
        count = min(count, innermost[0])
    return count if _library_limit is None else min(count, _library_limit)


def _register_with_threadpoolctl():
    """Let ``threadpoolctl.threadpool_limits`` (and ``threadpool_info``) see gpu_histeq's threads
    when threadpoolctl is installed: it finds the loaded compiled library by its file name."""
    try:
        import threadpoolctl
    except ImportError:
        return
    if not hasattr(threadpoolctl, "register"):  # pragma: no cover - threadpoolctl < 3.0
        return

    class Controller(threadpoolctl.LibController):
        user_api = internal_api = "gpu_histeq"
        filename_prefixes = ("_cpu_kernels",)

        def get_num_threads(self):
            return thread_count()

        def set_num_threads(self, num_threads):
            global _library_limit
            # restoring the count read on entry (or any count not below the default) lifts it
            _library_limit = None if num_threads >= default_thread_count() else num_threads

        def get_version(self):
            return None  # (the package's version is in show_config())

    threadpoolctl.register(Controller)


if importlib.util.find_spec("threadpoolctl") is not None:
    _register_with_threadpoolctl()


@contextlib.contextmanager
def thread_limit(limit):
    """Run the compiled CPU path on at most `limit` threads within this block (process-wide).

    What ``threadpoolctl.threadpool_limits(limit)`` does for BLAS and OpenMP, for gpu_histeq's
    own threads (and when threadpoolctl is installed, ``threadpool_limits`` sets this same
    limit). Blocks nest: the innermost limit holds.

    Parameters
    ----------
    limit : int
        At least 1.

    Raises
    ------
    ValueError
        If `limit` is not a positive integer.

    Notes
    -----
    Without a limit gpu_histeq uses ``GPU_HISTEQ_NUM_THREADS`` threads when it is set, else the
    cores it may use, at most ``OMP_NUM_THREADS`` and ``torch.get_num_threads()`` (when torch
    is imported), and one thread inside a torch ``DataLoader`` worker. Threads are kept in one
    pool and reused from call to call.

    Examples
    --------
    >>> import numpy as np
    >>> import gpu_histeq
    >>> with gpu_histeq.thread_limit(1):
    ...     out = gpu_histeq.equalize_hist(np.zeros((4, 64, 64), np.uint8))
    """
    if isinstance(limit, (bool, np.bool_)) or not isinstance(limit, numbers.Integral) or limit < 1:
        raise ValueError(f"`limit` must be a positive integer, got {limit!r}")
    with _limits_lock:
        _limits.append(int(limit))
    try:
        yield
    finally:
        with _limits_lock:  # this block's entry: the last one equal to it
            del _limits[len(_limits) - 1 - _limits[::-1].index(int(limit))]


_WORKER = threading.local()  # .busy is True while a thread runs blocks: nested calls run serially


class _Job:
    """The blocks of one :func:`map_blocks` call, taken one at a time by the calling thread and
    by the pool threads that join before it is closed."""

    def __init__(self, fn, block_list):
        self.fn, self.blocks = fn, block_list
        self.results = [None] * len(block_list)
        self.errors = []
        self.indices = iter(range(len(block_list)))  # next() on it is atomic under the GIL
        self.changed = threading.Condition(threading.Lock())
        self.open, self.active = True, 0

    def work(self):
        _WORKER.busy = True
        try:
            for index in self.indices:
                if self.errors:
                    return
                self.results[index] = self.fn(self.blocks[index])
        except BaseException as error:  # re-raised by the calling thread
            self.errors.append(error)
        finally:
            _WORKER.busy = False

    def help(self):
        """Run by a pool thread: join unless the caller already closed the job."""
        with self.changed:
            if not self.open:
                return
            self.active += 1
        try:
            self.work()
        finally:
            with self.changed:
                self.active -= 1
                self.changed.notify_all()

    def close(self):
        """No thread joins any more; wait for those that did (even when interrupted)."""
        with self.changed:
            self.open = False
            while self.active:
                try:
                    self.changed.wait()
                except BaseException as error:  # interrupted while waiting: the helpers stop too
                    self.errors.append(error)


class _Pool:
    """Helper threads kept from call to call: each serves jobs from one queue."""

    def __init__(self):
        self.lock = threading.Lock()
        self.jobs = queue.SimpleQueue()
        self.size = 0

    def submit(self, job, helpers):
        with self.lock:
            while self.size < helpers:
                threading.Thread(target=self.serve, name="gpu_histeq", daemon=True).start()
                self.size += 1
        for _ in range(helpers):
            self.jobs.put(job)

    def serve(self):
        while True:
            self.jobs.get().help()


_POOL = _Pool()


def _fresh_pool():  # a forked child (a DataLoader worker) has none of the parent's threads
    global _POOL, _limits_lock
    _POOL = _Pool()
    _limits_lock = threading.Lock()  # (a thread of the parent may have held it)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_pool)


def map_blocks(xp, fn, block_list):
    """Apply `fn` to every block and return the results in block order.

    On the GPU the blocks are queued on the current stream in order: the device runs them. On
    the CPU (NumPy and the compiled path release the GIL) the calling thread and up to
    ``thread_count() - 1`` threads of a kept pool take the next block until none is left; a
    pool thread still busy elsewhere when the caller is done is not waited for. If a block
    raises, no new block starts, the running ones finish, and the first error is re-raised: no
    thread touches the arrays after this returns. A block that calls this again runs its
    blocks serially in its own thread.
    """
    if is_cupy(xp) or getattr(_WORKER, "busy", False):
        return [fn(block) for block in block_list]
    threads = min(thread_count(), len(block_list))
    if threads <= 1:
        return [fn(block) for block in block_list]
    job = _Job(fn, block_list)
    _POOL.submit(job, threads - 1)
    try:
        job.work()
    finally:
        job.close()
    if job.errors:
        raise job.errors[0]
    return job.results


def plane_offsets(xp, nplanes, nbins):
    """``(nplanes, 1)`` offsets ``nbins * plane``: the bincount index is ``bin + offset``."""
    return (xp.arange(nplanes, dtype=np.intp) * nbins)[:, None]
