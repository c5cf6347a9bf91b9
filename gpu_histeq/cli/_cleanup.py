"""One-line errors, signals turned into exceptions, and the temporary paths a run must remove.

Every temporary file or folder the CLI creates is registered here the moment it exists (signals
are blocked between its creation and its registration), and removed by whoever aborts the write
and, as a last resort, by :func:`remove_all` when the command ends, whatever the reason: an
error, a signal (SIGINT, SIGTERM, SIGHUP become :class:`Interrupted`), or success (then nothing
is left to remove).
"""

import contextlib
import errno
import importlib
import os
import secrets
import shutil
import signal
import time

PROG = "gpu-histeq"
#: The signals that end a run cleanly: handlers raise Interrupted, cleanup runs, exit 128 + n.
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                if hasattr(signal, name))
TEMP_MARK = ".tmp-"

_temporaries = set()


class CliError(Exception):
    """An error reported as one line on stderr with exit status 1."""


class Interrupted(BaseException):
    """A signal arrived: clean up, then exit with ``128 + signum``.

    A BaseException, like KeyboardInterrupt, so that ``except Exception`` does not swallow it.
    """

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self):
        return signal.Signals(self.signum).name


def one_line(error):
    """An exception's message on one line (its type's name when it has none)."""
    return " ".join(str(error).split()) or type(error).__name__


def optional(module, purpose):
    """Import an optional dependency or fail naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = {"PIL": "Pillow", "PIL.Image": "Pillow"}.get(module, module)
        raise CliError(f"{purpose} needs {package}: pip install 'gpu_histeq[cli]'") from None


_deferral = {"depth": 0, "pending": None, "received": None}


def received_signal():
    """The signal that ended this run, or None: Python may wrap the :class:`Interrupted` a
    handler raises into another exception (a handler that runs inside ``__set_name__``, say,
    while a module is imported), so the top level asks here too."""
    return _deferral["received"]


def _raise(signum, frame):
    # Further signals during the cleanup are ignored: the first one decides the exit status.
    for other in SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    _deferral["received"] = signum
    if _deferral["depth"]:
        _deferral["pending"] = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_raise():
    """Within the block SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (main thread)."""
    _deferral.update(depth=0, pending=None, received=None)
    try:
        previous = {signum: signal.signal(signum, _raise) for signum in SIGNALS}
    except ValueError:  # not the main thread: leave the handlers alone
        previous = {}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def signals_deferred():
    """Run the block whole: a signal arriving meanwhile raises :class:`Interrupted` after it.

    The deferral is in Python, not a signal mask: a process-directed signal may be taken by
    any thread (the worker pool's too), and Python runs its handler in the main thread at the
    next bytecode, wherever that is.
    """
    _deferral["depth"] += 1
    try:
        yield
    finally:
        _deferral["depth"] -= 1
        pending = _deferral["pending"]
        if not _deferral["depth"] and pending is not None:
            _deferral["pending"] = None
            raise Interrupted(pending)


def temp_name(final):
    """A fresh hidden name next to `final`: ``.NAME.tmp-PID-RANDOM[SUFFIX]``."""
    final = os.fspath(final)
    folder, name = os.path.split(final)
    suffix = os.path.splitext(name)[1]
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    return os.path.join(folder, f".{name}{TEMP_MARK}{token}{suffix}")


def create_temp(final, directory=False):
    """Create and register a new temporary file or folder next to `final`; return its path.

    The name is created exclusively (``O_EXCL`` / ``mkdir``), so two runs never share one.
    """
    for _ in range(100):
        path = temp_name(final)
        with signals_deferred():
            try:
                if directory:
                    os.mkdir(path)
                else:
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                continue
            _temporaries.add(path)
        return path
    raise CliError(f"cannot create a temporary file next to {final}")  # pragma: no cover


def register(path):
    """Register a temporary path created elsewhere (inside a registered temporary folder)."""
    _temporaries.add(os.fspath(path))


def forget(path):
    """The path is no longer temporary (it was renamed into place)."""
    _temporaries.discard(os.fspath(path))


def remove(path):
    """Remove a temporary file or folder (no error if it is gone) and forget it."""
    path = os.fspath(path)
    with signals_deferred():
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                # A writer's background thread (zarr's) may still add a file after a failed
                # write: remove again until the folder stays gone.
                for _ in range(20):
                    shutil.rmtree(path, ignore_errors=True)
                    time.sleep(0.01)
                    if not os.path.lexists(path):
                        break
            else:
                os.unlink(path)
        except OSError as error:
            if error.errno != errno.ENOENT:
                raise
        finally:
            _temporaries.discard(path)


def remove_all():
    """Remove every temporary path still registered (the command is ending)."""
    for path in sorted(_temporaries, reverse=True):
        try:
            remove(path)
        except OSError:
            pass
