"""What every CLI test checks after a run: nothing temporary left, inputs unchanged."""

import os
from pathlib import Path

from gpu_histeq.cli import main


def leftovers(folder):
    """Temporary files or folders (``.tmp-``, ``.old-``) anywhere under `folder`: a finished,
    failed or interrupted run must leave none."""
    return [os.path.join(root, name) for root, dirs, names in os.walk(folder)
            for name in dirs + names if ".tmp-" in name or ".old-" in name]


def run_cli(capsys, *argv, inputs=(), folder=None):
    """Run ``main(argv)`` in-process; assert the `inputs` did not change and, when `folder` is
    given, that nothing temporary remains under it. Returns ``(status, stdout, stderr)``."""
    before = {path: Path(path).read_bytes() for path in inputs}
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    for path, data in before.items():
        assert Path(path).read_bytes() == data, f"{path} changed"
    if folder is not None:
        assert leftovers(folder) == []
    return status, captured.out, captured.err
