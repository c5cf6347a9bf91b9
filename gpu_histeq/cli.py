"""The ``gpu-histeq`` command: equalize image stacks in files, streaming, on the CPU or a GPU.

``gpu-histeq`` with no arguments equalizes a built-in sample stack and writes a before/after
figure and the equalized ``.npy`` into the current directory (or ``--out-dir``).

Subcommands
-----------
``equalize INPUT``  histogram equalization (``clahe`` and ``match`` appear when the installed
                    gpu_histeq has them)
``demo``            the no-argument run, with a choice of sample
``info``            versions, backends and devices found

Inputs: ``.npy`` (memory-mapped and processed in chunks, so files larger than RAM or GPU memory
work), ``.npz``, TIFF stacks, zarr arrays, folders of PNG/JPEG/TIFF images. The output goes to a
temporary file next to its destination and is renamed only when complete; the input is never
overwritten; an unreadable input gives a one-line error, exit status 1, and no output.

Dataset-wide equalization (image ``--axes`` that include the first axis, along which files are
chunked) makes two passes over the file -- histograms, then remap -- or three for
``--method skimage`` (ranges first); the result equals :func:`gpu_histeq.equalize_hist` on the
whole array, bit for bit.
"""

import argparse
import importlib
import importlib.metadata
import math
import mmap
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from . import __version__, _chunked, _sample
from .equalize import equalize_hist

__all__ = ["main"]

#: Bytes of input per chunk when ``--chunk-size`` is not given.
CHUNK_BYTES = 64 << 20
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
PROG = "gpu-histeq"


class CliError(Exception):
    """An error reported as one line on stderr with exit status 1."""


def _optional(module, purpose):
    """Import an optional dependency or fail naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = {"PIL": "Pillow"}.get(module, module)
        raise CliError(f"{purpose} needs {package}: pip install 'gpu_histeq[cli]'") from None


# ----------------------------------------------------------------------------------- inputs

class Source:
    """An input stack read in slabs along its first axis.

    Attributes
    ----------
    shape : tuple of int
    dtype : numpy.dtype
    paths : list of Path
        The files it reads (to refuse writing over them).
    default_axes : tuple of int
    """

    def __init__(self, array, paths, default_axes=(-2, -1)):
        self.array, self.paths, self.default_axes = array, paths, default_axes
        self.shape, self.dtype = tuple(array.shape), np.dtype(array.dtype)

    def read(self, start, stop):
        """Rows ``start:stop`` of the first axis as a NumPy array."""
        return np.asarray(self.array[start:stop])

    def release(self, start, stop):
        """Unmap rows ``start:stop`` of a memory-mapped input once they are processed.

        The pages stay in the page cache (a later pass reads them again from memory), but leave
        this process's resident set, which so stays at about one chunk whatever the file size.
        """
        mapping = getattr(getattr(self, "array", None), "_mmap", None)
        if mapping is None or not hasattr(mapping, "madvise") or not self.shape:
            return
        row = self.array.strides[0] if self.array.ndim else 0
        skip = self.array.offset % mmap.ALLOCATIONGRANULARITY  # where the data starts in the map
        low, high = skip + start * row, skip + stop * row
        low -= low % mmap.PAGESIZE
        if high > low:
            mapping.madvise(mmap.MADV_DONTNEED, low, high - low)

    def close(self):
        self.array = None


class FolderSource(Source):
    """A folder of same-sized PNG/JPEG/TIFF images, read lazily with Pillow, in name order."""

    def __init__(self, folder, files):
        pil = _optional("PIL.Image", "reading a folder of images")
        self.pil, self.files = pil, files
        first = self._load(files[0])
        self.shape = (len(files),) + first.shape
        self.dtype = first.dtype
        self.paths = [folder] + files
        self.default_axes = (1, 2)  # (N, H, W) or (N, H, W, C): per image, per channel

    def _load(self, path):
        with self.pil.open(path) as image:
            image.load()
            if image.mode == "P":
                image = image.convert("RGB")
            elif image.mode == "I;16B":
                image = image.convert("I;16")
            array = np.asarray(image)
        if array.dtype == np.int32 and array.min() >= 0 and array.max() < 65536:
            array = array.astype(np.uint16)
        return array

    def read(self, start, stop):
        images = [self._load(path) for path in self.files[start:stop]]
        for path, image in zip(self.files[start:stop], images):
            if image.shape != self.shape[1:] or image.dtype != self.dtype:
                raise CliError(f"{path.name} is {image.shape} {image.dtype}, but the folder's "
                               f"first image is {self.shape[1:]} {self.dtype}: all images "
                               "must match")
        return np.stack(images) if images else np.empty((0,) + self.shape[1:], self.dtype)


def _is_zarr(path):
    return path.suffix == ".zarr" or any((path / name).exists()
                                         for name in (".zarray", "zarr.json", ".zgroup"))


def _pick(arrays, key, path):
    """One array of a container (npz, zarr group) by `key`, or the only one."""
    names = sorted(arrays)
    if key is None:
        if len(names) != 1:
            raise CliError(f"{path} holds {len(names)} arrays {names}: choose one with --key")
        key = names[0]
    if key not in names:
        raise CliError(f"{path} has no array {key!r}; it holds {names}")
    return key


def open_source(path, key=None):
    """Open an input for reading in slabs.

    Raises
    ------
    CliError
        For a missing, unsupported, truncated or unreadable input.
    """
    path = Path(path)
    if not path.exists():
        raise CliError(f"{path} does not exist")
    try:
        if path.is_dir() and _is_zarr(path):
            zarr = _optional("zarr", "reading zarr arrays")
            node = zarr.open(str(path), mode="r")
            if not hasattr(node, "shape"):
                arrays = {name: array for name, array in node.arrays()}
                node = arrays[_pick(arrays, key, path)]
            return Source(node, [path])
        if path.is_dir():
            files = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise CliError(f"{path} holds no {'/'.join(IMAGE_SUFFIXES)} images")
            return FolderSource(path, files)
        suffix = path.suffix.lower()
        if suffix == ".npy":
            return Source(np.load(path, mmap_mode="r", allow_pickle=False), [path])
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                name = _pick(archive.files, key, path)
                return Source(archive[name], [path])
        if suffix in (".tif", ".tiff"):
            tifffile = _optional("tifffile", "reading TIFF files")
            try:
                array = tifffile.memmap(path, mode="r")
            except ValueError:  # compressed or not contiguous: decode it
                array = tifffile.imread(path)
            return Source(array, [path])
    except CliError:
        raise
    except Exception as error:
        raise CliError(f"cannot read {path}: {_one_line(error)}") from None
    raise CliError(f"{path}: unsupported input; use .npy, .npz, .tif/.tiff, a .zarr array or a "
                   "folder of PNG/JPEG/TIFF images")


# ---------------------------------------------------------------------------------- outputs

class Sink:
    """An output written into a temporary path and renamed over `final` by :meth:`commit`."""

    def __init__(self, final, shape, dtype):
        self.final, self.shape, self.dtype = Path(final), tuple(shape), np.dtype(dtype)
        self.temp = self.final.with_name(f".{self.final.name}.tmp-{os.getpid()}{self.final.suffix}")

    def write(self, start, stop, block):
        self.target[start:stop] = block

    def finish(self):
        """Flush and close the temporary output."""

    def commit(self):
        self.finish()
        _replace(self.temp, self.final)

    def abort(self):
        self.target = None
        _remove(self.temp)


class NpySink(Sink):
    """A ``.npy`` written front to back with plain writes (slabs arrive in order).

    Plain sequential writes go through the page cache like :func:`numpy.save`; a writable
    memory map would fault in every page and flush it synchronously at the end.
    """

    def __init__(self, final, shape, dtype):
        super().__init__(final, shape, dtype)
        self.file = open(self.temp, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": self.shape}
        np.lib.format.write_array_header_2_0(self.file, header)
        self.rows = 0

    def write(self, start, stop, block):
        if start != self.rows:  # pragma: no cover - the streaming loops write in order
            raise RuntimeError(f"slab {start}:{stop} written out of order (at {self.rows})")
        self.file.write(np.ascontiguousarray(block, dtype=self.dtype).data)
        self.rows = stop

    def finish(self):
        self.file.close()
        if self.rows != (self.shape[0] if self.shape else 0):
            raise RuntimeError(f"wrote {self.rows} of {self.shape[0]} entries")

    def abort(self):
        self.file.close()
        _remove(self.temp)


class NpzSink(Sink):
    def __init__(self, final, shape, dtype, key="images"):
        super().__init__(final, shape, dtype)
        self.key, self.target = key or "images", np.empty(self.shape, self.dtype)

    def finish(self):
        with open(self.temp, "wb") as file:
            np.savez(file, **{self.key: self.target})
        self.target = None


class TiffSink(Sink):
    def __init__(self, final, shape, dtype):
        super().__init__(final, shape, dtype)
        tifffile = _optional("tifffile", "writing TIFF files")
        self.target = tifffile.memmap(self.temp, shape=self.shape, dtype=self.dtype)

    def finish(self):
        self.target.flush()
        self.target = None


class ZarrSink(Sink):
    def __init__(self, final, shape, dtype, rows):
        super().__init__(final, shape, dtype)
        zarr = _optional("zarr", "writing zarr arrays")
        chunks = (max(1, min(rows, shape[0] or 1)),) + tuple(shape[1:])
        self.target = zarr.open_array(str(self.temp), mode="w", shape=self.shape,
                                      dtype=self.dtype, chunks=chunks)


class FolderSink(Sink):
    """One image file per entry of the first axis, named as the input files (PNG for JPEG)."""

    def __init__(self, final, shape, dtype, names):
        super().__init__(final, shape, dtype)
        self.pil = _optional("PIL.Image", "writing a folder of images")
        if self.dtype not in (np.uint8, np.uint16):
            raise CliError(f"a folder of images holds uint8/uint16, but this method gives "
                           f"{self.dtype}: write a .npy/.npz/.tif/.zarr with -o")
        self.temp.mkdir()
        self.names = [Path(name).stem + (".png" if Path(name).suffix.lower() in (".jpg", ".jpeg")
                                         else Path(name).suffix) for name in names]

    def write(self, start, stop, block):
        for name, image in zip(self.names[start:stop], block):
            self.pil.fromarray(np.ascontiguousarray(image)).save(self.temp / name)


def _remove(path):
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _replace(temp, final):
    """Rename `temp` over `final` (directories too: the old one is removed after the rename)."""
    temp, final = Path(temp), Path(final)
    if final.is_dir() and not final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(temp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(temp, final)


def open_sink(path, shape, dtype, source, rows, key=None):
    """The writer for `path`, chosen by its suffix (a folder when the input is a folder)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return NpySink(path, shape, dtype)
    if suffix == ".npz":
        return NpzSink(path, shape, dtype, key)
    if suffix in (".tif", ".tiff"):
        return TiffSink(path, shape, dtype)
    if suffix == ".zarr":
        return ZarrSink(path, shape, dtype, rows)
    if isinstance(source, FolderSource) and suffix == "":
        return FolderSink(path, shape, dtype, [p.name for p in source.files])
    raise CliError(f"{path}: unsupported output; use .npy, .npz, .tif/.tiff or .zarr"
                   + (" (or a folder name)" if isinstance(source, FolderSource) else ""))


def default_output(source_path, out_dir, operation):
    """``<stem>_<operation>.npy`` next to the input (or in `out_dir`); a folder for folders."""
    source_path = Path(source_path)
    folder = Path(out_dir) if out_dir else source_path.parent
    if source_path.is_dir() and not _is_zarr(source_path):
        return folder / f"{source_path.name}_{operation}"
    stem = source_path.name[: -len(source_path.suffix)] if source_path.suffix else source_path.name
    return folder / f"{stem}_{operation}.npy"


def _same_file(a, b):
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


# ---------------------------------------------------------------------------------- devices

def _cupy_or_reason():
    try:
        import cupy
    except Exception as error:
        return None, f"CuPy is not importable ({type(error).__name__}: {_one_line(error)})"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None, "CuPy sees no CUDA device"
    except Exception as error:
        return None, f"CuPy cannot use a GPU ({type(error).__name__}: {_one_line(error)})"
    return cupy, None


def pick_device(choice):
    """The array module for ``--device``: numpy, or cupy for ``gpu`` (and ``auto`` with a GPU)."""
    if choice == "cpu":
        return np
    cupy, reason = _cupy_or_reason()
    if cupy is not None:
        return cupy
    if choice == "gpu":
        raise CliError(f"--device gpu needs CuPy and a CUDA GPU: {reason}; install "
                       "'gpu_histeq[cuda12]' (or [cuda13]) on a machine with a GPU, or use "
                       "--device cpu")
    return np


def _to_host(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)


# --------------------------------------------------------------------------------- progress

class _Progress:
    """A tqdm bar on stderr, or nothing."""

    def __init__(self, enabled, total, desc):
        self.bar = None
        if enabled is False or total == 0:
            return
        if enabled is None and not sys.stderr.isatty():
            return
        try:
            from tqdm import tqdm
        except ImportError:
            if enabled:
                raise CliError("--progress needs tqdm: pip install 'gpu_histeq[cli]'") from None
            return
        self.bar = tqdm(total=total, desc=desc, unit="img", file=sys.stderr, dynamic_ncols=True,
                        delay=0 if enabled else 0.5, leave=False)

    def update(self, count):
        if self.bar is not None:
            self.bar.update(count)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------- processing

def channel_axis_for(args, source):
    """The RGB axis for ``--luminance``: ``--channel-axis``, C in ``--layout``, or a last axis
    of length 3 that is not an image axis."""
    ndim = len(source.shape)
    if args.channel_axis is not None:
        if not -ndim <= args.channel_axis < ndim:
            raise CliError(f"--channel-axis {args.channel_axis} is out of range for the input's "
                           f"{ndim} axes (shape {source.shape})")
        return args.channel_axis % ndim
    if args.layout is not None and "C" in args.layout.upper():
        return args.layout.upper().index("C")
    axes = parse_axes(args.axes, args.layout, source)
    if ndim >= 3 and source.shape[-1] == 3 and ndim - 1 not in axes:
        return ndim - 1
    raise CliError(f"--luminance needs the RGB axis of the input (shape {source.shape}): give "
                   "--channel-axis or a --layout with C, e.g. NHWC")


def parse_axes(text, layout, source):
    """Image axes from ``--axes`` (``-2,-1`` or ``all``) or ``--layout`` (e.g. ``NHWC``)."""
    ndim = len(source.shape)
    if text is not None and layout is not None:
        raise CliError("give --axes or --layout, not both")
    if layout is not None:
        layout = layout.upper()
        if len(layout) != ndim or len(set(layout)) != ndim:
            example = "NCHW"[-ndim:] if ndim <= 4 else "NCDHW"
            raise CliError(f"--layout {layout!r} must name each of the {ndim} axes of the input "
                           f"(shape {source.shape}) once, e.g. {example}")
        axes = tuple(i for i, letter in enumerate(layout) if letter in "HWDZ")
        if not axes:
            raise CliError(f"--layout {layout!r} has no image axis (H, W, D or Z)")
        return axes
    if text is None:
        axes = source.default_axes
    elif text.strip().lower() == "all":
        axes = tuple(range(ndim))
    else:
        try:
            axes = tuple(int(part) for part in text.split(","))
        except ValueError:
            raise CliError(
                f"--axes must be comma-separated integers or 'all', got {text!r}") from None
    if any(not -ndim <= a < ndim for a in axes):
        raise CliError(f"--axes {text!r} is out of range for the input's {ndim} dimensions "
                       f"(shape {source.shape})")
    normalized = tuple(sorted({a % ndim for a in axes}))
    if len(normalized) != len(axes):
        raise CliError(f"--axes {text!r} repeats an axis")
    return normalized


def load_mask(path, shape):
    """A boolean mask (``.npy``, memory-mapped) broadcast to the input's shape."""
    if path is None:
        return None
    try:
        mask = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as error:
        raise CliError(f"cannot read mask {path}: {_one_line(error)}") from None
    if mask.dtype != np.bool_:
        raise CliError(f"the mask {path} must be a boolean array, got {mask.dtype}")
    try:
        return np.broadcast_to(mask, shape)
    except ValueError:
        raise CliError(f"the mask {path} of shape {mask.shape} does not broadcast to the input's "
                       f"shape {shape}") from None


def _rows_per_chunk(shape, itemsize, chunk_size):
    if chunk_size is not None:
        if chunk_size < 1:
            raise CliError(f"--chunk-size must be a positive number of images, got {chunk_size}")
        return chunk_size
    row_bytes = max(1, math.prod(shape[1:]) * itemsize)
    return max(1, CHUNK_BYTES // row_bytes)


def _slabs(rows, step):
    return [(start, min(start + step, rows)) for start in range(0, rows, step)]


def stream(source, operation, sink_for, *, axes, mask=None, xp=np, chunk_size=None,
           progress=None, equalize_options=None):
    """Run `operation` over `source` in slabs of its first axis and write through a sink.

    Parameters
    ----------
    source : Source
    operation : callable
        ``operation(slab, mask_slab, axes, start, stop)`` -> result slab: used when the first
        axis is a batch axis (each slab holds whole images) or the input fits in one slab.
    sink_for : callable
        ``sink_for(shape, dtype, rows_per_chunk)`` -> Sink, called once the result dtype is known.
    axes : tuple of int
    mask : ndarray or None
        Broadcast to the input's shape.
    xp : module
        numpy or cupy: where the slabs are processed.
    equalize_options : dict or None
        ``{"method", "nbins"}`` when `operation` is equalization: an image split over slabs is
        then equalized in passes (ranges, histograms, remap) instead of being loaded whole.

    Returns
    -------
    Path
        The committed output.
    """
    shape = source.shape
    rows = shape[0] if shape else 0
    step = _rows_per_chunk(shape, source.dtype.itemsize, chunk_size)
    slabs = _slabs(rows, step)
    split = 0 in axes and len(slabs) > 1
    if split and equalize_options is None:
        slabs = [(0, rows)]  # an operation without a chunked form gets the images whole
        split = False

    def device(block):
        return None if block is None else xp.asarray(block)

    def mask_slab(start, stop):
        return None if mask is None else device(np.ascontiguousarray(mask[start:stop]))

    sink = None
    try:
        if split:
            sink = _two_pass(source, slabs, axes, mask_slab, mask is not None, device, xp,
                             sink_for, step, progress, **equalize_options)
        else:
            bar = _Progress(progress, rows, "images")
            try:
                for start, stop in slabs:
                    result = _to_host(operation(device(source.read(start, stop)),
                                                mask_slab(start, stop), axes, start, stop))
                    if sink is None:
                        sink = sink_for(shape, result.dtype, step)
                    sink.write(start, stop, result)
                    source.release(start, stop)
                    bar.update(stop - start)
            finally:
                bar.close()
            if sink is None:  # an empty input: the dtype from an empty stand-in
                empty = _to_host(operation(xp.empty(shape, source.dtype), None, axes, 0, 0))
                sink = sink_for(shape, empty.dtype, step)
        sink.commit()
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    return sink.final


def _two_pass(source, slabs, axes, mask_slab, masked, device, xp, sink_for, step, progress,
              method=None, nbins=256):
    """Dataset-wide equalization of a file chunked along an image axis: returns the sink."""
    shape = source.shape
    spec = _chunked.make_spec(source.dtype, nbins, method, masked)
    passes = 3 if spec.needs_stats else 2
    bar = _Progress(progress, passes * shape[0], f"equalize ({passes} passes)")
    low = high = None
    try:
        if spec.needs_stats:
            for start, stop in slabs:
                part_low, part_high = _chunked.chunk_stats(
                    device(source.read(start, stop)), mask_slab(start, stop), axes)
                source.release(start, stop)
                low = part_low if low is None else xp.minimum(low, part_low)
                high = part_high if high is None else xp.maximum(high, part_high)
                bar.update(stop - start)
        width = _chunked.level_width(spec, low, high)
        counts = None
        for start, stop in slabs:
            part = _chunked.chunk_counts(device(source.read(start, stop)), mask_slab(start, stop),
                                         axes, spec, width, low, high)
            source.release(start, stop)
            counts = part if counts is None else counts + part
            bar.update(stop - start)
        npixels = math.prod(shape[a] for a in axes)
        _chunked.check_counts(xp, counts, npixels)
        table = _chunked.tables(xp, spec, width, counts, low, high)
        sink = sink_for(shape, spec.result_dtype, step)
        try:
            for start, stop in slabs:
                result = _chunked.chunk_equalize(device(source.read(start, stop)), axes, spec,
                                                 width, counts, low, high, table=table)
                sink.write(start, stop, _to_host(result))
                source.release(start, stop)
                bar.update(stop - start)
        except BaseException:
            sink.abort()
            raise
    finally:
        bar.close()
    return sink


# --------------------------------------------------------------------------------- commands

def _operations():
    """Operations available in this installation: equalize always, clahe/match when present."""
    import gpu_histeq

    found = {"equalize": equalize_hist}
    for name, attribute in (("clahe", "clahe"), ("match", "match_histograms")):
        function = getattr(gpu_histeq, attribute, None)
        if callable(function):
            found[name] = function
    return found


def _run_file_command(args, operations):
    source = open_source(args.input, args.key)
    try:
        axes = parse_axes(args.axes, args.layout, source)
        output = Path(args.output) if args.output else default_output(
            args.input, args.out_dir, args.command)
        for path in source.paths:
            if _same_file(path, output):
                raise CliError(f"refusing to overwrite the input {path}: choose another -o")
        if not output.parent.is_dir():
            raise CliError(f"the output folder {output.parent} does not exist")
        mask = load_mask(getattr(args, "mask", None), source.shape)
        xp = pick_device(args.device)
        operation, options = _operation_for(args, operations, xp, source)

        def sink_for(shape, dtype, rows):
            return open_sink(output, shape, dtype, source, rows, args.key)

        written = stream(source, operation, sink_for, axes=axes, mask=mask, xp=xp,
                         chunk_size=args.chunk_size, progress=args.progress,
                         equalize_options=options)
    finally:
        source.close()
    print(f"{args.command}: {Path(args.input)} {source.shape} {source.dtype} -> {written}")
    return 0


def _operation_for(args, operations, xp, source):
    """``(operation(slab, mask, axes, start, stop), equalize_options or None)``."""
    if args.command == "equalize":
        color = {}
        if args.luminance:  # no chunked form across images: a dataset-wide table loads them whole
            color = {"channel_axis": channel_axis_for(args, source), "luminance": True}
        elif args.channel_axis is not None:
            raise CliError("--channel-axis goes with --luminance")

        def operation(slab, mask, axes, start, stop):
            return equalize_hist(slab, args.nbins, axes=axes, mask=mask, method=args.method,
                                 **color)
        return operation, None if color else {"method": args.method, "nbins": args.nbins}
    if args.command == "clahe":
        clahe = operations["clahe"]
        grid = tuple(int(n) for n in args.tile_grid.split(","))

        def operation(slab, mask, axes, start, stop):
            return clahe(slab, args.clip_limit, grid, axes=axes)
        return operation, None
    match = operations["match"]
    reference = open_source(args.reference, None)
    whole = xp.asarray(reference.read(0, reference.shape[0]))
    per_image = whole.shape == source.shape

    def operation(slab, mask, axes, start, stop):
        return match(slab, whole[start:stop] if per_image else whole, axes=axes)
    return operation, None


def _atomic_npy(path, array):
    path = Path(path)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npy")
    try:
        np.save(temp, array)
        os.replace(temp, path)
    except BaseException:
        _remove(temp)
        raise


def demo_results(images):
    """Title -> host result of each operation installed, on one sample stack (NumPy or CuPy).

    The first entry is :func:`gpu_histeq.equalize_hist` with its defaults.
    """
    results = {"equalize_hist (method='opencv', bit-exact with cv2.equalizeHist)":
               _to_host(equalize_hist(images))}
    operations = _operations()
    if "clahe" in operations:
        results["clahe (clip_limit=40, tile_grid=(8, 8), as cv2.createCLAHE)"] = _to_host(
            operations["clahe"](images))
    if "match" in operations:
        results["match_histograms (each image to the last one)"] = _to_host(
            operations["match"](images, images[-1]))
    return results


def run_demo(args):
    """Equalize a sample stack; write ``before_after.png`` and ``<sample>_equalized.npy``."""
    from .figure import before_after

    out_dir = Path(args.out_dir or ".")
    if not out_dir.is_dir():
        raise CliError(f"the output folder {out_dir} does not exist")
    images = _sample.load(args.sample)
    xp = pick_device(args.device)
    results = demo_results(xp.asarray(images))
    equalized = next(iter(results.values()))
    array_path = out_dir / f"{args.sample}_equalized.npy"
    figure_path = out_dir / "before_after.png"
    _atomic_npy(array_path, equalized)
    temp = out_dir / f".before_after.png.tmp-{os.getpid()}"
    try:
        before_after(temp, images, results)
        os.replace(temp, figure_path)
    except BaseException:
        _remove(temp)
        raise
    device = "GPU (CuPy)" if xp is not np else "CPU (NumPy)"
    print(f"sample {args.sample!r}: {images.shape} {images.dtype}, equalized on the {device}")
    print(f"wrote {array_path}")
    print(f"wrote {figure_path}")
    return 0


def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def run_info(args):
    """Print the versions, the backends and the devices that gpu_histeq can use."""
    from . import _cpu, _planes

    lines = [f"gpu_histeq {__version__}", f"python {sys.version.split()[0]}",
             f"numpy {np.__version__}: CPU backend, {_planes.thread_count()} threads, compiled "
             f"fast path {'available' if _cpu.available() else 'not built (bincount path)'}"]
    cupy, reason = _cupy_or_reason()
    if cupy is None:
        lines.append(f"cupy: unavailable ({reason})")
    else:
        lines.append(f"cupy {cupy.__version__}: GPU backend")
        for index in range(cupy.cuda.runtime.getDeviceCount()):
            props = cupy.cuda.runtime.getDeviceProperties(index)
            name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            lines.append(f"  gpu {index}: {name}, {props['totalGlobalMem'] / 2**30:.1f} GiB, "
                         f"compute capability {props['major']}.{props['minor']}")
    for label, distribution in (("dask", "dask"), ("distributed", "distributed"),
                                ("dask-cuda", "dask-cuda"), ("torch", "torch"), ("jax", "jax"),
                                ("tqdm", "tqdm"), ("tifffile", "tifffile"), ("zarr", "zarr"),
                                ("Pillow", "pillow")):
        version = _version(distribution)
        lines.append(f"{label} {version}" if version else f"{label}: not installed")
    operations = ", ".join(_operations())
    lines.append(f"operations: {operations}")
    print("\n".join(lines))
    return 0


# ------------------------------------------------------------------------------------ parser

def _add_file_options(parser, operation):
    parser.add_argument("input", help=".npy, .npz, .tif/.tiff, a .zarr array, or a folder of "
                                      "PNG/JPEG/TIFF images")
    parser.add_argument("-o", "--output", help="output file: .npy (default), .npz, .tif, .zarr, "
                        "or a folder for a folder input; default <input>_" + operation + ".npy")
    parser.add_argument("--out-dir", help="folder for the default output name")
    parser.add_argument("--key", help="the array inside an .npz or a zarr group")
    parser.add_argument("--axes", help="image axes, comma-separated (write --axes=-2,-1), or "
                        "'all' for one table over the whole dataset; default -2,-1 (1,2 for "
                        "a folder: per image and channel)")
    parser.add_argument("--layout", help="axis letters instead of --axes, e.g. NCHW or NHWC: "
                        "H, W (and D, Z) are the image axes")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="where to compute: gpu needs CuPy and a CUDA GPU; auto uses one "
                             "when present (default)")
    parser.add_argument("--chunk-size", type=int, metavar="N",
                        help="entries of the first axis per chunk (default: about 64 MiB)")
    bar = parser.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="progress bar on stderr (default: when stderr is a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false")


def build_parser(operations=None):
    """The argument parser, with the subcommands of the operations installed."""
    operations = operations or _operations()
    parser = argparse.ArgumentParser(
        prog=PROG, description="Batched histogram equalization of image stacks in files. "
        "Without a command: equalize a built-in sample and write a before/after figure.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--out-dir", help="where the no-command demo writes (default: .)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    equalize = commands.add_parser("equalize", help="histogram equalization of every image")
    _add_file_options(equalize, "equalize")
    equalize.add_argument("--method", choices=("opencv", "pil", "skimage"),
                          help="whose numbers: opencv (uint8/uint16, default for them), pil "
                               "(uint8), skimage (any dtype, float output)")
    equalize.add_argument("--nbins", type=int, default=256, help="bins for float input (skimage)")
    equalize.add_argument("--mask", help="boolean .npy broadcastable to the input: histograms "
                                         "count the selected pixels")
    equalize.add_argument("--luminance", action="store_true",
                          help="equalize the luma of RGB images and keep their colours (OpenCV's "
                               "YCrCb); the channel axis is C in --layout, --channel-axis, or a "
                               "last axis of length 3")
    equalize.add_argument("--channel-axis", type=int, metavar="AXIS",
                          help="the RGB axis for --luminance")
    if "clahe" in operations:
        clahe = commands.add_parser("clahe", help="contrast limited adaptive equalization "
                                                  "(OpenCV's CLAHE)")
        _add_file_options(clahe, "clahe")
        clahe.add_argument("--clip-limit", type=float, default=40.0)
        clahe.add_argument("--tile-grid", default="8,8", help="tiles across,down (default 8,8)")
    if "match" in operations:
        match = commands.add_parser("match", help="match each image's histogram to a reference")
        _add_file_options(match, "match")
        match.add_argument("--reference", required=True,
                           help="one reference image, or a stack shaped like the input")

    demo = commands.add_parser("demo", help="equalize a built-in sample; write a figure")
    demo.add_argument("--sample", default="synthetic", choices=_sample.SAMPLES,
                      help="synthetic (default, NumPy only) or a scikit-image image")
    demo.add_argument("--out-dir", help="output folder (default: .)")
    demo.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    commands.add_parser("info", help="versions, backends and devices found")
    return parser


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__


def main(argv=None):
    """Run ``gpu-histeq``; return the exit status (0 success, 1 error, 2 usage)."""
    operations = _operations()
    parser = build_parser(operations)
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            args.sample, args.device = "synthetic", "auto"
            return run_demo(args)
        if args.command == "demo":
            return run_demo(args)
        if args.command == "info":
            return run_info(args)
        return _run_file_command(args, operations)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get("GPU_HISTEQ_TRACEBACK"):
            raise
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
