"""``-`` as an input or an output: a ``.npy`` stream on standard input or output, as Unix tools
take ``-``.

Standard input is spooled to a temporary ``.npy`` file first (the commands read inputs in chunks
with positioned reads, which a pipe cannot give), inside a registered temporary folder, so an
error or a signal removes it. A result for ``-`` is written to a temporary ``.npy`` and copied
to standard output only once complete: a failed run writes nothing there. ``gpu-histeq equalize
-`` alone is a filter (standard input to standard output). With ``-`` as the output the progress
lines are not printed (standard output carries the data); warnings and errors stay on stderr.
"""

import contextlib
import os
import shutil
import sys
import tempfile

from . import _cleanup
from ._cleanup import CliError

__all__ = ["STREAM", "standard_streams"]

#: The name of standard input or output on the command line.
STREAM = "-"
_NPY_MAGIC = b"\x93NUMPY"
_COPY_BYTES = 1 << 20


def _spool(source, path):
    """Copy the ``.npy`` stream `source` (binary) into the file `path`."""
    head = source.read(len(_NPY_MAGIC))
    if head != _NPY_MAGIC:
        raise CliError("-: standard input must be a .npy stream (as numpy.save writes), got "
                       f"{'nothing' if not head else repr(head)}")
    with open(path, "wb") as file:
        file.write(head)
        shutil.copyfileobj(source, file, _COPY_BYTES)


@contextlib.contextmanager
def standard_streams(args, stdin=None, stdout=None):
    """Replace ``-`` in ``args.inputs`` and ``args.output`` by temporary ``.npy`` files for the
    duration of the command; copy the output's file to `stdout` when the command succeeds.

    Parameters
    ----------
    args : argparse.Namespace
        A parsed file command (``inputs``, ``output``, ``out_dir``, ``quiet``); changed in place.
    stdin, stdout : binary file, optional
        ``sys.stdin.buffer`` and ``sys.stdout.buffer`` by default.
    """
    inputs = list(args.inputs)
    if inputs == [STREAM] and args.output is None and getattr(args, "out_dir", None) is None:
        args.output = STREAM  # a filter: standard input in, standard output out
    reads, writes = STREAM in inputs, args.output == STREAM
    if not (reads or writes):
        yield
        return
    if inputs.count(STREAM) > 1:
        raise CliError("-: standard input can be read once only")
    if writes and len(inputs) > 1:
        raise CliError(f"-: standard output takes one result, got {len(inputs)} inputs")
    folder = _cleanup.create_temp(os.path.join(tempfile.gettempdir(), "gpu-histeq-stdio"),
                                  directory=True)
    try:
        if reads:
            spooled = os.path.join(folder, "stdin.npy")
            _spool(stdin or sys.stdin.buffer, spooled)
            args.inputs = [spooled if path == STREAM else path for path in inputs]
        if writes:
            result = os.path.join(folder, "stdout.npy")
            args.output, args.quiet = result, True
        yield
        if writes:
            target = stdout or sys.stdout.buffer
            with open(result, "rb") as file:
                shutil.copyfileobj(file, target, _COPY_BYTES)
            target.flush()
    finally:
        _cleanup.remove(folder)
