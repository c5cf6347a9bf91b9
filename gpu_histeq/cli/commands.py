"""The file commands (``equalize``, ``clahe``, ``match``), ``info``, and the device choice.

A command reads every input, writes every output under a temporary name, and moves the outputs
into place only when all of them are complete; any error or signal removes what it wrote.
"""

import sys
import warnings
from pathlib import Path

import numpy as np

from .. import _validate, equalize_hist
from . import _cleanup
from ._cleanup import PROG, CliError, one_line
from .batches import entries, folder_names, make_sink, run_batches, with_levels
from .readers import open_source, read_levels
from .streaming import stream
from .targets import FileTarget, FolderTarget
from .writers import image_name, suffix_kind

__all__ = ["operations", "parse_axes", "pick_device", "probable_colour", "resolve_axes",
           "run_file_command", "run_info"]


def operations():
    """Operations available in this installation: equalize always, clahe/match when present."""
    import gpu_histeq

    found = {"equalize": equalize_hist}
    for name, attribute in (("clahe", "clahe"), ("match", "match_histograms")):
        function = getattr(gpu_histeq, attribute, None)
        if callable(function):
            found[name] = function
    return found


# ---------------------------------------------------------------------------------- devices

def cupy_or_reason():
    try:
        import cupy
    except Exception as error:
        return None, f"CuPy is not importable ({type(error).__name__}: {one_line(error)})"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None, "CuPy sees no CUDA device"
    except Exception as error:
        return None, f"CuPy cannot use a GPU ({type(error).__name__}: {one_line(error)})"
    return cupy, None


def pick_device(choice):
    """The array module for ``--device``: numpy, or cupy for ``gpu`` (and ``auto`` with a GPU)."""
    if choice == "cpu":
        return np
    cupy, reason = cupy_or_reason()
    if cupy is not None:
        return cupy
    if choice == "gpu":
        raise CliError(f"--device gpu needs CuPy and a CUDA GPU: {reason}; install "
                       "'gpu_histeq[cuda12]' (or [cuda13]) on a machine with a GPU, or use "
                       "--device cpu")
    return np


# ------------------------------------------------------------------------------- arguments

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


def _given_channel(args, source):
    """``--channel-axis`` (checked, non-negative) or the C of ``--layout``, or None."""
    ndim = len(source.shape)
    channel = getattr(args, "channel_axis", None)
    if channel is not None:
        if not -ndim <= channel < ndim:
            raise CliError(f"--channel-axis {channel} is out of range for the input's {ndim} "
                           f"axes (shape {source.shape})")
        return channel % ndim
    if args.layout is not None and "C" in args.layout.upper():
        return args.layout.upper().index("C")
    return None


def probable_colour(shape):
    """Whether the library's rule (:func:`gpu_histeq._validate.image_axes`) takes images of
    `shape` without a channel axis for probable colour images (its UserWarning)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _validate.image_axes(None, None, tuple(shape))
    return any(issubclass(w.category, UserWarning) for w in caught)


def _colour_warning(args, source):
    shape = source.shape
    return (f"{source.path} of shape {shape} may hold colour images (a last axis of length "
            f"{shape[-1]}), but without --channel-axis each ({shape[-2]}, {shape[-1]}) plane of "
            "the last two axes is one image: give --channel-axis -1 for colour channels"
            f"{' (--luminance for the luma)' if args.command != 'match' else ''}, or --axes -2,-1 "
            "to keep these planes without this warning")


def resolve_axes(args, source, warn=None):
    """``(axes, channel_axis)`` of `source` (its stacked shape), by the library's one rule.

    ``--axes``/``--layout`` give the image axes; otherwise they are the two trailing axes, or
    the two trailing axes besides the channel axis (:func:`gpu_histeq._validate.image_axes`).
    The channel axis is ``--channel-axis`` or the C of ``--layout``; image files (a folder,
    PNG/JPEG inputs) carry their own: ``(N, H, W, C)`` is per image and channel. With
    ``--luminance`` and none of these, a last axis of length 3 outside the image axes, or one
    the library takes for probable colour, is the RGB axis. A probable colour input without a
    channel axis keeps the library's planes and calls ``warn(line)``.

    Returns
    -------
    axes : tuple of int
        Sorted, non-negative.
    channel_axis : int or None
        Non-negative; what to pass to the library: given, from ``--layout``, or the RGB axis
        of ``--luminance`` (None otherwise: image files' channels lie outside their axes).
    """
    shape, ndim = source.shape, len(source.shape)
    luminance = getattr(args, "luminance", False)
    if args.axes is not None or args.layout is not None:
        axes = parse_axes(args.axes, args.layout, source)
        channel = _given_channel(args, source)
        if (channel is None and luminance and ndim >= 3 and shape[-1] == 3
                and ndim - 1 not in axes):
            channel = ndim - 1
    else:
        channel = _given_channel(args, source)
        # image files and TIFFs say where their axes and samples lie; a grey TIFF stack given
        # --channel-axis holds its channels as pages (e.g. RGB as 3 pages): the axis as given
        own = source.own_axes and not (source.kind == "tif" and source.sample_axis is None
                                       and channel is not None)
        if own:
            if channel is not None and source.sample_axis is None:
                first = getattr(source, "files", [source.path])[0]
                raise CliError(f"--channel-axis {args.channel_axis}: {first} is a grey image of "
                               f"shape {shape[1:]}, without a channel axis")
            if channel is not None or luminance:
                channel = source.sample_axis
        elif channel is None and probable_colour(shape):
            if luminance:
                channel = ndim - 1
            elif warn is not None:
                warn(_colour_warning(args, source))
        if channel is None or own:
            axes = parse_axes(None, None, source)
        else:
            try:
                axes, _ = _validate.image_axes(None, channel, shape)
            except ValueError:
                raise CliError(f"--channel-axis {args.channel_axis}: the input of shape {shape} "
                               "has no two image axes besides it") from None
    if luminance and channel is None:
        raise CliError(f"--luminance needs the RGB axis of the input (shape {shape}): give "
                       "--channel-axis or a --layout with C, e.g. NHWC")
    if channel is not None and channel in axes:
        spatial = tuple(a for a in range(ndim) if a != channel)[-2:]
        raise CliError(f"the channel axis {channel} is one of the image axes {axes}: leave "
                       f"--axes out or give --axes {','.join(map(str, spatial))}")
    return axes, channel


def load_mask(mask_source, shape):
    """``mask(start, stop)`` -> the boolean mask of those rows, broadcast to their shape."""
    if mask_source is None:
        return None
    path = mask_source.path
    if mask_source.dtype != np.bool_:
        raise CliError(f"--mask {path} must be a boolean array, got {mask_source.dtype}")
    mask_shape = mask_source.shape
    try:
        if np.broadcast_shapes(mask_shape, shape) != tuple(shape):
            raise ValueError
    except ValueError:
        raise CliError(f"--mask {path} of shape {mask_shape} does not broadcast to the input's "
                       f"shape {shape}") from None
    if len(mask_shape) == len(shape) and shape and mask_shape[0] == shape[0] > 1:
        def rows(start, stop):  # as large as the input: read by rows, like it
            return np.broadcast_to(mask_source.read(start, stop), (stop - start,) + shape[1:])
        return rows
    whole = np.broadcast_to(mask_source.read_all(), shape)
    return lambda start, stop: whole[start:stop]


# -------------------------------------------------------------------------------- outputs

def _wants_folder(output):
    text = str(output)
    return text.endswith(("/", "\\")) or (Path(text).is_dir() and suffix_kind(text) != "zarr")


def _default_name(source, command):
    path = source.path
    if source.kind == "folder":
        return f"{path.name}_{command}"
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    suffix = Path(image_name(path.name)).suffix if source.kind == "image" else path.suffix
    return f"{stem}_{command}{suffix.lower() if source.kind == 'image' else suffix}"


def plan_outputs(args, sources):
    """``[(source, target, name)]``: where each input's result goes.

    A folder input, several inputs, or an output written as a folder (``out/``, or an existing
    folder) give a FolderTarget; otherwise each input has its own FileTarget.
    """
    output = args.output
    force = args.force
    several = len(sources) > 1
    folder_input = [s for s in sources if s.kind in ("folder", "zarr") and several]
    if folder_input:
        raise CliError(f"{folder_input[0].path} is a folder: with several inputs every input "
                       "must be a file (run a folder on its own)")
    if output is None:
        jobs = []
        for source in sources:
            final = Path(args.out_dir or source.path.parent) / _default_name(source, args.command)
            if source.kind == "folder":
                jobs.append((source, FolderTarget(final, force), None))
            else:
                jobs.append((source, FileTarget(final, force, source.kind == "zarr"
                                                and suffix_kind(final) == "zarr"), final.name))
        finals = [target.final for _, target, _ in jobs]
        for final in finals:
            if finals.count(final) > 1:
                raise CliError(f"two inputs would both write {final}: rename one")
        return jobs
    if several or _wants_folder(output) or (
            sources[0].kind == "folder" and suffix_kind(output) is None):
        target = FolderTarget(Path(output), force)
        jobs = []
        for source in sources:
            if source.kind == "folder":
                jobs.append((source, target, None))
            elif source.kind == "zarr":
                raise CliError(f"{output}: a zarr input is written as one .zarr or file output, "
                               "not into a folder")
            else:
                name = image_name(source.path.name) if source.kind == "image" else source.path.name
                jobs.append((source, target, name))
        names = [name for _, _, name in jobs]
        for name in names:
            if names.count(name) > 1:
                raise CliError(f"two inputs would both write {Path(output) / name}: rename one")
        return jobs
    output = Path(output)
    return [(sources[0], FileTarget(output, force, suffix_kind(output) == "zarr"), output.name)]


# ------------------------------------------------------------------------------- commands

def _colour(args, channel):
    """The library's colour keywords: ``channel_axis`` (when known) and ``luminance``."""
    colour = {} if channel is None else {"channel_axis": channel}
    if getattr(args, "luminance", False):
        colour["luminance"] = "bgr" if getattr(args, "bgr", False) else True
    return colour


def _operation_for(args, found, xp, source, reference, channel):
    """``(operation(slab, mask, axes, start, stop), equalize_options or None)``."""
    colour = _colour(args, channel)
    if args.command == "equalize":
        def operation(slab, mask, axes, start, stop):
            return equalize_hist(slab, args.nbins, axes=axes, mask=mask, method=args.method,
                                 **colour)
        # no chunked form of the luma across images: a dataset-wide table loads them whole
        luminance = colour.get("luminance", False)
        return operation, None if luminance else {"method": args.method, "nbins": args.nbins}
    if args.command == "clahe":
        clahe = found["clahe"]

        def operation(slab, mask, axes, start, stop):
            return clahe(slab, args.clip_limit, args.tile_grid, axes=axes, **colour)
        return operation, None
    match = found["match"]
    whole = reference.read_all()
    if reference.kind == "image":
        whole = whole[0]
    whole = xp.asarray(whole)
    per_image = whole.shape == source.shape

    def operation(slab, mask, axes, start, stop):
        return match(slab, whole[start:stop] if per_image else whole, axes=axes, **colour)
    return operation, None


def _closing(sources):
    for source in sources:
        if source is not None:
            source.close()


def _batched(args, source, name, axes):
    """Whether an input goes through :mod:`.batches`: image files written one per image."""
    return ((source.kind == "image" or (source.kind == "folder" and name is None))
            and 0 not in axes and args.command in ("equalize", "clahe", "match"))


def _per_image_options(args, axes, channel):
    """``(axes, colour)`` of one image of a stacked input (its axes less the first).

    Without ``--channel-axis`` or ``--luminance`` the axes alone keep the channels apart, so
    grey and colour images of one folder share a list call."""
    return tuple(a - 1 for a in axes), _colour(args, None if channel is None else channel - 1)


def _reference_of(xp, reference, sources):
    """``reference(entry)`` for the batched match: the whole reference, or its entry."""
    whole = reference.read_all()
    if reference.kind == "image":
        whole = whole[0]
    whole = xp.asarray(whole)
    per_image = {job: whole.shape == source.shape for job, source in enumerate(sources)}
    return lambda entry: whole[entry.index] if per_image[entry.job] else whole


def _mask_of(mask_source):
    """``mask(entry, shape)`` for the batched equalize: the mask broadcast to that image."""
    return lambda entry, shape: load_mask(mask_source, (1,) + tuple(shape))(0, 1)[0]


def remove_leftovers(targets, warn):
    """Remove what killed runs (SIGKILL, a power cut) left beside or inside these outputs.

    Only entries named exactly as the CLI names its temporaries (``.NAME.tmp-PID-XXXXXXXX``)
    whose process is gone: beside each output, those of its name; inside an output folder,
    those of any name (its entries). A live run's temporaries are never touched.
    """
    for target in targets:
        final = target.final
        stale = _cleanup.stale_temporaries(final.parent, final.name)
        if isinstance(target, FolderTarget) and final.is_dir() and not final.is_symlink():
            stale += _cleanup.stale_temporaries(final)
        for path in stale:
            _cleanup.remove_stale(path)
            warn(f"removed {path}, left by a run that was killed (its process is gone)")


def run_file_command(args, found, say):
    """Run one file command over every input; `say` prints a line unless ``--quiet``.

    Image files (a folder written as images, PNG/JPEG inputs) go through
    :func:`.batches.run_batches`, one library call per chunk of files whatever their sizes;
    arrays (npy, npz, TIFF stacks, zarr) and dataset-wide axes are streamed in slabs.
    """
    def warn(line):
        if not args.quiet:
            print(f"{PROG}: warning: {line}", file=sys.stderr, flush=True)

    opened = []
    targets = []
    fill = getattr(args, "fill_missing_chunks", False)
    if getattr(args, "mask_key", None) is not None and args.mask is None:
        raise CliError(f"--mask-key {args.mask_key!r} picks an array of the --mask input: give "
                       "--mask too")
    try:
        for path in args.inputs:
            opened.append(open_source(path, args.key, fill))
        sources = list(opened)
        mask_source = reference = None
        if getattr(args, "mask", None) is not None:
            mask_source = open_source(args.mask, args.mask_key, fill, mask=True,  # 1-bit: bool
                                      option="--mask-key")
            opened.append(mask_source)
        if getattr(args, "reference", None) is not None:
            reference = open_source(args.reference, args.reference_key, fill,
                                    option="--reference-key")
            opened.append(reference)
        protected = [p for source in opened for p in source.paths]
        jobs = plan_outputs(args, sources)
        for _, target, _ in jobs:
            if target not in targets:
                target.check(protected)
                targets.append(target)
        remove_leftovers(targets, warn)
        xp = pick_device(args.device)
        todo, per_image = [], {}
        for job, (source, target, name) in enumerate(jobs):
            axes, channel = resolve_axes(args, source, warn)
            if _batched(args, source, name, axes):
                per_image[job] = _per_image_options(args, axes, channel)
                todo.extend(entries(job, source, target, name, args.quiet))
                continue
            mask = load_mask(mask_source, source.shape)
            names = [] if source.kind != "folder" else folder_names(source, target, args.quiet,
                                                                    as_files=name is None)
            operation, options = _operation_for(args, found, xp, source, reference, channel)
            source.layout = with_levels(  # a TIFF's pyramid levels, each like the full image
                args, source.layout, lambda source=source: read_levels(source),
                lambda level: operation(xp.asarray(level), None, axes, 0, len(level)),
                source.notes.append)

            def sink_for(shape, dtype, rows, source=source, target=target, name=name,
                         names=names):
                return make_sink(target, name, shape, dtype, rows,
                                 args.key or getattr(source, "key", None), reference, names,
                                 getattr(source, "layouts", source.layout))

            try:
                sink = stream(source, operation, sink_for, axes=axes, mask=mask, xp=xp,
                              chunk_size=args.chunk_size, progress=args.progress,
                              equalize_options=options)
            except OSError as error:
                where = error.filename or target.final
                raise CliError(f"cannot write {where}: {error.strerror or one_line(error)}"
                               ) from None
            for line in source.notes + getattr(sink, "notes", []):
                warn(line)
        shapes = {}
        if todo:
            try:
                shapes = run_batches(
                    args, found, xp, todo, per_image.__getitem__,
                    reference=None if reference is None else _reference_of(xp, reference,
                                                                           sources),
                    mask_for=None if mask_source is None else _mask_of(mask_source))
            except OSError as error:
                raise CliError(f"cannot write {error.filename or 'an output'}: "
                               f"{error.strerror or one_line(error)}") from None
        with _cleanup.signals_deferred():  # a signal waits until every output is in place
            for target in targets:
                target.commit()
                _cleanup.written(target.final)
    except BaseException:
        for target in targets:
            target.abort()
        raise
    finally:
        _closing(opened)
    for job, (source, target, name) in enumerate(jobs):
        written = target.final if name is None or isinstance(target, FileTarget) \
            else target.final / name
        described = f"{source.shape} {source.dtype}"
        if len(shapes.get(job, ())) > 1:
            described = f"{source.rows} images of {len(shapes[job])} sizes, {source.dtype}"
        say(f"{args.command}: {source.path} {described} -> {written}")
    return 0


def run_info(args):
    """Print :func:`gpu_histeq.show_config`'s report and the operations installed."""
    from .._config import config, format_config

    print(format_config(config()))
    print(f"operations: {', '.join(operations())}")
    return 0
