"""Image files read whole and written back the same way: TIFF (through :mod:`._tiff`), PNG and
JPEG (through Pillow; 16-bit colour PNG through :mod:`._png`).

A :class:`Picture` is one file's values (every page, frame and sample) with where its image axes
and samples lie and its *layout*: what a writer needs to write the same layout and metadata
back. :func:`write_picture` writes a result as its name's format says, keeping what that format
can hold (ICC profile, EXIF with its orientation kept and not applied, dpi, PNG chunks, frame
durations, TIFF tags), saying what it cannot keep, and refusing what it cannot hold (CMYK in a
PNG, alpha or 16 bits in a JPEG, several images in one PNG).
"""

import io
import math
from pathlib import Path

import numpy as np

from . import _png
from ._cleanup import CliError, one_line, optional
from ._tiff import TIFF_SUFFIXES, create_tiff, read_tiff

__all__ = ["Picture", "load_picture", "one_image", "pil_format", "write_picture"]


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


def load_picture(path, key=None, widen=True, option="--key"):
    """Read one TIFF, PNG or JPEG file whole (every page, frame and sample); a 1-bit image as
    8-bit grey (0 and 255, said), or as booleans without `widen` (a ``--mask``). `key` picks a
    TIFF's series (the caller refuses it for other files); `option` is the command-line option
    that gives it, named in the errors.

    Raises
    ------
    CliError
        Naming the file: unreadable, or holding several parts without `key`.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            return Picture(*read_tiff(path, key, widen, option))
        return _pillow_picture(path, widen)
    except CliError:
        raise
    except Exception as error:
        raise CliError(f"cannot read {path}: {one_line(error)}") from None


# ------------------------------------------------------------------------------ reading

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


def _pillow_picture(path, widen=True):
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
            if image.mode in ("P", "PA") and "tRNS" in dropped:  # kept, as the alpha
                dropped.remove("tRNS")
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
            planes.append(_pillow_array(image, path, notes if index == 0 else [], widen))
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


def _pillow_array(image, path, notes, widen=True):
    """The values of the current frame: ``(H, W)`` or ``(H, W, C)`` uint8/uint16."""
    mode = image.mode
    if mode == "1" and not widen:
        return np.asarray(image)
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


# ------------------------------------------------------------------------------ writing

def _png_text(key, value):
    return b"tEXt", key.encode("latin-1", "replace") + b"\0" + value.encode("latin-1", "replace")


def write_picture(path, name, image, layout, notes):
    """Write one image file's result as `name`'s format says, keeping its input's `layout`
    (samples, frames, ICC profile, EXIF, dpi, PNG chunks, TIFF tags); what cannot be kept is
    appended to `notes`; a layout the format cannot hold is refused."""
    layout = layout or {}
    kind = pil_format(name)
    origin = layout.get("format")
    where = layout.get("path", name)
    mode = layout.get("mode", "")
    if kind == "TIFF":
        if origin in ("png", "jpeg"):
            layout = _into_tiff(layout, name, notes)
        create_tiff(path, image, image.shape, image.dtype, layout, notes)
        return
    if origin == "tif":
        layout = _from_tiff(layout, name, notes)
    frames = layout.get("frames")
    tiff = layout.get("tiff", {})
    cmyk = mode == "CMYK" or tiff.get("photometric") == "separated"
    if cmyk and kind != "JPEG":
        raise CliError(f"{where} is CMYK: {name} (PNG) cannot hold CMYK; write a .tif or .jpg")
    if frames is None:
        image = one_image(image, layout, name)
    if tiff.get("photometric") == "miniswhite" and image.dtype.kind == "u":
        notes.append(f"{where}: MinIsWhite (0 is white): its values are written inverted into "
                     f"{name}, which shows them as the TIFF does")
        image = np.iinfo(image.dtype).max - image
    if any(sample not in (1, 2) for sample in tiff.get("extrasamples", ())):
        notes.append(f"{where}: its extra sample (not alpha) is written as the alpha of {name}")
    if kind == "JPEG":
        _write_jpeg(path, name, image, layout, notes, cmyk)
        return
    chunks, info = _png_chunks(layout, notes, where)
    chunks += info.pop("raw", [])
    if image.dtype == np.uint16 and image.ndim == 3 and frames is None:
        _png.write(path, image, chunks)  # 16-bit colour: Pillow has none
        return
    pil = optional("PIL.Image", "writing images")
    pictures = [pil.fromarray(np.ascontiguousarray(plane))
                for plane in (image if frames is not None else [image])]
    encoded = io.BytesIO()
    if frames is not None:
        if image.dtype != np.uint8:
            raise CliError(f"{where}: an animated 16-bit PNG cannot be written")
        # whole frames, each replacing the last (blend: source); disposal "background" keeps
        # Pillow from merging two equal frames into one (it merges only equal disposals)
        pictures[0].save(encoded, format="PNG", save_all=True, append_images=pictures[1:],
                         duration=frames["duration"], loop=frames["loop"], disposal=1, blend=0,
                         default_image=frames.get("default_image", False), **info)
    else:
        pictures[0].save(encoded, format="PNG", **info)
    with open(path, "wb") as file:  # Pillow writes only some chunks: the others go in here
        file.write(_png.splice(encoded.getvalue(), chunks))


def _from_tiff(layout, name, notes):
    """A TIFF layout written as a PNG/JPEG: its ICC profile, resolution (as dpi) and orientation
    (as EXIF) go into Pillow's keywords (``layout["info"]``); what else it holds is said."""
    tiff, info = layout["tiff"], {}
    if tiff.get("iccprofile"):
        info["icc_profile"] = tiff["iccprofile"]
    per_inch = {2: 1.0, 3: 2.54}.get(tiff.get("resolutionunit"))
    if tiff.get("resolution") and per_inch:
        info["dpi"] = tuple(num / den * per_inch for num, den in tiff["resolution"])
    held = [f"tag {code}" for code, *_ in tiff.get("extratags", []) if code not in (274, 305)]
    for code, *_, value, _ in tiff.get("extratags", []):
        if code == 274:
            exif = optional("PIL.Image", "writing EXIF").Exif()
            exif[274] = value
            info["exif"] = exif.tobytes()
    held += [what for what, there in (
        ("description", "description" in tiff), ("ImageJ metadata", tiff.get("imagej")),
        ("OME-XML", "ome" in tiff), ("pyramid levels", layout.get("levels"))) if there]
    if held:
        notes.append(f"{layout['path']}: its {', '.join(held)} cannot be written into {name} "
                     "(its ICC profile, resolution and orientation are)")
    return dict(layout, info=info)


def _into_tiff(layout, name, notes):
    """A PNG/JPEG layout written as a TIFF: its ICC profile, dpi and EXIF orientation become
    TIFF tags (``layout["orientation"]``); what else it holds is said."""
    exif = layout.get("info", {}).get("exif")
    orientation = None
    if exif:
        pil = optional("PIL.Image", "reading EXIF")
        orientation = pil.Exif()
        orientation.load(exif)
        orientation = orientation.get(274)
    if layout["format"] == "png":
        held = {kind.decode() for kind, _ in layout.get("chunks", [])} - {"iCCP", "pHYs"}
    else:
        held = set(layout.get("info", {})) - {"icc_profile", "dpi"}
    if held:
        notes.append(f"{layout['path']}: its {', '.join(sorted(held))} cannot be written into "
                     f"{name} (its ICC profile, resolution and orientation are)")
    return dict(layout, orientation=orientation)


def one_image(image, layout, name):
    """`image` as the ``(H, W)`` or ``(H, W, C)`` a PNG/JPEG holds, or refused: a TIFF's
    pages or planar samples are moved into place; several images are refused."""
    axes, sample = layout.get("axes"), layout.get("sample_axis")
    if axes is None:  # an array without a layout: (H, W) or (H, W, C)
        axes, sample = (0, 1), 2 if image.ndim == 3 else None
    wanted = [*axes] + ([] if sample is None else [sample])
    others = [n for a, n in enumerate(image.shape) if a not in wanted]
    if math.prod(others) != 1 or (sample is not None and image.shape[sample] > 4):
        raise CliError(f"{layout.get('path', name)} holds {image.shape} values: {name} holds one "
                       "image of at most 4 channels; write a .tif (or .npy) instead")
    return np.moveaxis(image, wanted, range(len(wanted))).reshape(
        [image.shape[a] for a in wanted])


def _png_chunks(layout, notes, where):
    """``(chunks, save keywords)`` of a PNG output: a PNG input's ancillary chunks as they were;
    a JPEG input's ICC profile, EXIF (orientation kept, not applied), dpi and comment."""
    if layout.get("format") == "png":
        return list(layout.get("chunks", [])), {}
    info = dict(layout.get("info", {})) if layout.get("format") in ("jpeg", "tif") else {}
    comment = info.pop("comment", None)
    if comment:
        info["raw"] = [_png_text("Comment", comment.decode("latin-1") if isinstance(
            comment, bytes) else comment)]
    return [], info


def _write_jpeg(path, name, image, layout, notes, cmyk):
    pil = optional("PIL.Image", "writing images")
    where = layout.get("path", name)
    if image.dtype != np.uint8:
        raise CliError(f"{where}: JPEG holds 8-bit images, the result is {image.dtype}: write a "
                       ".png or .tif")
    if layout.get("frames") is not None:
        raise CliError(f"{where} is animated ({len(layout['frames']['duration'])} frames): a "
                       "JPEG holds one; write a .png or .tif")
    if image.ndim == 3 and image.shape[-1] in (2,) or (
            image.ndim == 3 and image.shape[-1] == 4 and not cmyk):
        raise CliError(f"{where} has an alpha channel: JPEG holds none; write a .png or .tif")
    info = dict(layout.get("info", {}))
    if layout.get("format") == "png":
        dropped = sorted({kind.decode() for kind, _ in layout.get("chunks", [])
                          if kind not in (b"iCCP", b"eXIf", b"pHYs")})
        if dropped:
            notes.append(f"{where}: its PNG chunk(s) {', '.join(dropped)} are not written into "
                         f"{name} (JPEG)")
    data = np.ascontiguousarray(image)
    if cmyk:
        picture = pil.frombuffer("CMYK", (data.shape[1], data.shape[0]), data.tobytes(), "raw",
                                 "CMYK", 0, 1)
    else:
        picture = pil.fromarray(data)
    picture.save(path, format="JPEG", quality=95, **info)


def pil_format(name):
    return {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF",
            ".tiff": "TIFF"}[Path(name).suffix.lower()]
