"""Image files of any sizes, in batches: one library call per chunk of files, not per image.

A folder written into a folder of images, and image files (PNG/JPEG) given as inputs, are
read one file at a time into chunks of about :data:`BATCH_PIXELS` values. Each chunk is split
by dtype and image axes (a list shares one dtype) and each part goes to the library in one
call: :func:`gpu_histeq.equalize_hist` and :func:`gpu_histeq.match_histograms` take a list of
arrays of any sizes and return the list of per-image results, equal to the per-image calls bit
for bit (a part of one image is passed as that array: a list of one costs about 0.5 ms more to
set up). ``clahe`` refuses lists, so it is called once per image here.

Outputs go through the same targets and sinks as every other output (temporary names, moved
into place by the caller after every job succeeded), so the data-safety rules do not change.
"""

import sys
from pathlib import Path

import numpy as np

from ._cleanup import CliError, one_line, optional
from .readers import tell
from .streaming import Progress, to_host
from .writers import ImagesSink, Rounded, image_name, open_sink, suffix_kind

__all__ = ["BATCH_PIXELS", "Entry", "entries", "make_sink", "run_batches"]

#: Values (pixels times channels) read per chunk when ``--chunk-size`` is not given.
BATCH_PIXELS = 1 << 24


def make_sink(target, name, shape, dtype, rows, key=None, reference=None, names=None,
              layouts=None):
    """The sink for a result of `shape` and `dtype` written as `name` into `target`.

    ``name=None`` writes one image file per entry of the first axis, named by `names` (a folder
    of images). A float result matched to an 8/16-bit `reference` and written as images is
    rounded to the reference's dtype. `layouts` (one per entry of `names`, or one for `name`)
    are the inputs' layouts and metadata, kept where the output's format can hold them.
    """
    rounded = (reference is not None and np.dtype(dtype).kind == "f"
               and reference.dtype in (np.uint8, np.uint16)
               and (name is None or suffix_kind(name) == "image"))
    if rounded:
        dtype = reference.dtype
    if name is not None and not isinstance(layouts, (dict, type(None))):
        layouts = layouts.stack()  # a folder's files written as one array: their colour mode
    held = held_metadata(layouts) if isinstance(layouts, dict) else []
    if name is not None and suffix_kind(name) in ("npy", "npz") and held:
        note = f"{layouts.get('path', 'the input')}: its {', '.join(held)} " \
            f"cannot be written into {name}"
    else:
        note = None
    if name is None:
        sink = ImagesSink(target, shape, dtype, names, layouts)
    else:
        sink = open_sink(target, name, shape, dtype, rows, key, layouts)
    sink = Rounded(sink) if rounded else sink
    if note:
        sink.notes = getattr(sink, "notes", []) + [note]
    return sink


#: Names of the TIFF tags a reader copies (software, 305, goes without saying).
TAG_NAMES = {269: "DocumentName", 271: "Make", 272: "Model", 274: "Orientation", 285: "PageName",
             306: "DateTime", 315: "Artist", 316: "HostComputer", 332: "InkSet",
             33432: "Copyright"}


def held_metadata(layout):
    """The names of what `layout` (a reader's) holds beyond the values: what a format without
    it (``.npy``, ``.npz``) drops."""
    if not layout or not layout.get("format"):
        return []
    if layout["format"] == "tif":
        tiff = layout["tiff"]
        held = [name for name, there in (
            ("pyramid levels", layout.get("levels")), ("resolution", "resolution" in tiff),
            ("ICC profile", "iccprofile" in tiff), ("ImageJ metadata", tiff.get("imagej")),
            ("OME-XML", "ome" in tiff), ("description", "description" in tiff),
            *((TAG_NAMES.get(tag[0], f"tag {tag[0]}"), True) for tag in tiff.get("extratags", [])
              if tag[0] != 305),
            (tiff["photometric"], tiff["photometric"] not in ("minisblack", "rgb"))) if there]
    elif layout["format"] == "zarr":
        held = [name for name in ("attributes", "dimension_names") if layout.get(name)]
    else:
        held = sorted(layout.get("info", {})) + [k.decode() for k, _ in layout.get("chunks", [])]
        held += ["frame durations"] if layout.get("frames") else []
    return held


def with_levels(args, layout, levels, compute, say):
    """`layout` with the results of its TIFF pyramid levels (``level_results``), each level
    processed like the full image by ``compute(level)``; ``levels()`` reads them. Where an
    option fits only the full-resolution image (``--mask``, ``match``'s reference) the levels
    are not written, and `say` says so."""
    if not layout or not layout.get("levels"):
        return layout
    if args.command == "match" or getattr(args, "mask", None) is not None:
        option = "--reference" if args.command == "match" else "--mask"
        say(f"{layout['path']}: its {layout['levels']} reduced-resolution level(s) are not "
            f"written: {option} fits only the full-resolution image")
        return dict(layout, levels=0)
    return dict(layout, level_results=[to_host(compute(level)) for level in levels()])


class Entry:
    """One image file to process: where it comes from and where its result goes.

    Attributes
    ----------
    job : int
        Index of the input it belongs to (a folder gives one entry per file).
    index : int
        Its position in that input (the first axis of a stacked input).
    path : Path
    source : readers.FolderSource
    target : targets.FileTarget or targets.FolderTarget
    name : str
        Output name inside `target`.
    in_folder : bool
        True for an image of a folder input (written like a folder of images).
    """

    def __init__(self, job, index, path, source, target, name, in_folder):
        self.job, self.index, self.path, self.source = job, index, path, source
        self.target, self.name, self.in_folder = target, name, in_folder


def folder_name(path):
    """The output name of an image file of a folder: the same, PNG for a JPEG (lossless), TIFF
    for a CMYK JPEG (PNG holds no CMYK)."""
    name = image_name(path.name)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        pil = optional("PIL.Image", "reading JPEG images")
        try:
            with pil.open(path) as image:  # the header only
                cmyk = image.mode == "CMYK"
        except Exception as error:
            raise CliError(f"cannot read {path}: {one_line(error)}") from None
        if cmyk:
            name = Path(name).stem + ".tif"
    return name


def folder_names(source, target, quiet, as_files=True):
    """The output names of a folder's image files (:func:`folder_name`), after listing on stderr
    its entries that are not processed. Written as files (`as_files`), two files that would be
    written under one name (``b.jpg`` and ``b.png`` both give ``b.png``) are refused before
    anything is written, with or without ``--force``."""
    if source.skipped:
        tell(quiet, f"{source.path}: {len(source.skipped)} entries are not processed: "
                    f"{', '.join(source.skipped)}")
    if not as_files:
        return []
    names, written = [], {}
    for path in source.files:
        output = folder_name(path)
        other = written.setdefault(output.casefold(), path)
        if other != path:
            raise CliError(f"{other.name} and {path.name} of {source.path} would both be written "
                           f"as {Path(target.final) / output}: rename one (nothing was written)")
        names.append(output)
    return names


def entries(job, source, target, name, quiet=False):
    """The entries of one input: every file of a folder (:func:`folder_names`), or the one
    image file."""
    if source.kind != "folder":
        return [Entry(job, 0, source.files[0], source, target, name, False)]
    return [Entry(job, i, path, source, target, output, True)
            for i, (path, output) in enumerate(zip(source.files,
                                                   folder_names(source, target, quiet)))]


def _chunks(todo, chunk_size):
    """Yield lists of ``(entry, image)``: `chunk_size` files, or about BATCH_PIXELS values.

    Each entry gets the :class:`~.readers.Picture` it was read as (``entry.picture``: its image
    axes, samples and layout; its values are `image`)."""
    chunk, values = [], 0
    for entry in todo:
        entry.picture = entry.source.picture(entry.path)
        image = entry.picture.array
        chunk.append((entry, image))
        values += image.size
        if (len(chunk) >= chunk_size) if chunk_size else values >= BATCH_PIXELS:
            yield chunk
            chunk, values = [], 0
    if chunk:
        yield chunk


def run_batches(args, found, xp, todo, options_for, reference=None, mask_for=None):
    """Process `todo` (a list of :class:`Entry`) in chunks; write each result.

    Parameters
    ----------
    args : argparse.Namespace
        ``command``, ``nbins``, ``method``, ``clip_limit``, ``tile_grid``, ``chunk_size``,
        ``progress``.
    found : dict
        The library functions by command (``equalize``, ``clahe``, ``match``).
    xp : module
        numpy or cupy.
    todo : list of Entry
    options_for : callable
        ``options_for(job)`` -> ``(axes, color)``: the image axes of one image of that input
        (the stacked input's axes less its first axis) and the library's colour keywords
        (``channel_axis``, ``luminance``; ``{}`` without them).
    reference : callable, optional
        ``reference(entry)`` -> the reference array of that image (``match``).
    mask_for : callable, optional
        ``mask_for(entry, shape)`` -> the boolean mask of that image (``equalize --mask``).

    Returns
    -------
    dict
        ``{job: set of image shapes}`` of what was written.
    """
    chunk_size = args.chunk_size
    if chunk_size is not None and chunk_size < 1:
        raise CliError(f"--chunk-size must be a positive number of images, got {chunk_size}")
    shapes = {}
    bar = Progress(args.progress, len(todo), "images")
    try:
        for chunk in _chunks(todo, chunk_size):
            groups = {}
            for entry, image in chunk:  # one list per dtype and axes
                axes, color = _file_options(args, entry, options_for(entry.job))
                key = (image.dtype.str, axes, tuple(sorted(color.items())))
                groups.setdefault(key, []).append((entry, image))
            for (_, axes, color), members in groups.items():
                try:
                    results = _compute(args, found, xp, members, axes, dict(color), reference,
                                       mask_for)
                except (TypeError, ValueError):
                    if len(members) == 1:
                        raise CliError(f"{members[0][0].path}: {one_line(sys.exc_info()[1])}"
                                       ) from None
                    _name_the_file(args, found, xp, members, axes, dict(color), reference,
                                   mask_for)
                    raise
                for (entry, image), result in zip(members, results):
                    layout = entry.picture.layout
                    entry.picture.layout = with_levels(
                        args, layout, lambda layout=layout: layout.pop("level_arrays"),
                        lambda level, entry=entry: _compute(
                            args, found, xp, [(entry, level)], axes, dict(color), reference,
                            None)[0],
                        entry.picture.notes.append)
                    _write(args, entry, to_host(result), reference)
                    shapes.setdefault(entry.job, set()).add(image.shape)
                    bar.update(1)
    finally:
        bar.close()
    return shapes


def _file_options(args, entry, options):
    """``(axes, colour)`` of one image file: the H and W of what it holds (pages, frames,
    samples) unless ``--axes``/``--layout`` say otherwise; the channel axis of
    ``--channel-axis``/``--luminance`` is its samples."""
    axes, color = options
    if args.axes is not None or args.layout is not None:
        return axes, color
    picture = entry.picture
    if "channel_axis" in color:
        if picture.sample_axis is None:
            raise CliError(f"{entry.path}: a grey image of shape {picture.array.shape}, without "
                           "a channel axis (--channel-axis/--luminance)")
        color = dict(color, channel_axis=picture.sample_axis)
    return picture.axes, color


def _name_the_file(args, found, xp, members, axes, color, reference, mask_for):
    """After a list call failed: find the first image that fails alone and name its file."""
    for member in members:
        try:
            _compute(args, found, xp, [member], axes, color, reference, mask_for)
        except (TypeError, ValueError) as error:
            raise CliError(f"{member[0].path}: {one_line(error)}") from None


def _compute(args, found, xp, members, axes, color, reference, mask_for):
    """The results of one group (one dtype and axes): one list call, or one call for a group
    of one image (the single-array call gives the same result without the list's setup)."""
    images = [xp.asarray(image) for _, image in members]
    single = len(images) == 1
    if args.command == "equalize":
        masks = None
        if mask_for is not None:
            masks = [xp.asarray(mask_for(entry, image.shape)) for entry, image in members]
        results = found["equalize"](images[0] if single else images, args.nbins,
                                    method=args.method, axes=axes,
                                    mask=masks[0] if single and masks else masks, **color)
        return [results] if single else results
    if args.command == "match":
        references = [reference(entry) for entry, _ in members]
        shared = all(r is references[0] for r in references)
        if single:
            return [found["match"](images[0], references[0], axes=axes, **color)]
        return found["match"](images, references[0] if shared else references, axes=axes,
                              **color)
    clahe = found["clahe"]  # refuses lists: one call per image
    return [clahe(image, args.clip_limit, args.tile_grid, axes=axes, **color)
            for image in images]


def _write(args, entry, result, reference):
    shape = (1,) + result.shape
    ref = None if reference is None else reference(entry)
    layout = entry.picture.layout
    if entry.in_folder:
        sink = make_sink(entry.target, None, shape, result.dtype, 1, reference=ref,
                         names=[entry.name], layouts=[layout])
    else:
        sink = make_sink(entry.target, entry.name, shape, result.dtype, 1,
                         args.key or getattr(entry.source, "key", None), reference=ref,
                         layouts=layout)
    try:
        sink.write(0, 1, result[None])
        sink.finish()
    except BaseException:
        sink.close()
        raise
    for line in entry.picture.notes + getattr(sink, "notes", []):
        tell(args.quiet, line)
