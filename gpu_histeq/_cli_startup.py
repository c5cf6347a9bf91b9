"""The ``gpu-histeq`` process's answer to a signal that arrives while it is still importing.

Imported first by ``gpu_histeq/__init__.py``, before NumPy and the rest (about 0.2 s): in the
``gpu-histeq`` process (the console script, or ``python -m gpu_histeq.cli``) SIGINT, SIGTERM
and SIGHUP then end it with its one line on stderr and exit status 128 + n, as they do once the
command runs (:func:`gpu_histeq.cli.main` installs its own handlers, which clean up). Nothing is
written before the command runs, so the line is true. In any other process (a library user's)
this module does nothing. Imports only the standard library.
"""

import os
import signal
import sys

#: The names the console script is installed under.
SCRIPT_NAMES = ("gpu-histeq", "gpu-histeq.exe", "gpu-histeq-script.py")
MODULES = ("gpu_histeq.cli", "gpu_histeq.cli.__main__")


def is_cli_process(argv=None, orig_argv=None):
    """Whether this process is ``gpu-histeq``: the console script, or ``python -m
    gpu_histeq.cli`` (seen in :data:`sys.orig_argv`, as ``sys.argv[0]`` is still ``-m`` while
    the package imports)."""
    argv = getattr(sys, "argv", []) if argv is None else argv  # embedded: maybe no argv
    orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    if argv and os.path.basename(str(argv[0])) in SCRIPT_NAMES:
        return True
    tokens = iter(orig_argv[1:])
    for token in tokens:
        if token == "-m":
            return next(tokens, None) in MODULES
        if token.startswith("-m"):
            return token[2:] in MODULES
        if token in ("-X", "-W"):  # options with a separate value
            next(tokens, None)
        elif token.startswith("-c") or not token.startswith("-"):  # code or a script: not us
            return False
    return False


def _exit_now(signum, frame):
    name = signal.Signals(signum).name
    os.write(2, f"gpu-histeq: interrupted by {name}; no output written\n".encode())
    os._exit(128 + signum)


def install():
    """In the ``gpu-histeq`` process, end on SIGINT/SIGTERM/SIGHUP at once (one line, exit
    128 + n) until the command installs its handlers; elsewhere leave every handler alone."""
    if not is_cli_process():
        return
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler):
                signal.signal(signum, _exit_now)
        except ValueError:  # pragma: no cover - not the main thread
            return


install()
