"""Streaming a source through an operation into a sink, in slabs of its first axis.

Per-image work reads, processes and writes one slab at a time, so a file larger than memory
holds one slab (about 64 MiB) at a time. Dataset-wide equalization (image axes that include
the first axis) goes through :func:`gpu_histeq._chunked.equalize_slabs`, the driver shared with
the chunked pipeline: ranges (``--method skimage``), histograms, then the remap, each a pass
over the file.

A zarr input is read in slabs of whole stored chunks (shards, if it has them) along its first
axis: each chunk is decompressed once per pass, several per slab so that zarr (de)compresses
them on its threads, and the output (zarr) is chunked like the input along that axis. While a
slab is processed and written, the next one is read and decompressed on a thread.
"""

import math
import os
import sys
import threading
from concurrent.futures import Future

import numpy as np

from .. import _chunked
from ._cleanup import CliError

__all__ = ["CHUNK_BYTES", "Progress", "stream"]

#: Bytes of input per chunk when ``--chunk-size`` is not given.
CHUNK_BYTES = 64 << 20
#: Stored chunks per slab of a chunked input, at least (zarr (de)compresses them in parallel),
#: unless that would exceed SLAB_BYTES_MAX.
CHUNKS_PER_SLAB = min(os.cpu_count() or 1, 4)
SLAB_BYTES_MAX = 256 << 20
#: Width of the bar when a terminal reports 0 columns (some CI consoles, serial lines).
FALLBACK_COLUMNS = 80


def to_host(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)


def _terminal_columns(stream):
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


class Progress:
    """A tqdm bar on stderr, or nothing.

    Parameters
    ----------
    enabled : bool or None
        True: always (an error without tqdm); False: never; None: when stderr is a terminal
        and tqdm is installed.
    total : int
    desc : str
    """

    def __init__(self, enabled, total, desc):
        self.bar = None
        stream = sys.stderr
        if enabled is False or total == 0:
            return
        if enabled is None and not (hasattr(stream, "isatty") and stream.isatty()):
            return
        try:
            from tqdm import tqdm
        except ImportError:
            if enabled:
                raise CliError("--progress needs tqdm: pip install tqdm") from None
            return
        columns = _terminal_columns(stream)
        self.bar = tqdm(total=total, desc=desc, unit="img", file=stream, leave=False,
                        ncols=columns or FALLBACK_COLUMNS, dynamic_ncols=columns > 0,
                        mininterval=0.2)

    def update(self, count):
        if self.bar is not None:
            self.bar.update(count)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def rows_per_chunk(shape, itemsize, chunk_size, stored_rows=None):
    """Entries of the first axis per slab.

    ``--chunk-size`` if given; else, for an input stored in chunks of `stored_rows` entries, a
    multiple of them: about 64 MiB and at least CHUNKS_PER_SLAB chunks (within SLAB_BYTES_MAX,
    and never less than one chunk); else about 64 MiB of input.
    """
    if chunk_size is not None:
        if chunk_size < 1:
            raise CliError(f"--chunk-size must be a positive number of images, got {chunk_size}")
        return chunk_size
    row_bytes = max(1, math.prod(shape[1:]) * itemsize)
    if stored_rows is None:
        return max(1, CHUNK_BYTES // row_bytes)
    stored_bytes = stored_rows * row_bytes
    count = max(-(-CHUNK_BYTES // stored_bytes), CHUNKS_PER_SLAB)
    count = max(1, min(count, SLAB_BYTES_MAX // stored_bytes))
    rows = shape[0] if shape else 0
    return stored_rows * min(count, max(1, -(-rows // stored_rows)))


def stored_rows(source):
    """Entries of the first axis per stored chunk of a zarr input (its shards if sharded), or
    None for an input read at any row."""
    if source.kind != "zarr":
        return None
    array = getattr(source, "array", None)
    chunks = getattr(array, "shards", None) or getattr(array, "chunks", None)
    return int(chunks[0]) if chunks and chunks[0] else None


def _slabs(rows, step):
    return [(start, min(start + step, rows)) for start in range(0, rows, step)]


class ReadAhead:
    """``(start, stop, slab)`` for each of `slabs`, the next slab read on `pool` meanwhile.

    Closing it (also when the loop over it stops early: an error, a signal) cancels the read
    not yet started and leaves one in flight to its daemon thread (:class:`ReadThread`), so a
    read stuck on its source never holds the run's end.
    """

    def __init__(self, read, slabs, pool):
        self.read, self.slabs, self.pool, self.pending = read, list(slabs), pool, None

    def __iter__(self):
        try:
            for index, (start, stop) in enumerate(self.slabs):
                if self.pending is not None:
                    block, self.pending = self.pending.result(), None
                else:
                    block = self.read(start, stop)
                if index + 1 < len(self.slabs):
                    self.pending = self.pool.submit(self.read, *self.slabs[index + 1])
                yield start, stop, block
        finally:
            self.close()

    def close(self):
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.cancel()  # a read in flight ends on its own; its result or error is dropped


class ReadThread:
    """``submit(read, *args)`` -> a :class:`~concurrent.futures.Future` of ``read(*args)``, run
    on a new daemon thread (one a slab: tens of MiB, so starting it costs nothing in
    comparison). Daemon threads do not keep the process alive: after an error or a signal the
    run ends with its one line even while a read blocks on its source (a FIFO without a
    writer, a hung network mount), where a ``ThreadPoolExecutor`` would be joined at exit."""

    def submit(self, read, *args):
        future = Future()

        def run():
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(read(*args))
            except BaseException as error:  # handed to the caller through the future
                future.set_exception(error)

        threading.Thread(target=run, name="gpu-histeq-read", daemon=True).start()
        return future


def stream(source, operation, sink_for, *, axes, mask=None, xp=np, chunk_size=None,
           progress=None, equalize_options=None):
    """Run `operation` over `source` in slabs of its first axis and write through a sink.

    Parameters
    ----------
    source : readers.Source
    operation : callable
        ``operation(slab, mask_slab, axes, start, stop)`` -> result slab: used when the first
        axis is a batch axis (each slab holds whole images) or the input fits in one slab.
    sink_for : callable
        ``sink_for(shape, dtype, rows_per_chunk)`` -> Sink, called once the result dtype is known.
    axes : tuple of int
    mask : callable or None
        ``mask(start, stop)`` -> the mask of those rows, broadcast to their shape (host array).
    xp : module
        numpy or cupy: where the slabs are processed.
    chunk_size : int, optional
    progress : bool or None
        As :class:`Progress`.
    equalize_options : dict or None
        ``{"method", "nbins"}`` when `operation` is equalization: an image split over slabs is
        then equalized in passes (ranges, histograms, remap) instead of being loaded whole.

    Returns
    -------
    Sink
        Finished (complete and closed), not yet moved into place.
    """
    shape = source.shape
    rows = shape[0] if shape else 0
    stored = stored_rows(source)
    step = rows_per_chunk(shape, source.dtype.itemsize, chunk_size, stored)
    out_rows = stored or step  # a zarr output chunked like a zarr input along the first axis
    slabs = _slabs(rows, step)
    split = 0 in axes and len(slabs) > 1
    if split and equalize_options is None:
        slabs = [(0, rows)]  # an operation without a chunked form gets the images whole
        split = False
    # A stored-chunk input is read a slab ahead, on one thread (zarr decompresses the slab's
    # chunks on its own threads); other inputs are read in turn into one reused buffer.
    pool = None
    if stored is not None and len(slabs) > 1:
        pool = ReadThread()

    def read(start, stop):
        # Without a read ahead, each slab is consumed (reduced, or remapped into a new array
        # and written) before the next is read, so one input buffer serves them all.
        return xp.asarray(source.read(start, stop, reuse=pool is None))

    def reads(slabs):
        if pool is None:
            return ((start, stop, read(start, stop)) for start, stop in slabs)
        ahead = ReadAhead(lambda start, stop: source.read(start, stop), slabs, pool)
        return ((start, stop, xp.asarray(block)) for start, stop, block in ahead)

    def mask_slab(start, stop):
        return None if mask is None else xp.asarray(mask(start, stop))

    sink = None
    try:
        if split:
            spec = _chunked.make_spec(source.dtype, equalize_options["nbins"],
                                      equalize_options["method"], mask is not None)
            sink = sink_for(shape, spec.result_dtype, out_rows)
            passes = _chunked.passes(spec)
            bar = Progress(progress, passes * rows, f"{source.path.name} ({passes} passes)")
            try:
                _chunked.equalize_slabs(
                    read, slabs, axes, spec, math.prod(shape[a] for a in axes),
                    lambda start, stop, result: sink.write(start, stop, to_host(result)),
                    mask=None if mask is None else mask_slab, advance=bar.update, reads=reads)
            finally:
                bar.close()
        else:
            bar = Progress(progress, rows, source.path.name)
            try:
                for start, stop, block in reads(slabs):
                    result = to_host(operation(block, mask_slab(start, stop), axes, start, stop))
                    if sink is None:
                        sink = sink_for(shape, result.dtype, out_rows)
                    sink.write(start, stop, result)
                    bar.update(stop - start)
            finally:
                bar.close()
            if sink is None:  # an empty input: the dtype from an empty stand-in
                empty = to_host(operation(xp.empty(shape, source.dtype), None, axes, 0, 0))
                sink = sink_for(shape, empty.dtype, out_rows)
        sink.finish()
    except BaseException:
        if sink is not None:
            sink.close()
        raise
    return sink
