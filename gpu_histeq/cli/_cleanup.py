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
import re
import secrets
import shutil
import signal
import sys
import time

PROG = "gpu-histeq"
#: The signals that end a run cleanly: handlers raise Interrupted, cleanup runs, exit 128 + n.
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                if hasattr(signal, name))
TEMP_MARK = ".tmp-"

_temporaries = set()
_written = []


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
def signals_raise(program=False):
    """Within the block SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (main thread).

    After it the previous handlers are back; for the `program` (the ``gpu-histeq`` process,
    whose exit status and stderr line are decided when the block ends) the signals are ignored
    instead, so that nothing can contradict that line in the instant before the process exits.
    """
    _deferral.update(depth=0, pending=None, received=None)
    _written.clear()
    try:
        previous = {signum: signal.signal(signum, _raise) for signum in SIGNALS}
    except ValueError:  # not the main thread: leave the handlers alone
        previous = {}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_IGN if program else handler)


def ending():
    """The run's outcome is decided: a signal from now on is recorded, never raised."""
    _deferral["depth"] += 1


def written(path=None):
    """Record `path` as an output moved into place, complete; return those recorded so far
    in this run."""
    if path is not None:
        _written.append(os.fspath(path))
    return list(_written)


def silence_stderr():
    """Send what is still written to stderr (asyncio's "Task was destroyed" lines of a zarr
    thread torn down at exit, unraisable-exception reports) to the null device: the run's one
    line is out, and the process is about to exit."""
    try:
        sys.stderr.flush()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
    except (OSError, ValueError, AttributeError):  # pragma: no cover - stderr already closed
        pass


def exit_now(status):
    """End the process with `status` without Python's exit: no join of the threads that still
    block on an input (zarr's reader threads on a FIFO or a hung network mount, which
    ``concurrent.futures`` joins at exit, so a signalled run would never end). Called after a
    signal only, once the temporary files are removed and the one line is written; the
    standard streams are flushed first."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # pragma: no cover - closed or replaced
            pass
    os._exit(status)


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


#: ``.NAME.tmp-PID-XXXXXXXX[SUFFIX]``, what :func:`temp_name` creates (SUFFIX: NAME's suffix).
_TEMP_PATTERN = re.compile(r"\.(?P<name>.+)" + re.escape(TEMP_MARK)
                           + r"(?P<pid>[1-9][0-9]{0,9})-[0-9a-f]{8}(?P<suffix>(\.[^.]*)?)")


def _alive(pid):
    """Whether process `pid` exists on this machine (one of another user counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def stale_temporaries(folder, name=None):
    """Temporary files or folders in `folder` that a killed run left (SIGKILL, a power cut).

    An entry counts when its whole name is what :func:`temp_name` makes -- for the output
    `name` when given, for any name otherwise -- and the process its PID names is gone; this
    process's own, and every live process's, are never listed.
    """
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    stale = []
    for entry in sorted(entries):
        match = _TEMP_PATTERN.fullmatch(entry)
        if match is None or (name is not None and match["name"] != name):
            continue
        if match["suffix"] != os.path.splitext(match["name"])[1]:
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and not _alive(pid):
            stale.append(os.path.join(folder, entry))
    return stale


def remove_stale(path):
    """Remove a leftover found by :func:`stale_temporaries` (no error if it is gone)."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


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
