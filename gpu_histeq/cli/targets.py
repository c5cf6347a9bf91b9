"""Where an output goes and how it is moved into place: written under a temporary name, moved
whole. A *target* (:class:`FileTarget`, :class:`FolderTarget`) gives a sink (:mod:`.writers`)
the path to write and moves the finished output into place. Nothing of the user's is replaced
without ``--force``:

* a file output is created exclusively (``os.link`` of the finished temporary file, which fails
  if the name exists), so of several runs writing one output one wins and the others fail;
  with ``--force`` it is renamed over the old file (``os.replace``, atomic);
* a folder output that does not exist or is empty is written as a temporary folder and renamed
  into place (a rename fails over a non-empty folder: again one run wins); with ``--force`` a
  non-empty folder receives only the files the run writes, each renamed over its old one;
* a zarr output is written as a folder and renamed into place; with ``--force`` over an
  existing zarr array, only the array's own entries (metadata, chunks) are replaced, and
  every other file of that folder is kept.
"""

import ctypes
import errno
import os
from pathlib import Path

from . import _cleanup
from ._cleanup import CliError
from ._zarr_force import replace_zarr_array

__all__ = ["FileTarget", "FolderTarget", "move_into_place", "refuse_inputs"]

ZARR_MARKERS = (".zarray", "zarr.json", ".zgroup")


def _exists(path):
    return os.path.lexists(path)


def _nonempty_dir(path):
    if not os.path.isdir(path):
        return False
    with os.scandir(path) as entries:
        return any(True for _ in entries)


def _same(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_inputs(output, inputs):
    """Raise if writing `output` could touch one of `inputs` (any spelling, link or hard link).

    An output folder that is, or holds, an input is refused too.
    """
    real_output = os.path.realpath(output)
    for path in inputs:
        if _exists(output) and _same(path, output):
            raise CliError(f"refusing to overwrite the input {path}: choose another output")
        real = os.path.realpath(path)
        if real.startswith(real_output.rstrip(os.sep) + os.sep):
            raise CliError(f"refusing to write the folder {output}: it holds the input {path}")
        if os.path.isdir(path) and real_output.startswith(real.rstrip(os.sep) + os.sep):
            raise CliError(f"refusing to write {output} inside the input folder {path}: choose "
                           "an output outside it")


def _renameat2_exchange():
    """``renameat2(..., RENAME_EXCHANGE)`` from the C library, or None."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _exchange(a, b):
    """Swap two paths atomically; False where the system cannot."""
    function = _renameat2_exchange()
    if function is None:
        return False
    at_cwd, rename_exchange = -100, 2
    if function(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), rename_exchange) == 0:
        return True
    if ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(b))


def move_into_place(temp, final, force, directory=False):
    """Move the finished `temp` to `final`: exclusively, or replacing it with `force`."""
    temp, final = os.fspath(temp), os.fspath(final)
    taken = CliError(f"{final} exists (written meanwhile by another run?): nothing was "
                     "replaced; use --force to replace it")
    if directory:
        try:
            os.rename(temp, final)  # over nothing or an empty folder
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR,
                                   errno.EISDIR):
                raise
            if not force:
                raise taken from None
            if not _exchange(temp, final):  # old systems: move the old one aside first
                aside = _cleanup.create_temp(final, directory=True)
                os.rename(final, aside)
                os.rename(temp, final)
                temp = aside
            _cleanup.remove(temp)  # now the old output
        _cleanup.forget(temp)
        return
    if force:
        os.replace(temp, final)
        _cleanup.forget(temp)
        return
    try:
        os.link(temp, final)
    except FileExistsError:
        raise taken from None
    except OSError as error:  # a file system without hard links: check, then rename
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK,
                               errno.ENOSYS):
            raise
        if _exists(final):
            raise taken from None
        os.rename(temp, final)
        _cleanup.forget(temp)
        return
    _cleanup.remove(temp)


class FileTarget:
    """One output file, or a zarr folder replaced whole.

    Parameters
    ----------
    final : Path
    force : bool
    directory : bool
        True for a zarr output.
    """

    def __init__(self, final, force, directory=False):
        self.final, self.force, self.directory = Path(final), force, directory
        self.temp = None

    def check(self, inputs):
        """Refuse before any work: an input, a missing folder, an existing output."""
        final = self.final
        refuse_inputs(final, inputs)
        parent = final.parent
        if not parent.is_dir():
            raise CliError(f"the output folder {parent} does not exist")
        if self.directory:
            if _exists(final) and not final.is_dir():
                raise CliError(f"{final} exists and is not a folder: choose another output")
            if _nonempty_dir(final):
                if not any((final / name).exists() for name in ZARR_MARKERS):
                    raise CliError(f"{final} is a folder that is not a zarr array: refusing "
                                   "to replace it")
                if not self.force:
                    raise CliError(f"{final} exists: use --force to replace it")
        elif _exists(final):
            if os.path.isdir(final):
                raise CliError(f"{final} is a folder: choose a file name for the output")
            if not self.force:
                raise CliError(f"{final} exists: use --force to replace it")

    def path(self, name=None):
        """Create the temporary file (or folder) and return its path."""
        self.temp = Path(_cleanup.create_temp(self.final, self.directory))
        return self.temp

    def commit(self):
        if self.temp is not None:
            if self.directory and self.force and _nonempty_dir(self.final):
                replace_zarr_array(self.temp, self.final)
            else:
                move_into_place(self.temp, self.final, self.force, self.directory)
            self.temp = None

    def abort(self):
        if self.temp is not None:
            _cleanup.remove(self.temp)
            self.temp = None


class FolderTarget:
    """An output folder receiving named entries (image files, or one file per input).

    A missing or empty folder is built as a temporary folder and renamed into place; a
    non-empty one (only with ``--force``) receives each entry under a temporary name that is
    renamed over the old entry on commit. Files the run does not write are never touched.
    """

    def __init__(self, final, force):
        self.final, self.force = Path(final), force
        self.temp, self.entries, self.in_place = None, [], False

    def check(self, inputs):
        final = self.final
        refuse_inputs(final, inputs)
        self.inputs = list(inputs)
        if not final.parent.is_dir():
            raise CliError(f"the output folder {final.parent} does not exist")
        if _exists(final) and not final.is_dir():
            raise CliError(f"{final} exists and is not a folder: choose another output")
        if _nonempty_dir(final) and not self.force:
            raise CliError(f"the output folder {final} is not empty: use --force to write "
                           "into it (only the files this run writes are replaced)")
        # Decided now: without --force the folder is always built aside and renamed into place,
        # which fails if another run filled it meanwhile.
        self.in_place = self.force and _nonempty_dir(final)

    def path(self, name):
        """Where entry `name` is written (a file, created empty)."""
        if self.temp is None and not self.entries and not self.in_place:
            self.temp = Path(_cleanup.create_temp(self.final, directory=True))
        if self.temp is not None:
            path = self.temp / name
            path.touch(exist_ok=False)
            return path
        final = self.final / name
        for source in self.inputs:
            if _exists(final) and _same(source, final):
                raise CliError(f"refusing to overwrite the input {source} (it is {final})")
        if final.is_dir() and not final.is_symlink():
            raise CliError(f"{final} is a folder: refusing to replace it")
        temp = Path(_cleanup.create_temp(final))
        self.entries.append((temp, final))
        return temp

    def commit(self):
        if self.temp is not None:
            try:
                move_into_place(self.temp, self.final, force=False, directory=True)
            except CliError:
                if not self.force:
                    raise
                # --force, and another run filled the folder meanwhile: move the entries in
                self.entries = [(self.temp / name, self.final / name)
                                for name in sorted(os.listdir(self.temp))]
                for temp, final in self.entries:
                    move_into_place(temp, final, force=True)
                self.entries = []
                _cleanup.remove(self.temp)
            self.temp = None
        for temp, final in self.entries:
            move_into_place(temp, final, force=True)
        self.entries = []

    def abort(self):
        if self.temp is not None:
            _cleanup.remove(self.temp)
            self.temp = None
        for temp, _ in self.entries:
            _cleanup.remove(temp)
        self.entries = []
