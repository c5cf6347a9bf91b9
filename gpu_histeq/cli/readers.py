"""Inputs of the ``gpu-histeq`` command, read in slabs along their first axis.

Raw arrays on disk (``.npy``, uncompressed contiguous TIFF) are read with ``os.preadv`` into a
buffer per slab, never through a memory map: a file that shrinks while it is read gives a clean
:class:`~gpu_histeq.cli._cleanup.CliError`, where a mapped page past the end of the file would
kill the process with SIGBUS. Compressed TIFFs are decoded with every tifffile warning turned
into an error, so a damaged file is refused rather than partly read.

One reading per format, by the library made for it, alone or in a folder: TIFF through
tifffile (:func:`tiff_layout`: series, pages, samples, photometric, resolution, orientation,
ImageJ/OME metadata), PNG/JPEG through Pillow (:func:`load_picture`: every frame, the
ancillary chunks and EXIF/ICC/dpi; 16-bit colour PNG by :mod:`._png`), zarr with its
attributes (:func:`zarr_layout`). A reader accounts for everything in the file: it reads all
of it, with what a writer needs to write the same layout back (:class:`Picture`, ``layout``
attributes), or refuses before anything is written, naming the option that selects a part.
"""

import json
import logging
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from . import _png
from ._cleanup import PROG, CliError, one_line, optional

__all__ = ["IMAGE_SUFFIXES", "Picture", "Source", "load_picture", "open_source", "is_zarr",
           "read_levels", "tell"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")


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
        return np.asarray(self.array[start:stop])

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


# --------------------------------------------------------------------------- image files

class Picture:
    """One image file read whole, and how to write it back the same way.

    Attributes
    ----------
    array : (..., H, W[, S]) ndarray
        Every page/frame of the file; S samples (channels) last, or where the TIFF has them.
    axes : tuple of int
        The positions of H and W in `array`.
    sample_axis : int or None
        Where the samples (channels) lie.
    layout : dict
        ``{"format": "tif" | "png" | "jpeg", ...}``: what the writer needs (see
        :mod:`.writers`).
    notes : list of str
        What reading changed (a palette expanded, 1-bit read as 8-bit, ...).
    """

    def __init__(self, array, axes, sample_axis, layout, notes=()):
        self.array, self.axes, self.sample_axis = array, tuple(axes), sample_axis
        self.layout, self.notes = layout, list(notes)
        layout.update(axes=self.axes, sample_axis=sample_axis, ndim=array.ndim)


def load_picture(path, key=None):
    """Read one TIFF, PNG or JPEG file whole (every page, frame and sample).

    Raises
    ------
    CliError
        Naming the file: unreadable, or holding several parts without `key`.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            return _tiff_picture(path, key)
        return _pillow_picture(path)
    except CliError:
        raise
    except Exception as error:
        raise CliError(f"cannot read {path}: {one_line(error)}") from None


# ---------------------------------------------------------------------------------- TIFF

#: ASCII tags copied as they are (document name, make, model, page name, software, date, artist,
#: host computer, copyright).
TIFF_TEXT_TAGS = (269, 271, 272, 285, 305, 306, 315, 316, 33432)
#: Photometric interpretations written back as read.
TIFF_PHOTOMETRIC = ("minisblack", "miniswhite", "rgb", "separated")


class _Errors(logging.Handler):
    """Collects the errors tifffile logs (it logs, then returns what it could read)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


class _StrictTiff:
    """``with _StrictTiff(path) as (tiff, check):`` a TiffFile whose logged errors and warnings
    are errors; ``check()`` raises the first one."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        tifffile = optional("tifffile", "reading TIFF files")
        self.logger, self.errors = logging.getLogger("tifffile"), _Errors()
        self.logger.addHandler(self.errors)
        self.propagate, self.logger.propagate = self.logger.propagate, False
        self.caught = warnings.catch_warnings()
        self.caught.__enter__()
        warnings.simplefilter("error")  # a damaged page is an error, not a partial result
        try:
            self.tiff = tifffile.TiffFile(self.path)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.tiff, self.check

    def check(self):
        if self.errors.messages:
            raise CliError(f"cannot read {self.path}: {one_line(self.errors.messages[0])}")

    def __exit__(self, *exc):
        if getattr(self, "tiff", None) is not None:
            self.tiff.close()
        self.caught.__exit__(None, None, None)
        self.logger.removeHandler(self.errors)
        self.logger.propagate = self.propagate


def _tiff_series(tiff, path, key):
    """The one series to read: the only one, or the one `key` (its index) names."""
    series = tiff.series
    held = ", ".join(f"{i}: {s.shape} {s.axes} {np.dtype(s.dtype)}" for i, s in enumerate(series))
    if not series:
        raise CliError(f"cannot read {path}: it holds no image")
    if key is None:
        if len(series) > 1:
            raise CliError(f"{path} holds {len(series)} image series ({held}): choose one "
                           f"with --key 0 to --key {len(series) - 1}")
        return 0, series[0]
    if not (str(key).isdigit() and int(key) < len(series)):
        raise CliError(f"--key {key!r}: {path} holds the image series {held}; give the index "
                       "of one")
    return int(key), series[int(key)]


def _tiff_tags(page):
    """Resolution, orientation, ICC profile and text tags of `page` as tifffile write
    keywords."""
    tags, kwargs, extratags = page.tags, {}, []
    if 282 in tags and 283 in tags:
        kwargs["resolution"] = (tuple(tags[282].value), tuple(tags[283].value))
        kwargs["resolutionunit"] = int(tags[296].value) if 296 in tags else 2
    if 274 in tags:
        extratags.append((274, "H", 1, int(tags[274].value), True))
    if 34675 in tags:
        kwargs["iccprofile"] = bytes(tags[34675].value)
    kwargs["software"] = False
    for code in TIFF_TEXT_TAGS:
        if code in tags and isinstance(tags[code].value, str) and tags[code].value:
            extratags.append((code, "s", 0, tags[code].value, True))
    kwargs["extratags"] = extratags
    return kwargs


def tiff_layout(tiff, series, path):
    """``(axes, sample_axis, layout, notes, palette)`` of one series: where its image axes and
    samples lie, the tifffile write keywords giving the same layout and metadata back, what
    cannot be kept, and the colour map of a palette image (expanded to RGB by the reader)."""
    page = series.keyframe
    photometric = page.photometric.name.lower()
    notes, palette = [], None
    axes_letters = series.axes
    if photometric == "palette":
        palette = page.colormap
        notes.append(f"{path}: a palette (colour-mapped) image: its colours are equalized as "
                     "RGB, written as RGB without the colour map")
        photometric, axes_letters = "rgb", axes_letters + "S"
    elif photometric == "ycbcr" and page.compression.name.startswith("JPEG"):
        photometric = "rgb"  # tifffile decodes JPEG YCbCr to RGB
    elif photometric not in TIFF_PHOTOMETRIC:
        raise CliError(f"{path} holds {photometric.upper()} images; only grey (MinIsBlack/"
                       "MinIsWhite), RGB, palette and CMYK (separated) TIFFs are supported")
    if "Y" not in axes_letters or "X" not in axes_letters:
        raise CliError(f"{path}: its series has axes {series.axes!r}, without Y and X")
    axes = (axes_letters.index("Y"), axes_letters.index("X"))
    sample_axis = axes_letters.index("S") if "S" in axes_letters else None
    kwargs = {"photometric": photometric, "metadata": None}
    if page.samplesperpixel > 1 or palette is not None:
        kwargs["planarconfig"] = ("separate" if page.planarconfig == 2 and palette is None
                                  else "contig")
        if page.extrasamples:
            kwargs["extrasamples"] = tuple(int(e) for e in page.extrasamples)
    if photometric == "separated" and 332 in page.tags:
        kwargs["extratags"] = [(332, "H", 1, int(page.tags[332].value), True)]
    tags = _tiff_tags(page)
    kwargs["extratags"] = kwargs.get("extratags", []) + tags.pop("extratags")
    kwargs.update(tags)
    description = page.description or ""
    if tiff.is_imagej:
        kept = {k: v for k, v in (tiff.imagej_metadata or {}).items()
                if k not in ("ImageJ", "images", "channels", "slices", "frames", "hyperstack",
                             "min", "max", "Ranges")}  # display ranges of the old values
        kwargs.update(imagej=True, metadata={**kept, "axes": series.axes})
        kwargs.pop("software")
    elif tiff.is_ome:
        kwargs.update(ome=False, description=tiff.ome_metadata.encode())  # the OME-XML, as it was
        kwargs["ome_dtype"] = np.dtype(series.dtype).newbyteorder("=").str
    elif tiff.is_shaped and description.startswith("{"):
        try:
            shaped = json.loads(description)
        except ValueError:
            shaped = {}
        kwargs["metadata"] = {k: v for k, v in shaped.items() if k != "shape"}
    elif description:
        kwargs["description"] = description
    levels = len(getattr(series, "levels", [])) - 1
    if levels > 0 and kwargs.get("imagej"):
        notes.append(f"{path}: its {levels} reduced-resolution level(s) are not written: an "
                     "ImageJ TIFF holds none")
        levels = 0
    if 34665 in page.tags or 34853 in page.tags:
        notes.append(f"{path}: its EXIF/GPS tags are not written back")
    layout = {"format": "tif", "tiff": kwargs, "path": str(path), "levels": levels}
    return axes, sample_axis, layout, notes, palette


def _read_levels(series, levels, palette):
    """The reduced-resolution levels (SubIFDs) of `series`, as arrays like its own."""
    found = [level.asarray() for level in series.levels[1:levels + 1]]
    if palette is not None:
        found = [_expand_palette(level, palette) for level in found]
    return [level.astype(level.dtype.newbyteorder("="), copy=False) for level in found]


def read_levels(source):
    """The reduced-resolution levels of a TIFF `source` (its ``layout["levels"]``)."""
    with _StrictTiff(source.path) as (tiff, check):
        _, series = _tiff_series(tiff, source.path, source.key)
        palette = series.keyframe.colormap if source.layout["palette"] else None
        found = _read_levels(series, source.layout["levels"], palette)
        check()
    return [_widen_bilevel(level, source.path, []) for level in found]


def _widen_bilevel(array, path, notes):
    """A 1-bit TIFF's values as 8-bit grey (0 and 255): the library takes no booleans."""
    if array.dtype != np.bool_:
        return array
    notes.append(f"{path}: a 1-bit image, read as 8-bit grey (0 and 255) and written 8-bit")
    return array.astype(np.uint8) * np.uint8(255)


def _expand_palette(indices, colormap):
    """Palette indices -> RGB values, last axis (8-bit where the map is 8-bit scaled)."""
    colormap = np.asarray(colormap)
    if np.all(colormap % 257 == 0):
        colormap = (colormap // 257).astype(np.uint8)
    return np.moveaxis(colormap, 0, -1)[indices]


def _tiff_picture(path, key=None):
    with _StrictTiff(path) as (tiff, check):
        _, series = _tiff_series(tiff, path, key)
        axes, sample_axis, layout, notes, palette = tiff_layout(tiff, series, path)
        check()
        array = series.asarray()
        layout["level_arrays"] = _read_levels(series, layout["levels"], palette)
        check()
    if palette is not None:
        array = _expand_palette(array, palette)
    array = _widen_bilevel(array, path, notes)
    layout["level_arrays"] = [_widen_bilevel(level, path, []) for level in layout["level_arrays"]]
    return Picture(array.astype(array.dtype.newbyteorder("="), copy=False), axes, sample_axis,
                   layout, notes)


def _open_tiff(path, key=None):
    with _StrictTiff(path) as (tiff, check):
        _, series = _tiff_series(tiff, path, key)
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
                array = _expand_palette(array, palette)
            source = Source(_widen_bilevel(array, path, notes), path, "tif")
    source.default_axes, source.sample_axis, source.own_axes = axes, sample_axis, True
    source.layout = dict(layout, axes=axes, sample_axis=sample_axis, ndim=len(source.shape),
                         palette=palette is not None)
    source.notes, source.key = notes, key
    return source


# ------------------------------------------------------------------------------- Pillow

#: PNG chunks the writer makes from the values (never copied), and chunks that describe values
#: the equalization changed (dropped, and said).
PNG_OWN = (b"IHDR", b"PLTE", b"IDAT", b"IEND", b"acTL", b"fcTL", b"fdAT", b"sBIT")
PNG_STALE = (b"tRNS", b"bKGD", b"hIST")


def _png_metadata(path):
    """``(kept, dropped)``: the ancillary chunks copied to a PNG output, and the names of those
    that no longer describe the equalized values."""
    kept, dropped = [], []
    for kind, data in _png.chunks(path):
        if kind in PNG_STALE:
            dropped.append(kind.decode())
        elif kind not in PNG_OWN:
            kept.append((kind, data))
    return kept, dropped


def _pillow_picture(path):
    pil = optional("PIL.Image", "reading PNG/JPEG images")
    notes = []
    with pil.open(path) as image:
        kind = image.format
        if kind not in ("PNG", "JPEG", "MPO"):
            raise CliError(f"{path} is a {kind} image, not a {path.suffix.lstrip('.')}: "
                           "rename it or convert it to PNG/TIFF")
        layout = {"format": "png" if kind == "PNG" else "jpeg", "mode": image.mode,
                  "path": str(path),
                  "info": {k: image.info[k] for k in ("icc_profile", "exif", "dpi", "comment")
                           if image.info.get(k)}}
        if kind == "PNG":
            header = _png.header(path)
            layout["chunks"], dropped = _png_metadata(path)
            if dropped:
                notes.append(f"{path}: its {'/'.join(dropped)} chunk(s) describe the old "
                             "values and are not written back")
            if header["depth"] == 16 and header["colour"] in (2, 4, 6):
                array = _png.read(path)  # Pillow reads 16-bit colour as 8-bit
                layout["mode"] = {2: "RGB", 4: "LA", 6: "RGBA"}[header["colour"]] + ";16"
                if getattr(image, "n_frames", 1) > 1:
                    raise CliError(f"{path} is an animated 16-bit colour PNG: not supported")
                return Picture(array, (0, 1), 2, layout, notes)
        frames = getattr(image, "n_frames", 1) if kind == "PNG" else 1
        if kind == "MPO":
            notes.append(f"{path}: an MPO (multi-picture) JPEG: only its first picture is read")
        planes, durations = [], []
        for index in range(frames):
            image.seek(index)
            planes.append(_pillow_array(image, path, notes if index == 0 else []))
            durations.append(image.info.get("duration", 0))
        if frames > 1:
            layout["frames"] = {"duration": durations, "loop": image.info.get("loop", 0),
                                "default_image": bool(image.info.get("default_image"))}
    array = planes[0] if frames == 1 else np.stack(planes)
    lead = 1 if frames > 1 else 0
    sample = lead + 2 if array.ndim == lead + 3 else None
    layout["mode"] = {1: "L", 2: "LA", 3: "RGB", 4: layout["mode"] if layout["mode"] == "CMYK"
                      else "RGBA"}[1 if sample is None else array.shape[-1]]
    if array.dtype == np.uint16:
        layout["mode"] = "I;16"
    return Picture(array, (lead, lead + 1), sample, layout, notes)


def _pillow_array(image, path, notes):
    """The values of the current frame: ``(H, W)`` or ``(H, W, C)`` uint8/uint16."""
    mode = image.mode
    if mode == "1":
        notes.append(f"{path}: a 1-bit image, read as 8-bit grey (0 and 255) and written 8-bit")
        image = image.convert("L")
    elif mode in ("P", "PA"):
        transparent = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if transparent else "RGB")
        notes.append(f"{path}: a palette image, equalized and written as "
                     f"{'RGBA' if transparent else 'RGB'}")
    elif mode == "I;16B":
        image = image.convert("I;16")
    array = np.asarray(image)
    if array.dtype == np.int32 and array.size and array.min() >= 0 and array.max() < 65536:
        array = array.astype(np.uint16)
    if array.dtype.kind == "u" and array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype not in (np.uint8, np.uint16):
        raise CliError(f"cannot read {path}: mode {mode} ({array.dtype}) is not supported")
    return array


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

    def __init__(self, path, files, kind="folder", key=None, skipped=()):
        self.path, self.kind, self.files = Path(path), kind, [Path(f) for f in files]
        self.key, self.skipped, self._layouts = key, list(skipped), {}
        first = self.picture(self.files[0])
        self.shape, self.dtype = (len(self.files),) + first.array.shape, first.array.dtype
        self.default_axes = tuple(1 + a for a in first.axes)
        self.sample_axis = None if first.sample_axis is None else first.sample_axis + 1
        self.paths = ([self.path] if kind == "folder" else []) + self.files
        self.notes = []

    def picture(self, path):
        """One image file as a :class:`Picture` (its layout kept for :attr:`layouts`)."""
        picture = load_picture(path, self.key)
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


def zarr_layout(array):
    """What a zarr writer needs to write `array`'s layout back: format version, chunks, shards,
    fill value, attributes, dimension names, compressors and filters."""
    metadata = array.metadata
    layout = {"format": "zarr", "zarr_format": metadata.zarr_format,
              "chunks": tuple(array.chunks), "shards": getattr(array, "shards", None),
              "fill_value": array.fill_value, "attributes": dict(array.attrs),
              "dimension_names": getattr(metadata, "dimension_names", None),
              "compressors": getattr(array, "compressors", None),
              "filters": getattr(array, "filters", None), "order": getattr(array, "order", "C")}
    if metadata.zarr_format == 2:
        layout["chunk_key_encoding"] = {"name": "v2",
                                        "separator": metadata.dimension_separator or "."}
    else:
        layout["chunk_key_encoding"] = metadata.chunk_key_encoding
    return layout


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


def open_source(path, key=None):
    """Open an input for reading in slabs.

    Parameters
    ----------
    path : str or Path
        ``.npy``, ``.npz``, ``.tif``/``.tiff``, ``.png``/``.jpg``/``.jpeg``, a zarr array or
        group, or a folder of PNG/JPEG/TIFF images.
    key : str, optional
        The array inside an ``.npz`` or a zarr group; the series (index) of a TIFF.

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
            if not hasattr(node, "shape"):
                arrays = dict(node.arrays())
                name = _pick(arrays, key, path)
                if dict(node.attrs):
                    notes.append(f"{path}: the group's attributes ({', '.join(sorted(node.attrs))})"
                                 f" are not written: the output is its array {name!r}")
                node = arrays[name]
            source = Source(node, path, "zarr")
            source.layout, source.notes = zarr_layout(node), notes
            return source
        if path.is_dir():
            files, skipped = folder_files(path)
            if not files:
                raise CliError(f"{path} holds no {'/'.join(IMAGE_SUFFIXES)} images"
                               + (f" ({len(skipped)} other entries: {', '.join(skipped[:5])})"
                                  if skipped else ""))
            return FolderSource(path, files, key=key, skipped=skipped)
        if suffix == ".npy":
            return _open_npy(path)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                name = _pick(archive.files, key, path)
                source = Source(archive[name], path, "npz")
                source.key = name  # written under the same name
                return source
        if suffix in TIFF_SUFFIXES:
            return _open_tiff(path, key)
        if suffix in PILLOW_SUFFIXES:
            return FolderSource(path, [path], kind="image")
    except CliError:
        raise
    except Exception as error:
        raise CliError(f"cannot read {path}: {one_line(error)}") from None
    raise CliError(f"{path}: unsupported input; use .npy, .npz, .tif/.tiff, .png/.jpg, a .zarr "
                   "array or a folder of PNG/JPEG/TIFF images")
