"""From an N-d array and its image axes to a 2-d ``(planes, pixels)`` array, in blocks.

Every public function works on ``planes``: the image axes moved last and flattened into one pixel
axis, every other (batch) axis flattened into one plane axis. Work is cut into blocks of whole
planes (or, for planes larger than a block, column ranges of one plane) so that the per-pixel
index array never exceeds ``CHUNK_PIXELS`` elements and a block's histograms never exceed
``CHUNK_BINS`` bins: the peak extra memory is bounded whatever the batch size.
"""

import math
import os
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


def blocks(xp, nplanes, npixels, nbins):
    """Cut a ``(nplanes, npixels)`` array into blocks ``(plane_slice, pixel_slice)``.

    A block holds whole planes when a plane fits (``pixel_slice`` is then the full range), else a
    column range of one plane.
    """
    chunk_pixels = CHUNK_PIXELS_GPU if is_cupy(xp) else CHUNK_PIXELS
    if npixels <= chunk_pixels:
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
    block_list = blocks(xp, nplanes, npixels, nbins)
    starts = sorted({rows.start for rows, _ in block_list})
    if not is_cupy(xp):
        most = max(1, CPU_TABLE_BYTES // (8 * nbins))
        starts = sorted({p for a, b in zip(starts, starts[1:] + [nplanes])
                         for p in range(a, b, most)})
    return [(slice(a, b), slice(0, npixels)) for a, b in zip(starts, starts[1:] + [nplanes])]


def whole_planes(block_list, npixels):
    """True when every block holds whole planes, so one pass can count and remap each block."""
    return all(cols.stop - cols.start == npixels for _, cols in block_list)


def thread_count():
    """CPU threads for blocks: GPU_HISTEQ_NUM_THREADS, else the cores this process may use."""
    asked = os.environ.get("GPU_HISTEQ_NUM_THREADS")
    if asked is not None:
        if not asked.strip().isdigit() or int(asked) < 1:
            raise ValueError(f"environment variable GPU_HISTEQ_NUM_THREADS must be a positive "
                             f"integer, got {asked!r}")
        return int(asked)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_WORKER = threading.local()  # .busy is True while a thread runs blocks: nested calls run serially


def map_blocks(xp, fn, block_list):
    """Apply `fn` to every block and return the results in block order.

    On the GPU the blocks are queued on the current stream in order: the device runs them. On
    the CPU (NumPy and the compiled path release the GIL) the calling thread and up to
    ``threads - 1`` helper threads started for this call take the next block until none is
    left. Fresh threads, not a kept pool: the scheduler places a new thread on an idle core,
    while the threads of a pool woken after a pause often queue on one core. If a block
    raises, no new block starts, the running ones finish, and the first error is re-raised: no
    thread touches the arrays after this returns.
    """
    threads = min(thread_count(), len(block_list))
    if is_cupy(xp) or threads <= 1 or getattr(_WORKER, "busy", False):
        return [fn(block) for block in block_list]
    results = [None] * len(block_list)
    errors = []
    indices = iter(range(len(block_list)))  # next() on it is atomic under the GIL

    def work():
        _WORKER.busy = True
        try:
            for index in indices:
                if errors:
                    return
                results[index] = fn(block_list[index])
        except BaseException as error:  # re-raised by the calling thread
            errors.append(error)
        finally:
            _WORKER.busy = False

    helpers = [threading.Thread(target=work, name="gpu_histeq", daemon=True)
               for _ in range(threads - 1)]
    for helper in helpers:
        helper.start()
    try:
        work()
        for helper in helpers:
            helper.join()
    except BaseException as error:  # interrupted while waiting: the helpers stop too
        errors.append(error)
        for helper in helpers:
            helper.join()
    if errors:
        raise errors[0]
    return results


def plane_offsets(xp, nplanes, nbins):
    """``(nplanes, 1)`` offsets ``nbins * plane``: the bincount index is ``bin + offset``."""
    return (xp.arange(nplanes, dtype=np.intp) * nbins)[:, None]
