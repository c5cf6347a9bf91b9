"""Outputs of the ``gpu-histeq`` command: a *sink* writes the result, slab by slab, into the
path its target (:mod:`.targets`) gives it; the target moves the finished output into place.

Writes never go through a memory map, so a full disk is an ``OSError`` (a clean error), never
a SIGBUS.
"""

import os
import zipfile
from pathlib import Path

import numpy as np

from . import _cleanup
from ._cleanup import CliError, optional
from ._images import one_image, pil_format, write_picture
from ._tiff import create_tiff
from ._zarr import create_zarr
from .readers import PILLOW_SUFFIXES

__all__ = ["ImageSink", "ImagesSink", "NpySink", "NpzSink", "Rounded", "TiffSink", "ZarrSink",
           "image_name", "open_sink", "suffix_kind"]


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
