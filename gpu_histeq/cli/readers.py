"""Inputs of the ``gpu-histeq`` command, read in slabs along their first axis.

Raw arrays on disk (``.npy``, uncompressed contiguous TIFF) are read with ``os.preadv`` into a
buffer per slab, never through a memory map: a file that shrinks while it is read gives a clean
:class:`~gpu_histeq.cli._cleanup.CliError`, where a mapped page past the end of the file would
kill the process with SIGBUS. Compressed TIFFs are decoded with every tifffile warning turned
into an error, so a damaged file is refused rather than partly read.
"""

import logging
import math
import os
import warnings
from pathlib import Path

import numpy as np

from ._cleanup import CliError, one_line, optional

__all__ = ["IMAGE_SUFFIXES", "Source", "open_source", "is_zarr"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg")


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
    """

    default_axes = (-2, -1)

    def __init__(self, array, path, kind, paths=None):
        self.array, self.path, self.kind = array, Path(path), kind
        self.paths = [Path(p) for p in (paths or [path])]
        self.shape, self.dtype = tuple(array.shape), np.dtype(array.dtype)

    @property
    def rows(self):
        return self.shape[0] if self.shape else 0

    def read(self, start, stop, reuse=False):
        """Rows ``start:stop`` of the first axis as a NumPy array.

        With `reuse`, the array may be overwritten by the next ``read(..., reuse=True)``.
        """
        return np.asarray(self.array[start:stop])

    def read_all(self):
        return self.read(0, self.rows)

    def close(self):
        self.array = None


class RawSource(Source):
    """A C-ordered array at byte `offset` of a file, read with positioned reads."""

    def __init__(self, path, offset, shape, dtype, kind):
        self.path, self.kind, self.offset = Path(path), kind, offset
        self.paths = [self.path]
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


class FolderSource(Source):
    """PNG/JPEG/TIFF images read with Pillow, in name order, one entry per file.

    Read as one stack (:meth:`read`) they must share the first image's shape and dtype;
    written into a folder they may differ, and are read one by one (:meth:`load`, see
    :mod:`.batches`)."""

    default_axes = (1, 2)  # (N, H, W) or (N, H, W, C): per image, per channel

    def __init__(self, path, files, kind="folder"):
        self.pil = optional("PIL.Image", "reading PNG/JPEG images")
        self.path, self.kind, self.files = Path(path), kind, [Path(f) for f in files]
        first = self.load(self.files[0])
        self.shape, self.dtype = (len(self.files),) + first.shape, first.dtype
        self.paths = ([self.path] if kind == "folder" else []) + self.files

    def load(self, path):
        """One image file as an array: ``(H, W)`` or ``(H, W, C)``, uint8/uint16/..."""
        try:
            with self.pil.open(path) as image:
                image.load()
                if image.mode == "P":
                    image = image.convert("RGB")
                elif image.mode == "I;16B":
                    image = image.convert("I;16")
                array = np.asarray(image)
        except CliError:
            raise
        except Exception as error:
            raise CliError(f"cannot read {path}: {one_line(error)}") from None
        if array.dtype == np.int32 and array.min() >= 0 and array.max() < 65536:
            array = array.astype(np.uint16)
        return array

    def read(self, start, stop, reuse=False):
        images = [self.load(path) for path in self.files[start:stop]]
        for path, image in zip(self.files[start:stop], images):
            if image.shape != self.shape[1:] or image.dtype != self.dtype:
                raise CliError(f"{path.name} is {image.shape} {image.dtype}, but the folder's "
                               f"first image is {self.shape[1:]} {self.dtype}: one array "
                               "output needs images of one size and dtype; write into a "
                               "folder (e.g. -o out/) to take mixed sizes")
        return np.stack(images) if images else np.empty((0,) + self.shape[1:], self.dtype)


def is_zarr(path):
    path = Path(path)
    return path.suffix.lower() == ".zarr" or any(
        (path / name).exists() for name in (".zarray", "zarr.json", ".zgroup"))


def _pick(names, key, path):
    """One array of a container (npz, zarr group) by `key`, or the only one."""
    names = sorted(names)
    if key is None:
        if len(names) != 1:
            raise CliError(f"{path} holds {len(names)} arrays {names}: choose one with --key")
        key = names[0]
    if key not in names:
        raise CliError(f"--key {key!r}: {path} has no such array; it holds {names}")
    return key


def _open_npy(path):
    with open(path, "rb") as file:
        version = np.lib.format.read_magic(file)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(file)
        else:  # 3.0: the 2.0 header in UTF-8, read by numpy's own helper
            shape, fortran, dtype = np.lib.format._read_array_header(file, version)
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


class _Errors(logging.Handler):
    """Collects the errors tifffile logs (it logs, then returns what it could read)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _open_tiff(path):
    tifffile = optional("tifffile", "reading TIFF files")
    logger, errors = logging.getLogger("tifffile"), _Errors()
    logger.addHandler(errors)
    propagate, logger.propagate = logger.propagate, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a damaged page is an error, not a partial result
            with tifffile.TiffFile(path) as tiff:
                series = tiff.series[0]
                offset = series.dataoffset
                dtype = np.dtype(series.dtype).newbyteorder(tiff.byteorder)
                if errors.messages:
                    raise CliError(f"cannot read {path}: {one_line(errors.messages[0])}")
                if offset is not None:
                    return RawSource(path, offset, series.shape, dtype, "tif")
                array = series.asarray()
                if errors.messages:
                    raise CliError(f"cannot read {path}: {one_line(errors.messages[0])}")
                return Source(array, path, "tif")
    finally:
        logger.removeHandler(errors)
        logger.propagate = propagate


def refuse_missing_chunks(array, path):
    """Raise naming the first chunk file a zarr input lacks.

    zarr reads a missing chunk as the array's fill value (sparse arrays skip chunks that hold
    only it), which for an input would silently equalize zeros: refused unless the user asks
    for fill values (``--fill-missing-chunks``). One listing of the store when nothing lacks.
    """
    try:
        if array.nchunks_initialized >= array.nchunks:
            return
        root = Path(path) / array.path if array.path else Path(path)
        shards = getattr(array, "shards", None)  # sharded: one file per shard
        grid = array.cdata_shape if shards is None else tuple(
            -(-n // s) for n, s in zip(array.shape, shards))
        for coords in np.ndindex(*grid):
            key = array.metadata.encode_chunk_key(coords)
            if not (root / key).exists():
                break
        else:  # every file is there (chunks missing inside a shard are not seen)
            return
    except (AttributeError, TypeError):  # pragma: no cover - another zarr: not checked
        return
    raise CliError(f"cannot read {path}: its chunk {root / key} is missing (zarr would read "
                   f"it as the fill value {array.fill_value}); give --fill-missing-chunks "
                   "to accept that")


def open_source(path, key=None, fill_missing=False):
    """Open an input for reading in slabs.

    Parameters
    ----------
    path : str or Path
        ``.npy``, ``.npz``, ``.tif``/``.tiff``, ``.png``/``.jpg``/``.jpeg``, a zarr array or
        group, or a folder of PNG/JPEG/TIFF images.
    key : str, optional
        The array inside an ``.npz`` or a zarr group.
    fill_missing : bool
        Read the missing chunks of a zarr array as its fill value (refused otherwise).

    Raises
    ------
    CliError
        For a missing, unsupported, truncated or unreadable input.
    """
    path = Path(path)
    if not path.exists():
        raise CliError(f"{path} does not exist")
    suffix = path.suffix.lower()
    try:
        if path.is_dir() and is_zarr(path):
            zarr = optional("zarr", "reading zarr arrays")
            node = zarr.open(str(path), mode="r")
            if not hasattr(node, "shape"):
                arrays = dict(node.arrays())
                node = arrays[_pick(arrays, key, path)]
            if not fill_missing:
                refuse_missing_chunks(node, path)
            return Source(node, path, "zarr")
        if path.is_dir():
            files = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise CliError(f"{path} holds no {'/'.join(IMAGE_SUFFIXES)} images")
            return FolderSource(path, files)
        if suffix == ".npy":
            return _open_npy(path)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                name = _pick(archive.files, key, path)
                source = Source(archive[name], path, "npz")
                source.key = name  # written under the same name
                return source
        if suffix in (".tif", ".tiff"):
            return _open_tiff(path)
        if suffix in PILLOW_SUFFIXES:
            return FolderSource(path, [path], kind="image")
    except CliError:
        raise
    except Exception as error:
        raise CliError(f"cannot read {path}: {one_line(error)}") from None
    raise CliError(f"{path}: unsupported input; use .npy, .npz, .tif/.tiff, .png/.jpg, a .zarr "
                   "array or a folder of PNG/JPEG/TIFF images")
