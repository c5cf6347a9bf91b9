"""Inputs of the ``gpu-histeq`` command, read in slabs along their first axis.

Raw arrays on disk (``.npy``, uncompressed contiguous TIFF) are read with ``os.preadv`` into a
buffer per slab, never through a memory map: a file that shrinks while it is read gives a clean
:class:`~gpu_histeq.cli._cleanup.CliError`, where a mapped page past the end of the file would
kill the process with SIGBUS. Compressed TIFFs are decoded with every tifffile warning turned
into an error, so a damaged file is refused rather than partly read.

One reading per format, by the library made for it, alone or in a folder: TIFF through
tifffile (:mod:`._tiff`: series, pages, samples, photometric, resolution, orientation,
ImageJ/OME metadata, pyramid levels), PNG/JPEG through Pillow (:mod:`._images`: every frame,
the ancillary chunks and EXIF/ICC/dpi; 16-bit colour PNG by :mod:`._png`), zarr with its
attributes (:mod:`._zarr`). A reader accounts for everything in the file: it reads all
of it, with what a writer needs to write the same layout back (``layout`` attributes), or
refuses before anything is written, naming the option that selects a part.
"""

import math
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

from ._cleanup import PROG, CliError, one_line, optional
from ._images import load_picture
from ._tiff import TIFF_SUFFIXES, StrictTiff, expand_palette, read_levels, tiff_layout, \
    tiff_series, widen_bilevel
from ._zarr import refuse_missing_chunks, zarr_layout

__all__ = ["IMAGE_SUFFIXES", "Source", "open_source", "is_zarr", "read_levels", "tell"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg")


def tell(quiet, line):
    """Say on stderr what a run cannot keep or did not process (one line; nothing with -q)."""
    if not quiet:
        print(f"{PROG}: warning: {line}", file=sys.stderr, flush=True)


class Source:
    """An input stack read in slabs along its first axis.

    Attributes
    ----------
    shape : tuple of int
    dtype : numpy.dtype
    path : Path
        What the user named.
    paths : list of Path
        Every file it reads (none of them may be written over).
    kind : str
        ``"npy"``, ``"npz"``, ``"tif"``, ``"zarr"``, ``"folder"`` or ``"image"`` (one PNG/JPEG
        file, read as a stack of one).
    default_axes : tuple of int
    own_axes : bool
        True when the file says where its image axes lie (TIFF, image files): then
        `default_axes` are its Y and X and `sample_axis` its samples (channels), or None.
    layout : dict or None
        What a writer of the same format needs to write the same layout and metadata back.
    notes : list of str
        What reading changed or could not take (said on stderr).
    """

    default_axes = (-2, -1)
    own_axes = False
    sample_axis = None
    layout = None

    def __init__(self, array, path, kind, paths=None):
        self.array, self.path, self.kind = array, Path(path), kind
        self.paths = [Path(p) for p in (paths or [path])]
        self.shape, self.dtype = tuple(array.shape), np.dtype(array.dtype)
        self.notes = []

    @property
    def rows(self):
        return self.shape[0] if self.shape else 0

    def read(self, start, stop, reuse=False):
        """Rows ``start:stop`` of the first axis as a NumPy array.

        With `reuse`, the array may be overwritten by the next ``read(..., reuse=True)``.
        """
        try:
            return np.asarray(self.array[start:stop])
        except Exception as error:  # a zarr chunk that does not decode, an I/O error
            raise CliError(f"cannot read {self.path}: {one_line(error)}") from None

    def read_all(self):
        return self.read(0, self.rows)

    def close(self):
        self.array = None


class RawSource(Source):
    """A C-ordered array at byte `offset` of a file, read with positioned reads."""

    def __init__(self, path, offset, shape, dtype, kind):
        self.path, self.kind, self.offset = Path(path), kind, offset
        self.paths, self.notes = [self.path], []
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.row_bytes = math.prod(self.shape[1:]) * self.dtype.itemsize
        self.fd, self.buffer = os.open(self.path, os.O_RDONLY), None
        self._check_size(offset + (self.rows * self.row_bytes if self.shape
                                   else self.dtype.itemsize))

    def _check_size(self, needed):
        size = os.fstat(self.fd).st_size
        if size < needed:
            raise CliError(f"cannot read {self.path}: it holds {size} bytes, its header needs "
                           f"{needed} (truncated?)")

    def read(self, start, stop, reuse=False):
        stop = max(start, stop)
        shape = (stop - start,) + self.shape[1:]
        if reuse:  # one buffer for every slab: no fresh pages to fault in each time
            if self.buffer is None or len(self.buffer) < shape[0]:
                self.buffer = np.empty(shape, self.dtype)
            block = self.buffer[: shape[0]]
        else:
            block = np.empty(shape, self.dtype)
        view = memoryview(block).cast("B") if block.nbytes else memoryview(b"")
        position, done = self.offset + start * self.row_bytes, 0
        while done < len(view):
            try:
                count = os.preadv(self.fd, [view[done:]], position + done)
            except OSError as error:
                raise CliError(f"cannot read {self.path}: {one_line(error)}") from None
            if count == 0:
                raise CliError(f"cannot read {self.path}: the file ended at byte {position + done}"
                               f", {len(view) - done} bytes short (truncated while being read?)")
            done += count
        return block

    def close(self):
        self.buffer = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _open_tiff(path, key=None, widen=True, option="--key"):
    with StrictTiff(path) as (tiff, check):
        _, series = tiff_series(tiff, path, key, option)
        axes, sample_axis, layout, notes, palette = tiff_layout(tiff, series, path)
        offset = series.dataoffset
        dtype = np.dtype(series.dtype).newbyteorder(tiff.byteorder)
        check()
        if offset is not None and palette is None and dtype != np.bool_:
            source = RawSource(path, offset, series.shape, dtype, "tif")
        else:
            array = series.asarray()
            check()
            if palette is not None:
                array = expand_palette(array, palette)
            source = Source(widen_bilevel(array, path, notes) if widen else array, path, "tif")
    source.default_axes, source.sample_axis, source.own_axes = axes, sample_axis, True
    source.layout = dict(layout, axes=axes, sample_axis=sample_axis, ndim=len(source.shape),
                         palette=palette is not None)
    source.notes, source.key = notes, key
    return source


class FolderSource(Source):
    """Image files (TIFF through tifffile, PNG/JPEG through Pillow) in name order, one entry per
    file.

    Read as one stack (:meth:`read`) they must share the first image's shape and dtype;
    written into a folder they may differ, and are read one by one (:meth:`picture`, see
    :mod:`.batches`).

    Attributes
    ----------
    skipped : list of str
        Entries of the folder not processed, each with the reason (said on stderr).
    """

    default_axes = (1, 2)  # (N, H, W) or (N, H, W, C): per image, per channel
    own_axes = True

    def __init__(self, path, files, kind="folder", key=None, skipped=(), widen=True,
                 option="--key"):
        self.path, self.kind, self.files = Path(path), kind, [Path(f) for f in files]
        self.key, self.skipped, self._layouts = key, list(skipped), {}
        self.widen, self.option = widen, option
        first = self.picture(self.files[0])
        self.shape, self.dtype = (len(self.files),) + first.array.shape, first.array.dtype
        self.default_axes = tuple(1 + a for a in first.axes)
        self.sample_axis = None if first.sample_axis is None else first.sample_axis + 1
        self.paths = ([self.path] if kind == "folder" else []) + self.files
        self.notes = []

    def picture(self, path):
        """One image file as a :class:`~._images.Picture` (its layout kept for
        :attr:`layouts`)."""
        picture = load_picture(path, self.key, self.widen, self.option)
        self._layouts[Path(path)] = picture.layout
        return picture

    @property
    def layouts(self):
        """The layouts of the files read so far, by position (``layouts[start:stop]``; None
        for a file not read): for a writer of one image file per entry."""
        return _Layouts(self)

    def load(self, path):
        """One image file as an array: ``(..., H, W)`` or ``(..., H, W, C)``."""
        return self.picture(path).array

    def read(self, start, stop, reuse=False):
        images = [self.load(path) for path in self.files[start:stop]]
        for path, image in zip(self.files[start:stop], images):
            if image.shape != self.shape[1:] or image.dtype != self.dtype:
                raise CliError(f"{path.name} is {image.shape} {image.dtype}, but the folder's "
                               f"first image is {self.shape[1:]} {self.dtype}: one array "
                               "output needs images of one size and dtype; write into a "
                               "folder (e.g. -o out/) to take mixed sizes")
        return np.stack(images) if images else np.empty((0,) + self.shape[1:], self.dtype)


class _Layouts:
    """``layouts[start:stop]``: the layouts of a folder's files, looked up when written."""

    def __init__(self, source):
        self.source = source

    def __getitem__(self, index):
        files = self.source.files[index]
        return [self.source._layouts.get(path) for path in files]

    def stack(self):
        """The layout of the files stacked into one array: the first file's colour mode (RGB,
        RGBA, grey+alpha, CMYK), so that a TIFF stores its samples as samples, not pages."""
        first = self.source._layouts.get(self.source.files[0]) or {}
        mode = first.get("mode", "")
        tiff = first.get("tiff", {})
        if tiff:
            samples = self.source.shape[-1] if self.source.sample_axis is not None else 1
            mode = {("rgb", 3): "RGB", ("rgb", 4): "RGBA", ("minisblack", 2): "LA",
                    ("separated", 4): "CMYK"}.get((tiff["photometric"], samples), "")
        return {"format": None, "mode": mode} if mode else None


def folder_files(path):
    """``(files, skipped)``: the image files of a folder in name order, and every other entry
    with why it is not processed."""
    files, skipped = [], []
    for entry in sorted(path.iterdir()):
        if entry.is_symlink() and not entry.exists():
            skipped.append(f"{entry.name} (a broken link)")
        elif entry.is_dir():
            skipped.append(f"{entry.name}/ (a folder: folders are not searched)")
        elif not entry.is_file():
            skipped.append(f"{entry.name} (not a regular file)")
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            files.append(entry)
        else:
            skipped.append(f"{entry.name} (not {'/'.join(IMAGE_SUFFIXES)})")
    return files, skipped


def is_zarr(path):
    path = Path(path)
    return path.suffix.lower() == ".zarr" or any(
        (path / name).exists() for name in (".zarray", "zarr.json", ".zgroup"))


def _pick(names, key, path, option="--key"):
    """One array of a container (npz, zarr group) by `key`, or the only one; `option` is the
    command-line option that gives `key`."""
    names = sorted(names)
    if key is None:
        if len(names) != 1:
            raise CliError(f"{path} holds {len(names)} arrays {names}: choose one with {option}")
        key = names[0]
    if key not in names:
        raise CliError(f"{option} {key!r}: {path} has no such array; it holds {names}")
    return key


def _one_array(key, path, what, option="--key"):
    """The refusal of a `key` that `path` (one array) cannot honour: nothing silently ignored."""
    return (f"{option} {key!r}: {path} is {what}, one array without names; {option} picks an "
            "array of an .npz or a zarr group, or a TIFF's series: leave it out")


def _npy_header(file):
    """``(shape, fortran_order, dtype)`` of the ``.npy`` header at `file`'s position."""
    version = np.lib.format.read_magic(file)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(file)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(file)
    try:  # 3.0: the 2.0 header in UTF-8, read by numpy's own helper
        from numpy.lib._format_impl import _read_array_header
    except ImportError:  # NumPy 1.x
        _read_array_header = np.lib.format._read_array_header
    return _read_array_header(file, version)


def _open_npy(path):
    with open(path, "rb") as file:
        shape, fortran, dtype = _npy_header(file)
        offset = file.tell()
    if dtype.hasobject:
        raise CliError(f"cannot read {path}: it holds Python objects, not numbers")
    if fortran and len(shape) > 1:  # rows are not contiguous: read it whole, in C order
        raw = RawSource(path, offset, shape[::-1], dtype, "npy")
        try:
            array = raw.read_all().T
        finally:
            raw.close()
        return Source(np.ascontiguousarray(array), path, "npy")
    return RawSource(path, offset, shape, dtype, "npy")


def open_source(path, key=None, fill_missing=False, mask=False, option="--key"):
    """Open an input for reading in slabs.

    Parameters
    ----------
    path : str or Path
        ``.npy``, ``.npz``, ``.tif``/``.tiff``, ``.png``/``.jpg``/``.jpeg``, a zarr array or
        group, or a folder of PNG/JPEG/TIFF images.
    key : str, optional
        The array inside an ``.npz`` or a zarr group; the series (index) of a TIFF (or of each
        TIFF of a folder). Refused for an input it cannot pick from (a ``.npy``, a zarr array,
        a PNG/JPEG image, a folder without TIFF files).
    fill_missing : bool
        Read the missing chunks of a zarr array as its fill value (refused otherwise).
    mask : bool
        Read for ``--mask``: a 1-bit TIFF/PNG stays boolean (an image's is read as 8-bit grey).
    option : str
        The command-line option that gives `key` (``--key``, ``--reference-key``,
        ``--mask-key``), named in the errors.

    Raises
    ------
    CliError
        For a missing, unsupported, truncated or unreadable input, or one holding several
        arrays/series without `key`.
    """
    path = Path(path)
    if not path.exists():
        raise CliError(f"{path} does not exist")
    suffix = path.suffix.lower()
    try:
        if path.is_dir() and is_zarr(path):
            zarr = optional("zarr", "reading zarr arrays")
            node = zarr.open(str(path), mode="r")
            notes = []
            if not hasattr(node, "shape"):  # a group: its arrays, in subgroups too
                arrays = {name: member for name, member in node.members(max_depth=None)
                          if hasattr(member, "shape")}
                name = _pick(arrays, key, path, option)
                if dict(node.attrs):
                    notes.append(f"{path}: the group's attributes ({', '.join(sorted(node.attrs))})"
                                 f" are not written: the output is its array {name!r}")
                node = arrays[name]
            elif key is not None:
                raise CliError(_one_array(key, path, "a zarr array", option))
            if not fill_missing:
                refuse_missing_chunks(node, path)
            source = Source(node, path, "zarr")
            source.layout, source.notes = zarr_layout(node), notes
            return source
        if path.is_dir():
            files, skipped = folder_files(path)
            if not files:
                raise CliError(f"{path} holds no {'/'.join(IMAGE_SUFFIXES)} images"
                               + (f" ({len(skipped)} other entries: {', '.join(skipped[:5])})"
                                  if skipped else ""))
            if key is not None and not any(f.suffix.lower() in TIFF_SUFFIXES for f in files):
                raise CliError(f"{option} {key!r}: {path} holds no TIFF file; {option} picks "
                               "the series of each TIFF of a folder: leave it out")
            return FolderSource(path, files, key=key, skipped=skipped, widen=not mask,
                                option=option)
        if suffix == ".npy":
            if key is not None:
                raise CliError(_one_array(key, path, "a .npy", option))
            return _open_npy(path)
        if suffix == ".npz":
            source = NpzSource(path, key, option)  # streamed from its zip member, one slab at a time
            return source
        if suffix in TIFF_SUFFIXES:
            return _open_tiff(path, key, widen=not mask, option=option)
        if suffix in PILLOW_SUFFIXES:
            if key is not None:
                raise CliError(_one_array(key, path, "a PNG/JPEG image", option))
            return FolderSource(path, [path], kind="image", widen=not mask)
    except CliError:
        raise
    except Exception as error:
        raise CliError(f"cannot read {path}: {one_line(error)}") from None
    raise CliError(f"{path}: unsupported input; use .npy, .npz, .tif/.tiff, .png/.jpg, a .zarr "
                   "array or a folder of PNG/JPEG/TIFF images")


class NpzSource(Source):
    """One array of an ``.npz``, streamed from its zip member in slabs, as a ``.npy`` is read.

    A zip member reads front to back (deflated ones through zlib), so each pass over the rows
    reopens the member and reads on: memory is one slab whatever the member expands to, and a
    member that is damaged, short, or fails its CRC is an error naming the file. A
    Fortran-ordered member (rows not contiguous) is read whole, as a ``.npy`` is. Its layout
    says whether the member is deflated, so that an ``.npz`` output is written like it.
    """

    #: Bytes read from the member per call: a slab is filled piecewise, without a second copy.
    PIECE = 1 << 20

    def __init__(self, path, key=None, option="--key"):
        self.path, self.kind, self.array = Path(path), "npz", None
        self.paths, self.notes, self.stream, self.buffer = [self.path], [], None, None
        self.zip = zipfile.ZipFile(self.path)
        try:
            self._open(key, option)
        except BaseException:
            self.close()
            raise

    def _open(self, key, option):
        members = {name[:-4]: name for name in self.zip.namelist() if name.endswith(".npy")}
        self.key = _pick(members, key, self.path, option)  # written under the same name
        self.member = self.zip.getinfo(members[self.key])
        # an .npz output of it is deflated like it (numpy.savez_compressed), or stored
        self.layout = {"format": "npz", "path": str(self.path),
                       "compressed": self.member.compress_type != zipfile.ZIP_STORED}
        self._rewind()
        shape, fortran, dtype = self.header
        if dtype.hasobject:
            raise CliError(f"cannot read {self.path}: {self.key} holds Python objects, not "
                           "numbers")
        self.shape, self.dtype = tuple(shape[::-1] if fortran else shape), dtype
        self.row_bytes = math.prod(self.shape[1:]) * dtype.itemsize
        needed = self.offset + math.prod(self.shape) * dtype.itemsize
        if self.member.file_size < needed:
            raise CliError(f"cannot read {self.path}: member {self.member.filename} holds "
                           f"{self.member.file_size} bytes, its header needs {needed} "
                           "(truncated?)")
        if fortran and len(shape) > 1:
            self.array = np.ascontiguousarray(self.read_all().T)
            self.shape = tuple(shape)
            self._close_stream()

    def _rewind(self):
        """Open the member at its first row (and read its header)."""
        self._close_stream()
        self.stream = self.zip.open(self.member)
        self.header = _npy_header(self.stream)
        self.offset, self.row = self.stream.tell(), 0

    def _close_stream(self):
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def _fill(self, view):
        done = 0
        while done < len(view):
            piece = self.stream.read(min(self.PIECE, len(view) - done))
            if not piece:
                raise CliError(f"cannot read {self.path}: member {self.member.filename} ended "
                               f"{len(view) - done} bytes short")
            view[done:done + len(piece)] = piece
            done += len(piece)

    def read(self, start, stop, reuse=False):
        if self.array is not None:
            return np.asarray(self.array[start:stop])
        stop = max(start, stop)
        shape = (stop - start,) + self.shape[1:]
        try:
            if self.stream is None or start < self.row:
                self._rewind()
            skip = (start - self.row) * self.row_bytes  # rows before `start`: read and drop
            scratch = memoryview(bytearray(min(skip, self.PIECE)))
            while skip:
                self._fill(scratch[: min(skip, len(scratch))])
                skip -= min(skip, len(scratch))
            if reuse and self.buffer is not None and len(self.buffer) >= shape[0]:
                block = self.buffer[: shape[0]]
            else:
                block = np.empty(shape, self.dtype)
                if reuse:
                    self.buffer = block
            self._fill(memoryview(block).cast("B") if block.nbytes else memoryview(b""))
            self.row = stop
        except CliError:
            raise
        except MemoryError:
            raise CliError(f"cannot read {self.path}: {shape} {self.dtype} does not fit in "
                           "memory") from None
        except Exception as error:  # zlib, CRC, zip structure, I/O
            raise CliError(f"cannot read {self.path}: {one_line(error)}") from None
        return block

    def close(self):
        self._close_stream()
        self.buffer = self.array = None
        if self.zip is not None:
            self.zip.close()
            self.zip = None
