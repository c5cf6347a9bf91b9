"""The ``gpu-histeq`` command: equalize image stacks in files, streaming, on the CPU or a GPU.

``gpu-histeq`` with no arguments equalizes a built-in sample stack and writes a before/after
figure and the equalized ``.npy`` into ``./gpu_histeq_demo/`` (created; or ``--out-dir``).

Subcommands
-----------
``equalize INPUT... [OUTPUT]``  histogram equalization (``clahe`` and ``match`` appear when the
                                installed gpu_histeq has them)
``demo``                        the no-argument run, with a choice of sample
``info``                        versions, backends and devices found

Inputs: ``.npy`` (read in chunks with positioned reads, so files larger than RAM or GPU memory
work), ``.npz``, TIFF stacks, PNG/JPEG images, zarr arrays, folders of PNG/JPEG/TIFF images.
Outputs go to temporary names next to their destination and are moved into place only when
complete; an existing output is replaced only with ``--force``; no input is ever written over;
an error or SIGINT/SIGTERM/SIGHUP removes every temporary file and ends with one line on stderr
(exit status 1, or 128 + the signal's number; the line names the outputs already in place). What
a SIGKILL leaves (``.NAME.tmp-PID-XXXXXXXX``) is removed by the next run writing that output.

Image files -- a folder written into a folder of images, or PNG/JPEG inputs -- may have any
sizes: they are read in chunks of about 2**24 values (``--chunk-size N``: N files) and each
chunk's images of one dtype go to :func:`gpu_histeq.equalize_hist` or
:func:`gpu_histeq.match_histograms` as one list (one call per chunk, the per-image results
bit for bit); ``clahe`` takes no lists and is called per image. Written as one array (``.npy``
and the like), a folder's images must share one size and dtype.

Colour: ``--channel-axis N`` processes each channel on its own (``--luminance``: the luma of
RGB, OpenCV's YCrCb); without ``--axes``/``--layout`` the image axes follow the library's rule
(:func:`gpu_histeq._validate.image_axes`: the last two axes, or the two trailing axes besides
the channel axis), and an array that looks like colour images without a channel axis gets one
warning line. Image files keep their own channels apart. Warnings print as one line each.

Dataset-wide equalization (image ``--axes`` that include the first axis, along which files are
chunked) makes two passes over the file -- histograms, then remap -- or three for
``--method skimage`` (ranges first), through the chunked driver shared with Dask
(:func:`gpu_histeq._chunked.equalize_slabs`); the result equals
:func:`gpu_histeq.equalize_hist` on the whole array, bit for bit.

Modules: ``parser`` (arguments), ``commands`` (file commands, ``info``, devices), ``readers``
and ``writers`` (inputs; outputs, slab by slab), ``targets`` (outputs moved into place
atomically), ``streaming`` (slabs, progress),
``batches`` (image files in list calls), ``demo`` (the no-argument job), ``_zarr_force``
(``--force`` over a zarr array), ``_cleanup`` (signals, temporary files, one-line errors).
"""

import os
import signal
import sys
import warnings

from . import _cleanup
from ._cleanup import PROG, CliError, Interrupted, one_line
from .commands import operations, run_file_command, run_info
from .demo import demo_results, run_demo
from .parser import parse
from .stdio import standard_streams

__all__ = ["CliError", "demo_results", "main"]


def _say(args):
    quiet = getattr(args, "quiet", False)

    def say(line):
        if not quiet:
            print(line, flush=True)
    return say


def _warning_lines(quiet):
    """``showwarning`` printing a warning as one line on stderr (not Python's file:line and
    source line); nothing once ``quiet[0]`` is set (``-q``)."""
    def show(message, category, filename, lineno, file=None, line=None):
        if not quiet[0]:
            print(f"{PROG}: warning: {one_line(message)}", file=sys.stderr, flush=True)
    return show


def _interrupted_line(signum):
    """The one line for a run ended by signal `signum`: true about what was written."""
    name = Interrupted(signum).name
    done = _cleanup.written()
    if done:
        return (f"{PROG}: interrupted by {name} after writing {', '.join(done)} (complete); "
                "nothing else was written")
    return f"{PROG}: interrupted by {name}; no output written"


def _failure(error):
    """``(exit status, stderr line)`` for a run that ended with `error` (temporaries removed)."""
    _cleanup.remove_all()
    if isinstance(error, Interrupted):
        return 128 + error.signum, _interrupted_line(error.signum)
    if isinstance(error, KeyboardInterrupt):  # raised by a handler installed before ours
        return 130, _interrupted_line(signal.SIGINT).replace(" by SIGINT", "")
    if not isinstance(error, Exception):
        raise error
    signum = _cleanup.received_signal()
    if signum is not None:  # a signal's Interrupted, wrapped by Python into `error`
        return 128 + signum, _interrupted_line(signum)
    if os.environ.get("GPU_HISTEQ_TRACEBACK"):
        raise error
    return 1, f"{PROG}: error: {one_line(error)}"


def _run(argv, found, quiet):
    try:
        args = parse(argv, found)
    except SystemExit as done:  # --help, --version, or a usage error (one line)
        return done.code if isinstance(done.code, int) else 0 if done.code is None else 2
    say = _say(args)
    quiet[0] = args.quiet
    if args.command in (None, "demo"):
        if args.command is None:
            args.sample, args.device = "synthetic", "auto"
        return run_demo(args, say)
    if args.command == "info":
        return run_info(args)
    with standard_streams(args):  # `-`: a .npy stream on stdin / stdout
        return run_file_command(args, found, _say(args))  # says on the streams it sets


def main(argv=None):
    """Run ``gpu-histeq``; return the exit status.

    0 success, 1 error (one line on stderr), 2 usage error, 128 + n after signal n (SIGINT,
    SIGTERM, SIGHUP), with every temporary file removed; the line names the outputs already
    moved into place when the signal came after them. Warnings print one line each.

    Without `argv` this is the ``gpu-histeq`` process itself (``sys.argv``): once the outcome
    is decided its signals are ignored and nothing more reaches stderr, so the one line stays
    the last word; after a signal it exits at once (:func:`_cleanup.exit_now`). With `argv` (a
    call from Python) the handlers are restored.
    """
    program = argv is None
    found = operations()
    with _cleanup.signals_raise(program), warnings.catch_warnings():
        quiet = [False]
        warnings.showwarning = _warning_lines(quiet)  # the filters stay as the user set them
        line = None
        try:
            try:
                status = _run(argv, found, quiet)
                _cleanup.ending()
            except BaseException as error:
                _cleanup.ending()
                status, line = _failure(error)
        except Interrupted as late:  # arrived between the outcome and ending()
            _cleanup.ending()
            status, line = _failure(late)
        finally:
            _cleanup.ending()
            _cleanup.remove_all()
        if line is not None:
            print(line, file=sys.stderr, flush=True)
        if program:
            _cleanup.silence_stderr()
            if status > 128:  # a signal: end now, whatever threads still block on an input
                _cleanup.exit_now(status)
        return status
