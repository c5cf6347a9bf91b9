"""Outputs of the ``gpu-histeq`` command: written under a temporary name, moved into place whole.

A *target* owns where an output goes and how it is moved into place; a *sink* writes the array
into the path the target gives it. Nothing of the user's is replaced without ``--force``:

* a file output is created exclusively (``os.link`` of the finished temporary file, which fails
  if the name exists), so of several runs writing one output one wins and the others fail;
  with ``--force`` it is renamed over the old file (``os.replace``, atomic);
* a folder output that does not exist or is empty is written as a temporary folder and renamed
  into place (a rename fails over a non-empty folder: again one run wins); with ``--force`` a
  non-empty folder receives only the files the run writes, each renamed over its old one;
* a zarr output is written as a folder and renamed into place; with ``--force`` over an
  existing zarr array, only the array's own entries (metadata, chunks) are replaced, and
  every other file of that folder is kept.

Writes never go through a memory map, so a full disk is an ``OSError`` (a clean error), never
a SIGBUS.
"""

import ctypes
import errno
import os
import zipfile
from pathlib import Path

import numpy as np

from . import _cleanup
from ._cleanup import CliError, optional
from ._images import one_image, pil_format, write_picture
from ._tiff import create_tiff
from ._zarr import create_zarr
from ._zarr_force import replace_zarr_array
from .readers import PILLOW_SUFFIXES

__all__ = ["FileTarget", "FolderTarget", "open_sink", "refuse_inputs"]

ZARR_MARKERS = (".zarray", "zarr.json", ".zgroup")


def _exists(path):
    return os.path.lexists(path)


def _nonempty_dir(path):
    if not os.path.isdir(path):
        return False
    with os.scandir(path) as entries:
        return any(True for _ in entries)


def _same(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_inputs(output, inputs):
    """Raise if writing `output` could touch one of `inputs` (any spelling, link or hard link).

    An output folder that is, or holds, an input is refused too.
    """
    real_output = os.path.realpath(output)
    for path in inputs:
        if _exists(output) and _same(path, output):
            raise CliError(f"refusing to overwrite the input {path}: choose another output")
        real = os.path.realpath(path)
        if real.startswith(real_output.rstrip(os.sep) + os.sep):
            raise CliError(f"refusing to write the folder {output}: it holds the input {path}")
        if os.path.isdir(path) and real_output.startswith(real.rstrip(os.sep) + os.sep):
            raise CliError(f"refusing to write {output} inside the input folder {path}: choose "
                           "an output outside it")


def _renameat2_exchange():
    """``renameat2(..., RENAME_EXCHANGE)`` from the C library, or None."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _exchange(a, b):
    """Swap two paths atomically; False where the system cannot."""
    function = _renameat2_exchange()
    if function is None:
        return False
    at_cwd, rename_exchange = -100, 2
    if function(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), rename_exchange) == 0:
        return True
    if ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(b))


def move_into_place(temp, final, force, directory=False):
    """Move the finished `temp` to `final`: exclusively, or replacing it with `force`."""
    temp, final = os.fspath(temp), os.fspath(final)
    taken = CliError(f"{final} exists (written meanwhile by another run?): nothing was "
                     "replaced; use --force to replace it")
    if directory:
        try:
            os.rename(temp, final)  # over nothing or an empty folder
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR,
                                   errno.EISDIR):
                raise
            if not force:
                raise taken from None
            if not _exchange(temp, final):  # old systems: move the old one aside first
                aside = _cleanup.create_temp(final, directory=True)
                os.rename(final, aside)
                os.rename(temp, final)
                temp = aside
            _cleanup.remove(temp)  # now the old output
        _cleanup.forget(temp)
        return
    if force:
        os.replace(temp, final)
        _cleanup.forget(temp)
        return
    try:
        os.link(temp, final)
    except FileExistsError:
        raise taken from None
    except OSError as error:  # a file system without hard links: check, then rename
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK,
                               errno.ENOSYS):
            raise
        if _exists(final):
            raise taken from None
        os.rename(temp, final)
        _cleanup.forget(temp)
        return
    _cleanup.remove(temp)


class FileTarget:
    """One output file, or a zarr folder replaced whole.

    Parameters
    ----------
    final : Path
    force : bool
    directory : bool
        True for a zarr output.
    """

    def __init__(self, final, force, directory=False):
        self.final, self.force, self.directory = Path(final), force, directory
        self.temp = None

    def check(self, inputs):
        """Refuse before any work: an input, a missing folder, an existing output."""
        final = self.final
        refuse_inputs(final, inputs)
        parent = final.parent
        if not parent.is_dir():
            raise CliError(f"the output folder {parent} does not exist")
        if self.directory:
            if _exists(final) and not final.is_dir():
                raise CliError(f"{final} exists and is not a folder: choose another output")
            if _nonempty_dir(final):
                if not any((final / name).exists() for name in ZARR_MARKERS):
                    raise CliError(f"{final} is a folder that is not a zarr array: refusing "
                                   "to replace it")
                if not self.force:
                    raise CliError(f"{final} exists: use --force to replace it")
        elif _exists(final):
            if os.path.isdir(final):
                raise CliError(f"{final} is a folder: choose a file name for the output")
            if not self.force:
                raise CliError(f"{final} exists: use --force to replace it")

    def path(self, name=None):
        """Create the temporary file (or folder) and return its path."""
        self.temp = Path(_cleanup.create_temp(self.final, self.directory))
        return self.temp

    def commit(self):
        if self.temp is not None:
            if self.directory and self.force and _nonempty_dir(self.final):
                replace_zarr_array(self.temp, self.final)
            else:
                move_into_place(self.temp, self.final, self.force, self.directory)
            self.temp = None

    def abort(self):
        if self.temp is not None:
            _cleanup.remove(self.temp)
            self.temp = None


class FolderTarget:
    """An output folder receiving named entries (image files, or one file per input).

    A missing or empty folder is built as a temporary folder and renamed into place; a
    non-empty one (only with ``--force``) receives each entry under a temporary name that is
    renamed over the old entry on commit. Files the run does not write are never touched.
    """

    def __init__(self, final, force):
        self.final, self.force = Path(final), force
        self.temp, self.entries, self.in_place = None, [], False

    def check(self, inputs):
        final = self.final
        refuse_inputs(final, inputs)
        self.inputs = list(inputs)
        if not final.parent.is_dir():
            raise CliError(f"the output folder {final.parent} does not exist")
        if _exists(final) and not final.is_dir():
            raise CliError(f"{final} exists and is not a folder: choose another output")
        if _nonempty_dir(final) and not self.force:
            raise CliError(f"the output folder {final} is not empty: use --force to write "
                           "into it (only the files this run writes are replaced)")
        # Decided now: without --force the folder is always built aside and renamed into place,
        # which fails if another run filled it meanwhile.
        self.in_place = self.force and _nonempty_dir(final)

    def path(self, name):
        """Where entry `name` is written (a file, created empty)."""
        if self.temp is None and not self.entries and not self.in_place:
            self.temp = Path(_cleanup.create_temp(self.final, directory=True))
        if self.temp is not None:
            path = self.temp / name
            path.touch(exist_ok=False)
            return path
        final = self.final / name
        for source in self.inputs:
            if _exists(final) and _same(source, final):
                raise CliError(f"refusing to overwrite the input {source} (it is {final})")
        if final.is_dir() and not final.is_symlink():
            raise CliError(f"{final} is a folder: refusing to replace it")
        temp = Path(_cleanup.create_temp(final))
        self.entries.append((temp, final))
        return temp

    def commit(self):
        if self.temp is not None:
            try:
                move_into_place(self.temp, self.final, force=False, directory=True)
            except CliError:
                if not self.force:
                    raise
                # --force, and another run filled the folder meanwhile: move the entries in
                self.entries = [(self.temp / name, self.final / name)
                                for name in sorted(os.listdir(self.temp))]
                for temp, final in self.entries:
                    move_into_place(temp, final, force=True)
                self.entries = []
                _cleanup.remove(self.temp)
            self.temp = None
        for temp, final in self.entries:
            move_into_place(temp, final, force=True)
        self.entries = []

    def abort(self):
        if self.temp is not None:
            _cleanup.remove(self.temp)
            self.temp = None
        for temp, _ in self.entries:
            _cleanup.remove(temp)
        self.entries = []


# ----------------------------------------------------------------------------------- sinks

def _pwrite_all(fd, data, offset):
    view = memoryview(data).cast("B")
    while len(view):
        count = os.pwrite(fd, view, offset)
        view, offset = view[count:], offset + count


class Sink:
    """Writes slabs of the result (in order along the first axis) to one path."""

    def __init__(self, path, shape, dtype):
        self.path, self.shape, self.dtype = Path(path), tuple(shape), np.dtype(dtype)

    def write(self, start, stop, block):
        raise NotImplementedError

    def finish(self):
        """Flush and close: the output is complete."""
        self.close()

    def close(self):
        """Release files (after an error too)."""


class NpySink(Sink):
    """A ``.npy`` written front to back with plain writes, like :func:`numpy.save`."""

    def __init__(self, path, shape, dtype):
        super().__init__(path, shape, dtype)
        self.file = open(self.path, "wb")
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
        self.close()
        if self.rows != (self.shape[0] if self.shape else 0):
            raise RuntimeError(f"wrote {self.rows} of {self.shape[0]} entries")

    def close(self):
        self.file.close()


class NpzSink(Sink):
    """An ``.npz`` of one array, its member written as the slabs arrive: memory holds one slab.

    The file is what :func:`numpy.savez` (or, with `compressed`, :func:`numpy.savez_compressed`)
    writes for ``{key: result}``: one member ``KEY.npy`` (zip64, stored or deflated) holding the
    ``.npy`` header numpy would choose (version 1.0, 2.0 when it does not fit) and the values
    in C order, in the result's dtype and byte order.

    Parameters
    ----------
    path : Path
    shape : tuple of int
    dtype : numpy.dtype
    key : str, optional
        The member's name without ``.npy`` (the input's, for an ``.npz`` or zarr group input);
        ``"images"`` when None.
    compressed : bool
        Deflate the member (an ``.npz`` input whose member was deflated).
    """

    def __init__(self, path, shape, dtype, key=None, compressed=False):
        super().__init__(path, shape, dtype)
        self.key, self.rows, self.member, self.zip = key or "images", 0, None, None
        self.file = open(self.path, "wb")
        try:
            self.zip = zipfile.ZipFile(self.file, "w", zipfile.ZIP_DEFLATED if compressed
                                       else zipfile.ZIP_STORED, allowZip64=True)
            self.member = self.zip.open(self.key + ".npy", "w", force_zip64=True)
            header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                      "shape": self.shape}
            try:  # numpy's choice: the oldest version the header fits in
                np.lib.format.write_array_header_1_0(self.member, header)
            except ValueError:
                np.lib.format.write_array_header_2_0(self.member, header)
        except BaseException:
            self.close()
            raise

    def write(self, start, stop, block):
        if start != self.rows:  # pragma: no cover - the streaming loops write in order
            raise RuntimeError(f"slab {start}:{stop} written out of order (at {self.rows})")
        self.member.write(np.ascontiguousarray(block, dtype=self.dtype).data)
        self.rows = stop

    def finish(self):
        if self.rows != (self.shape[0] if self.shape else 0):
            self.close()
            raise RuntimeError(f"wrote {self.rows} of {self.shape[0]} entries")
        try:  # the member's sizes and CRC, then the central directory
            self.member.close()
            self.zip.close()
        finally:
            self.close()

    def close(self):
        """Close the file, also after an error or a signal in the middle of a write (the
        unfinished file is removed by its target)."""
        for part in (self.member, self.zip):
            try:
                if part is not None:
                    part.close()
            except Exception:  # the output is discarded; its file is closed below
                pass
        self.member = self.zip = None
        self.file.close()


class TiffSink(Sink):
    """An uncompressed contiguous TIFF: tifffile writes the structure, slabs go in by pwrite.

    `layout` (a reader's) gives the photometric interpretation, samples, resolution,
    orientation, ImageJ/OME metadata; without one the stack is written as grey pages
    (MinIsBlack, never guessed as RGB) with its shape in the description."""

    def __init__(self, path, shape, dtype, layout=None):
        super().__init__(path, shape, dtype)
        self.notes = []
        create_tiff(self.path, None, self.shape, self.dtype, layout, self.notes)
        tifffile = optional("tifffile", "writing TIFF files")
        with tifffile.TiffFile(self.path) as tiff:
            self.offset = tiff.series[0].dataoffset
            self.dtype = self.dtype.newbyteorder(tiff.byteorder)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self.fd = os.open(self.path, os.O_WRONLY)

    def write(self, start, stop, block):
        data = np.ascontiguousarray(block, dtype=self.dtype)
        _pwrite_all(self.fd, data, self.offset + start * self.row_bytes)

    def finish(self):
        self.close()

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class ZarrSink(Sink):
    def __init__(self, path, shape, dtype, rows, layout=None):
        super().__init__(path, shape, dtype)
        self.notes = []
        self.target = create_zarr(self.path, self.shape, self.dtype, rows, layout, self.notes)

    def write(self, start, stop, block):
        # zarr writes its chunks on a background thread: a signal waits for the slab to be
        # written, so no chunk file appears in the temporary folder after it is removed.
        with _cleanup.signals_deferred():
            self.target[start:stop] = block


def _check_image_dtype(dtype, what):
    if dtype not in (np.uint8, np.uint16):
        raise CliError(f"{what} holds uint8/uint16, but this method gives {dtype}: write a "
                       ".npy/.npz/.tif/.zarr instead")


class ImagesSink(Sink):
    """One image file per entry of the first axis, at the paths `target.path(name)` gives,
    each written like its input (`layouts`, one per entry, or None)."""

    def __init__(self, target, shape, dtype, names, layouts=None):
        super().__init__(target.final, shape, dtype)
        if any(pil_format(name) != "TIFF" for name in names):  # a TIFF holds any dtype
            _check_image_dtype(self.dtype, "a folder of PNG/JPEG images")
        self.target, self.names, self.notes = target, names, []
        self.layouts = layouts if layouts is not None else [None] * len(names)

    def write(self, start, stop, block):
        for name, image, layout in zip(self.names[start:stop], block, self.layouts[start:stop]):
            write_picture(self.target.path(name), name, image, layout, self.notes)


class ImageSink(Sink):
    """One image file (PNG, JPEG or TIFF) from a result of one image, written like its input."""

    def __init__(self, path, shape, dtype, final, layout=None):
        super().__init__(path, shape, dtype)
        _check_image_dtype(self.dtype, f"{Path(final).suffix} output")
        self.name, self.layout, self.notes = Path(final).name, layout, []
        self.stacked = _stacked(self.shape, layout)
        self.full = np.empty(self.shape, self.dtype)

    def write(self, start, stop, block):
        self.full[start:stop] = block

    def finish(self):
        write_picture(self.path, self.name, self.full[0] if self.stacked else self.full,
                      self.layout, self.notes)
        self.full = None


def _stacked(shape, layout):
    """Whether a result of `shape` is a stack of one image (first axis 1), not the input's own
    layout (a TIFF's series: pages, planar samples)."""
    return not layout or len(shape) != layout.get("ndim", -1)


class Rounded(Sink):
    """Writes float results through `sink` rounded to its integer dtype (half to even), clipped.

    For ``match`` into image files: the result is in the reference's units, so an 8/16-bit
    reference gives an 8/16-bit image.
    """

    def __init__(self, sink):
        self.sink, self.path, self.shape, self.dtype = sink, sink.path, sink.shape, sink.dtype
        self.limits = np.iinfo(sink.dtype)
        self.notes = getattr(sink, "notes", [])

    def write(self, start, stop, block):
        self.sink.write(start, stop, np.clip(np.rint(block), self.limits.min,
                                             self.limits.max).astype(self.dtype))

    def finish(self):
        self.sink.finish()

    def close(self):
        self.sink.close()


def image_name(name):
    """The output name of an input image: the same, but PNG for a JPEG (lossless output)."""
    path = Path(name)
    return path.stem + ".png" if path.suffix.lower() in (".jpg", ".jpeg") else path.name


def suffix_kind(path):
    """``"npy"``, ``"npz"``, ``"tif"``, ``"zarr"``, ``"image"`` or None for `path`'s suffix."""
    suffix = Path(path).suffix.lower()
    return {".npy": "npy", ".npz": "npz", ".tif": "tif", ".tiff": "tif", ".zarr": "zarr",
            **{s: "image" for s in PILLOW_SUFFIXES}}.get(suffix)


def open_sink(target, name, shape, dtype, rows, key=None, layout=None):
    """The sink writing an array of `shape` as `name` (its suffix picks the format), with the
    input's `layout` where the format can hold it."""
    kind = suffix_kind(name)
    if kind == "image":
        stacked = _stacked(shape, layout)
        if stacked and (len(shape) < 3 or shape[0] != 1):
            raise CliError(f"{name}: an image file holds one image, but the result is {shape}: "
                           "write a .npy/.npz/.tif/.zarr instead")
        if not (layout or {}).get("frames"):  # refused now, not after the work
            one_image(np.broadcast_to(np.zeros((), bool), shape[1:] if stacked else shape),
                       layout or {}, name)
        _check_image_dtype(np.dtype(dtype), f"{Path(name).suffix} output")
        return ImageSink(target.path(name), shape, dtype, name, layout)
    if kind is None:
        raise CliError(f"{name}: unsupported output; use .npy, .npz, .tif/.tiff, .zarr, "
                       ".png/.jpg (one image) or a folder")
    path = target.path(name)
    if kind == "npy":
        return NpySink(path, shape, dtype)
    if kind == "npz":  # deflated like an .npz input's member
        return NpzSink(path, shape, dtype, key, compressed=bool(
            layout and layout.get("format") == "npz" and layout.get("compressed")))
    if kind == "tif":
        return TiffSink(path, shape, dtype, layout)
    return ZarrSink(path, shape, dtype, rows, layout)
