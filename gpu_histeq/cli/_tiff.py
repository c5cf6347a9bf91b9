"""TIFF, read and written through tifffile: one home for the format, alone or in a folder.

A reader (:func:`tiff_layout`) accounts for every series, page, sample and pyramid level of a
file and gives the tifffile write keywords that write the same layout back (photometric, extra
samples, planar configuration, resolution, orientation, ICC profile, text tags, ImageJ and OME
metadata); :func:`create_tiff` writes a result with them and checks that it reads back with the
same shape and levels. tifffile warnings and logged errors are errors: a damaged file is
refused rather than partly read.
"""

import json
import logging
import re
import warnings
from pathlib import Path

import numpy as np

from ._cleanup import CliError, one_line, optional

__all__ = ["StrictTiff", "TIFF_SUFFIXES", "create_tiff", "read_levels", "read_tiff",
           "tiff_kwargs", "tiff_layout", "tiff_series", "widen_bilevel"]

TIFF_SUFFIXES = (".tif", ".tiff")

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


class StrictTiff:
    """``with StrictTiff(path) as (tiff, check):`` a TiffFile whose logged errors and warnings
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


def tiff_series(tiff, path, key, option="--key"):
    """The one series to read: the only one, or the one `key` (its index) names; `option` is
    the command-line option that gives `key` (named in the errors)."""
    series = tiff.series
    held = ", ".join(f"{i}: {s.shape} {s.axes} {np.dtype(s.dtype)}" for i, s in enumerate(series))
    if not series:
        raise CliError(f"cannot read {path}: it holds no image")
    if key is None:
        if len(series) > 1:
            raise CliError(f"{path} holds {len(series)} image series ({held}): choose one "
                           f"with {option} 0 to {option} {len(series) - 1}")
        return 0, series[0]
    if not (str(key).isdigit() and int(key) < len(series)):
        raise CliError(f"{option} {key!r}: {path} holds the image series {held}; give the index "
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
            extratags.append((code, "s", 0, tags[code].value.encode(), True))  # UTF-8 kept
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
    elif tiff.is_ome and len(tiff.series) > 1:  # its OME-XML describes every image
        notes.append(f"{path}: one of its {len(tiff.series)} OME images is written, with new "
                     f"OME-XML holding its axes {series.axes!r} only")
        kwargs.update(ome=True, metadata={"axes": series.axes})
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
        kwargs["description"] = description.encode()
    levels = len(getattr(series, "levels", [])) - 1
    if levels > 0 and kwargs.get("imagej"):
        notes.append(f"{path}: its {levels} reduced-resolution level(s) are not written: an "
                     "ImageJ TIFF holds none")
        levels = 0
    if page.compression.name != "NONE":
        notes.append(f"{path}: its {page.compression.name} compression is not kept: the output "
                     "is uncompressed")
    if 34665 in page.tags or 34853 in page.tags:
        notes.append(f"{path}: its EXIF/GPS tags are not written back")
    layout = {"format": "tif", "tiff": kwargs, "path": str(path), "levels": levels}
    return axes, sample_axis, layout, notes, palette


def _read_levels(series, levels, palette):
    """The reduced-resolution levels (SubIFDs) of `series`, as arrays like its own."""
    found = [level.asarray() for level in series.levels[1:levels + 1]]
    if palette is not None:
        found = [expand_palette(level, palette) for level in found]
    return [level.astype(level.dtype.newbyteorder("="), copy=False) for level in found]


def read_levels(source):
    """The reduced-resolution levels of a TIFF `source` (its ``layout["levels"]``)."""
    with StrictTiff(source.path) as (tiff, check):
        _, series = tiff_series(tiff, source.path, source.key)
        palette = series.keyframe.colormap if source.layout["palette"] else None
        found = _read_levels(series, source.layout["levels"], palette)
        check()
    return [widen_bilevel(level, source.path, []) for level in found]


def widen_bilevel(array, path, notes):
    """A 1-bit TIFF's values as 8-bit grey (0 and 255): the library takes no booleans."""
    if array.dtype != np.bool_:
        return array
    notes.append(f"{path}: a 1-bit image, read as 8-bit grey (0 and 255) and written 8-bit")
    return array.astype(np.uint8) * np.uint8(255)


def expand_palette(indices, colormap):
    """Palette indices -> RGB values, last axis (8-bit where the map is 8-bit scaled)."""
    colormap = np.asarray(colormap)
    if np.all(colormap % 257 == 0):
        colormap = (colormap // 257).astype(np.uint8)
    return np.moveaxis(colormap, 0, -1)[indices]


def read_tiff(path, key=None, widen=True, option="--key"):
    """Every page and sample of one series of a TIFF, read whole.

    `widen`: a 1-bit image as 8-bit grey (0 and 255, said); else as booleans (a ``--mask``).
    `option`: the command-line option that gives `key` (named in the errors).

    Returns
    -------
    array : ndarray
        The series (a palette expanded to RGB, 1-bit widened), native byte order.
    axes, sample_axis, layout, notes
        As :func:`tiff_layout`, the layout with its pyramid levels' arrays
        (``layout["level_arrays"]``).
    """
    with StrictTiff(path) as (tiff, check):
        _, series = tiff_series(tiff, path, key, option)
        axes, sample_axis, layout, notes, palette = tiff_layout(tiff, series, path)
        check()
        array = series.asarray()
        layout["level_arrays"] = _read_levels(series, layout["levels"], palette)
        check()
    if palette is not None:
        array = expand_palette(array, palette)
    if widen:  # not for a --mask, which is 1-bit
        array = widen_bilevel(array, path, notes)
        layout["level_arrays"] = [widen_bilevel(level, path, [])
                                  for level in layout["level_arrays"]]
    return array.astype(array.dtype.newbyteorder("="), copy=False), axes, sample_axis, layout, \
        notes


# ----------------------------------------------------------------------------- writing

#: TIFF write keywords of an image file's colour mode: photometric, extra samples.
MODE_TIFF = {"RGB": ("rgb", None), "RGBA": ("rgb", (2,)), "LA": ("minisblack", (2,)),
             "CMYK": ("separated", None)}


#: OME pixel types of NumPy dtypes.
OME_TYPES = {"u1": "uint8", "i1": "int8", "u2": "uint16", "i2": "int16", "u4": "uint32",
             "i4": "int32", "f4": "float", "f8": "double"}


def _ome_pixel_type(xml, was, dtype):
    """The OME-XML `xml` (bytes) with its pixel type changed from `was` to `dtype` (a result of
    another dtype, such as the float of ``--method skimage``)."""
    was, now = np.dtype(was), np.dtype(dtype)
    if was == now or now.str[1:] not in OME_TYPES:
        return xml
    xml = re.sub(rb'(<Pixels\b[^>]*?\bType=")[^"]*"',
                 rb"\g<1>" + OME_TYPES[now.str[1:]].encode() + b'"', xml, count=1)
    return re.sub(rb'(<Pixels\b[^>]*?) SignificantBits="[0-9]*"', rb"\g<1>", xml, count=1)


def tiff_kwargs(layout, shape, dtype):
    """tifffile write keywords giving `layout` back (a TIFF reader's), or an image file's colour
    mode, dpi, ICC profile and EXIF orientation (``layout["orientation"]``), or grey pages
    (MinIsBlack: never RGB guessed from a length of 3 or 4)."""
    layout = layout or {}
    if layout.get("format") == "tif":
        kwargs = dict(layout["tiff"])
        if "ome_dtype" in kwargs:
            kwargs["description"] = _ome_pixel_type(kwargs["description"],
                                                    kwargs.pop("ome_dtype"), dtype)
        return kwargs
    kwargs = {"photometric": "minisblack"}
    mode = layout.get("mode", "").split(";")[0]
    if mode in MODE_TIFF and len(shape) >= 3 and shape[-1] == len(mode):
        photometric, extra = MODE_TIFF[mode]
        kwargs.update(photometric=photometric, planarconfig="contig")
        if extra:
            kwargs["extrasamples"] = extra
    info = layout.get("info", {})
    if info.get("dpi"):
        kwargs.update(resolution=tuple(float(d) for d in info["dpi"]), resolutionunit=2)
    if info.get("icc_profile"):
        kwargs["iccprofile"] = info["icc_profile"]
    if layout.get("orientation"):
        kwargs["extratags"] = [(274, "H", 1, int(layout["orientation"]), True)]
    return kwargs


#: Write keywords of a pyramid level (a SubIFD): its samples, nothing of the file's metadata.
LEVEL_KEYWORDS = ("photometric", "planarconfig", "extrasamples")


def _write_tiff(path, data, what, kwargs, levels):
    """tifffile's imwrite, with the reduced-resolution `levels` (results) as SubIFDs."""
    tifffile = optional("tifffile", "writing TIFF files")
    kwargs = dict(kwargs)
    opened = {name: kwargs.pop(name) for name in ("imagej", "ome") if name in kwargs}
    with tifffile.TiffWriter(path, **opened) as tiff:
        tiff.write(data, **what, **kwargs, **({"subifds": len(levels)} if levels else {}))
        for level in levels:
            tiff.write(level, subfiletype=1,
                       **{k: v for k, v in kwargs.items() if k in LEVEL_KEYWORDS})


def create_tiff(path, data, shape, dtype, layout, notes):
    """Write `data` (or, when None, room for `shape` and `dtype` to be filled later) as a TIFF
    with `layout` and its pyramid levels' results (``layout["level_results"]``); check that it
    reads back with the same shape and levels."""
    tifffile = optional("tifffile", "writing TIFF files")
    kwargs = tiff_kwargs(layout, shape, dtype)
    levels = (layout or {}).get("level_results") or []
    if (layout or {}).get("levels") and not levels:
        notes.append(f"{layout['path']}: its {layout['levels']} reduced-resolution level(s) are "
                     "not written (only images of one stack were processed)")
    what = {} if data is not None else {"shape": shape, "dtype": dtype}
    try:
        _write_tiff(path, data, what, kwargs, levels)
    except (ValueError, TypeError) as error:
        if not (kwargs.get("imagej") or kwargs.get("description")):
            raise CliError(f"cannot write {Path(path).name} as TIFF: {error}") from None
        notes.append(f"{layout['path']}: its ImageJ/OME metadata cannot describe the result "
                     f"({error}); written without it")
        for name in ("imagej", "ome", "description"):
            kwargs.pop(name, None)
        kwargs["metadata"] = {}
        _write_tiff(path, data, what, kwargs, levels)
    with tifffile.TiffFile(path) as tiff:
        written, count = tiff.series[0].shape, len(tiff.series[0].levels)
    if tuple(written) != tuple(shape) or count != len(levels) + 1:
        raise CliError(f"cannot write {Path(path).name}: the TIFF layout reads back as {written}"
                       f" with {count - 1} levels, not {tuple(shape)} with {len(levels)}")
