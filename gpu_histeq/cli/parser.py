"""The argument parser of ``gpu-histeq``: what people type, and one-line errors naming the option.

* ``gpu-histeq equalize IN OUT`` (like ``cp``), ``-o OUT``, or several inputs (a shell glob)
  with a folder last or after ``-o``; positionals may come after options;
* ``--axes -2,-1`` and ``--channel-axis -1`` (negative values are not taken for options);
* ``--tile-grid 8x8`` or ``8,8``;
* ``-q/--quiet``, ``--force`` (alias ``--overwrite``);
* option help shows each default; an option's bad value is reported under the option's name
  (``argument --clip-limit: ...``), before anything is read.
"""

import argparse
import math
import re
import sys

from .. import __version__, _sample
from ._cleanup import PROG

__all__ = ["build_parser", "parse", "tile_grid"]

_NEGATIVE = re.compile(r"-\d[\d,\s-]*")
_TAKES_NEGATIVE = ("--axes", "--channel-axis")


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help with "(default: ...)" after each option that has a default worth saying
    (not None, False or a suppressed one) and whose help does not already give it."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" in text or default in (None, False, argparse.SUPPRESS)
                or action.option_strings == [] or isinstance(default, bool)):
            return text
        shown = "x".join(map(str, default)) if isinstance(default, tuple) else default
        return f"{text} (default: {shown})".lstrip()


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (exit status 2) and defaults in the help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def tile_grid(text):
    """``"8x8"``, ``"8,8"`` or ``"8"`` -> ``(8, 8)``; the tiles across and down."""
    parts = [p for p in re.split(r"[x,X*\s]+", text.strip()) if p]
    try:
        grid = tuple(int(p) for p in parts)
    except ValueError:
        grid = ()
    if len(grid) == 1:
        grid = grid * 2
    if len(grid) != 2 or min(grid) < 1:
        raise argparse.ArgumentTypeError(
            f"expected two positive integers such as 8x8 or 8,8, got {text!r}")
    return grid


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def clip_limit(text):
    """``"2"`` -> 2.0: OpenCV's clip limit, a finite number >= 0 (0: no clipping)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0 such as 2 or 40 (0: no "
                                         f"clipping), got {text!r}")
    return value


def _join_negative_values(argv):
    """``--axes -2,-1`` -> ``--axes=-2,-1`` so argparse does not take ``-2,-1`` for an option."""
    joined, index = [], 0
    while index < len(argv):
        token = argv[index]
        if (token in _TAKES_NEGATIVE and index + 1 < len(argv)
                and _NEGATIVE.fullmatch(argv[index + 1])):
            joined.append(f"{token}={argv[index + 1]}")
            index += 2
            continue
        joined.append(token)
        index += 1
    return joined


def _common(parser):
    """Options every command takes: quiet and force (also accepted before the command)."""
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print nothing but errors; no progress bar")
    parser.add_argument("-f", "--force", "--overwrite", dest="force", action="store_true",
                        default=argparse.SUPPRESS,
                        help="replace existing outputs (only the files this run writes)")


def _file_usage(command):
    """The usage lines of a file command: one input and its output, or inputs into a folder."""
    return (f"{PROG} {command} [options] INPUT [OUTPUT]\n"
            f"       {PROG} {command} [options] INPUT... FOLDER/\n"
            f"       {PROG} {command} [options] INPUT... (-o OUTPUT | --out-dir FOLDER)")


def _add_file_options(parser, operation):
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="INPUT [OUTPUT], or several INPUTs then the FOLDER they are written "
                        "into. An input: .npy, .npz, .tif/.tiff, .png/.jpg, a .zarr array, or a "
                        "folder of PNG/JPEG/TIFF images")
    parser.add_argument("-o", "--output", help="output: .npy, .npz, .tif, .zarr, .png (one "
                        "image), or a folder (out/); default <input>_" + operation + " in the "
                        "input's format, next to it")
    parser.add_argument("--out-dir", help="folder for the default output names (then every "
                        "positional argument is an input)")
    parser.add_argument("--key", help="the array inside an .npz or a zarr group; the series "
                        "(0, 1, ...) of a TIFF holding several")
    parser.add_argument("--fill-missing-chunks", action="store_true",
                        help="read a zarr input's missing chunks (files, or chunks absent "
                        "inside a shard) as its fill value (refused by default)")
    parser.add_argument("--axes", help="image axes, comma-separated (e.g. -2,-1), or 'all' for "
                        "one table over the whole dataset; default -2,-1, or the two trailing "
                        "axes besides --channel-axis (1,2 for image files: per image and channel)")
    parser.add_argument("--layout", help="axis letters instead of --axes, e.g. NCHW or NHWC: "
                        "H, W (and D, Z) are the image axes")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="where to compute: gpu needs CuPy and a CUDA GPU; auto uses one "
                             "when present")
    parser.add_argument("--chunk-size", type=int, metavar="N",
                        help="entries of the first axis per chunk (default: about 64 MiB)")
    bar = parser.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="progress bar on stderr (default: when stderr is a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false",
                     help="no progress bar")
    _common(parser)


def _add_colour_options(parser, luminance=True):
    """``--channel-axis`` (channels processed each on its own) and, where the library has it,
    ``--luminance``."""
    parser.add_argument("--channel-axis", type=int, metavar="AXIS",
                        help="the colour axis (e.g. -1 for NHWC): each channel on its own, the "
                             "image axes the two trailing axes besides it unless --axes/--layout "
                             "(images read from PNG/JPEG/TIFF files: their own channels)")
    if luminance:
        parser.add_argument("--luminance", action="store_true",
                            help="equalize the luma of RGB images and keep their colours "
                                 "(OpenCV's YCrCb); the RGB axis is --channel-axis, C in "
                                 "--layout, or a last axis of length 3")
        parser.add_argument("--bgr", action="store_true",
                            help="with --luminance: the channels are B, G, R (OpenCV's order, as "
                                 "arrays saved from cv2.imread are), converted as cv2.COLOR_BGR2"
                                 "YCrCb and back")


def build_parser(operations):
    """The argument parser, with the subcommands of the `operations` installed."""
    parser = Parser(
        prog=PROG, description="Batched histogram equalization of image stacks in files. "
        "Without a command: equalize a built-in sample and write a before/after figure.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--out-dir", help="where the no-command demo writes (default: "
                        "./gpu_histeq_demo, created)")
    _common(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    equalize = commands.add_parser("equalize", help="histogram equalization of every image",
                                   usage=_file_usage("equalize"))
    _add_file_options(equalize, "equalize")
    equalize.add_argument("--method", choices=("opencv", "pil", "skimage"),
                          help="whose numbers: opencv (uint8/uint16, default for them), pil "
                               "(uint8), skimage (any dtype, float output)")
    equalize.add_argument("--nbins", type=_positive_int, default=256, metavar="N",
                          help="bins for float input (skimage)")
    equalize.add_argument("--mask", help="boolean .npy broadcastable to the input: histograms "
                                         "count the selected pixels")
    equalize.add_argument("--mask-key", help="the array inside a --mask .npz or zarr group; the "
                                             "series of a --mask TIFF")
    _add_colour_options(equalize)
    if "clahe" in operations:
        clahe = commands.add_parser("clahe", help="contrast limited adaptive equalization "
                                                  "(OpenCV's CLAHE)", usage=_file_usage("clahe"))
        _add_file_options(clahe, "clahe")
        clahe.add_argument("--clip-limit", type=clip_limit, default=40.0, metavar="LIMIT",
                           help="OpenCV's clipLimit: each tile's histogram is capped at LIMIT "
                                "times the tile's mean count per level, the excess spread over "
                                "all levels; 0 disables clipping, 2 to 4 is usual for photographs")
        clahe.add_argument("--tile-grid", type=tile_grid, default=(8, 8), metavar="NxM",
                           help="tiles across and down: 8x8 or 8,8")
        _add_colour_options(clahe)
    if "match" in operations:
        match = commands.add_parser("match", help="match each image's histogram to a reference",
                                    usage=_file_usage("match"))
        _add_file_options(match, "match")
        match.add_argument("--reference", required=True,
                           help="any input: one image file, one array, or a stack shaped like "
                                "the input (one reference per image)")
        match.add_argument("--reference-key", help="the array inside a --reference .npz or zarr "
                                                   "group; the series of a --reference TIFF")
        _add_colour_options(match, luminance=False)

    demo = commands.add_parser("demo", help="equalize a built-in sample; write a figure")
    demo.add_argument("--sample", default="synthetic", choices=_sample.SAMPLES,
                      help="synthetic (NumPy only) or a scikit-image image")
    demo.add_argument("--out-dir", help="output folder (default: ./gpu_histeq_demo, created)")
    demo.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                      help="where to compute: gpu needs CuPy and a CUDA GPU; auto uses one "
                           "when present")
    _common(demo)
    commands.add_parser("info", help="versions, backends and devices found")
    return parser


def parse(argv, operations):
    """Parse `argv` (``sys.argv[1:]`` when None) into a namespace ready to run.

    File commands get ``inputs`` (list) and ``output`` (or None); ``quiet``, ``force`` and
    ``progress`` are always set. Exits with status 2 and one line on a usage error.
    """
    parser = build_parser(operations)
    argv = _join_negative_values(list(sys.argv[1:] if argv is None else argv))
    args, extra = parser.parse_known_args(argv)
    unknown = [token for token in extra if token.startswith("-") and token != "-"]
    if unknown or (extra and not hasattr(args, "paths")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if getattr(args, "bgr", False) and not args.luminance:
        parser.error("--bgr gives the channel order for --luminance: pass both")
    args.quiet = getattr(args, "quiet", False)
    args.force = getattr(args, "force", False)
    if hasattr(args, "paths"):
        paths = args.paths + extra  # positionals after options
        if args.output is not None or len(paths) == 1 or args.out_dir is not None:
            args.inputs, output = paths, args.output
        else:
            args.inputs, output = paths[:-1], paths[-1]
        args.output = output
        if args.quiet:
            args.progress = False
    return args
