"""The no-argument job: equalize a built-in sample, write the result and a before/after figure.

Both files are written under temporary names and moved into place together. An existing file of
the same name is replaced only when it holds exactly what this run wrote (running the demo again
changes nothing) or with ``--force``; anything else is refused, so a user's own
``before_after.png`` is never lost.
"""

import filecmp
from pathlib import Path

import numpy as np

from .. import _sample, equalize_hist
from . import _cleanup
from ._cleanup import CliError
from .commands import operations, pick_device
from .streaming import to_host
from .targets import move_into_place

__all__ = ["demo_results", "run_demo"]


def demo_results(images):
    """Title -> host result of each operation installed, on one sample stack (NumPy or CuPy),
    and the reference image of the rows made against one.

    The first entry is :func:`gpu_histeq.equalize_hist` with its defaults; CLAHE uses
    ``clip_limit=2`` (on 96-pixel images the 8x8 tiles are 12 pixels wide, where OpenCV's
    default 40 leaves the tile histograms unclipped and mostly amplifies noise); histogram
    matching matches every image to the stack's last image, which its row shows (its float64
    result rounded to the images' integer dtype, so that it is drawn on their scale).

    Parameters
    ----------
    images : (N, H, W) or (N, C, H, W) ndarray
        NumPy or CuPy.

    Returns
    -------
    results : dict of str to ndarray
        NumPy results, each shaped like `images`.
    references : dict of str to (H, W) ndarray
        Title (of `results`) -> the NumPy reference image that row was matched to.

    Examples
    --------
    >>> from gpu_histeq import _sample
    >>> results, references = demo_results(_sample.synthetic())
    >>> list(results)[0]
    "equalize_hist (method='opencv', bit-exact with cv2.equalizeHist)"
    >>> [(title, image.shape) for title, image in references.items()]
    [('match_histograms (each image to the reference, the last image)', (96, 96))]
    """
    results = {"equalize_hist (method='opencv', bit-exact with cv2.equalizeHist)":
               to_host(equalize_hist(images))}
    references = {}
    found = operations()
    if "clahe" in found:
        results["clahe (clip_limit=2, tile_grid=(8, 8), as cv2.createCLAHE)"] = to_host(
            found["clahe"](images, 2.0, (8, 8)))
    if "match" in found:
        title = "match_histograms (each image to the reference, the last image)"
        reference = images[-1]
        matched = to_host(found["match"](images, reference))  # float64, as scikit-image's
        host = to_host(reference)
        if host.dtype.kind in "ui":  # shown on the reference's integer scale, not stretched
            info = np.iinfo(host.dtype)
            matched = np.clip(np.rint(matched), info.min, info.max).astype(host.dtype)
        results[title] = matched
        references[title] = host.reshape((-1,) + host.shape[-2:])[0]
    return results, references


def _place(temp, final, force):
    """Move `temp` to `final` unless `final` holds something else (and no --force)."""
    if final.exists() and not force:
        if final.is_file() and filecmp.cmp(temp, final, shallow=False):
            _cleanup.remove(temp)  # the same bytes are already there
            return
        raise CliError(f"{final} exists and differs from this run's result: use --force to "
                       "replace it")
    move_into_place(temp, final, force=True)


#: Where the demo writes without --out-dir (created in the current directory).
DEMO_DIR = "gpu_histeq_demo"


def run_demo(args, say):
    """Equalize a sample stack; write ``before_after.png`` and ``<sample>_equalized.npy``."""
    from ..figure import before_after

    out_dir = Path(args.out_dir or DEMO_DIR)
    if args.out_dir is None and not out_dir.exists():
        out_dir.mkdir()  # the default folder, never the current directory by surprise
    if not out_dir.is_dir():
        raise CliError(f"--out-dir: the output folder {out_dir} does not exist")
    images = _sample.load(args.sample)
    xp = pick_device(args.device)
    results, references = demo_results(xp.asarray(images))
    equalized = next(iter(results.values()))
    array_path = out_dir / f"{args.sample}_equalized.npy"
    figure_path = out_dir / "before_after.png"
    temps = []
    try:
        for final in (array_path, figure_path):
            if final.is_dir():
                raise CliError(f"{final} is a folder: choose another --out-dir")
        array_temp = Path(_cleanup.create_temp(array_path))
        temps.append(array_temp)
        with open(array_temp, "wb") as file:
            np.save(file, equalized)
        figure_temp = Path(_cleanup.create_temp(figure_path))
        temps.append(figure_temp)
        before_after(figure_temp, images, results, references=references)
        for final in (array_path, figure_path):  # check both before moving either
            if final.exists() and not args.force:
                temp = array_temp if final == array_path else figure_temp
                if not (final.is_file() and filecmp.cmp(temp, final, shallow=False)):
                    raise CliError(f"{final} exists and differs from this run's result: use "
                                   "--force to replace it")
        with _cleanup.signals_deferred():  # a signal waits for both, and names them
            for temp, final in ((array_temp, array_path), (figure_temp, figure_path)):
                _place(temp, final, args.force)
                _cleanup.written(final)
    except BaseException:
        for temp in temps:
            _cleanup.remove(temp)
        raise
    device = "GPU (CuPy)" if xp is not np else "CPU (NumPy)"
    say(f"sample {args.sample!r}: {images.shape} {images.dtype}, equalized on the {device}")
    say(f"wrote {array_path}")
    say(f"wrote {figure_path}")
    return 0
