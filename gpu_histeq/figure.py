"""Before/after figures drawn with matplotlib: images next to their histograms and CDFs.

One titled row per stack: the original, then each operation's result. Beside the images of a
row, their 256-level histogram (left axis, percent of pixels) and cumulative distribution
(right axis); rows after the first also show the original's histogram and CDF in gray, so
each method is compared with what it started from. A row made against a reference (histogram
matching) shows that reference image last, framed, and its CDF dotted. Drawn on matplotlib's Agg canvas (no
display, no ``pyplot`` state); needs ``pip install "gpu_histeq[plot]"``.
"""

import os

import numpy as np

__all__ = ["before_after", "figure", "to_display"]

DPI = 100
_CDF_COLOR = "tab:orange"
_BAR_COLOR = "tab:blue"
_ORIGINAL_COLOR = "0.55"
_REFERENCE_COLOR = "tab:green"


def _matplotlib():
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "the before/after figure needs matplotlib: pip install \"gpu_histeq[plot]\" "
            f"(or pip install matplotlib); importing it failed: {error}") from None
    return matplotlib


def to_display(image):
    """An image as uint8 for display: uint8 as is, other integers and floats by their range.

    Floats already in ``[0, 1]`` (``method="skimage"`` output) are scaled by 255, not stretched;
    uint16 keeps its high byte.

    Parameters
    ----------
    image : ndarray
        Any shape, any real dtype.

    Returns
    -------
    uint8 ndarray
        Same shape.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq.figure import to_display
    >>> to_display(np.array([0.0, 0.5, 1.0])).tolist()
    [0, 128, 255]
    >>> to_display(np.array([256, 65535], np.uint16)).tolist()
    [1, 255]
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind == "u" and image.dtype.itemsize == 2:
        return (image >> 8).astype(np.uint8)
    values = image.astype(np.float64)
    low, high = (0.0, 1.0) if values.size and values.min() >= 0 and values.max() <= 1 else (
        (float(values.min()), float(values.max())) if values.size else (0.0, 1.0))
    scaled = (values - low) / max(high - low, 1e-12)
    return np.clip(np.round(scaled * 255), 0, 255).astype(np.uint8)


def _as_images(stack, columns):
    """The first `columns` 2-d images of a ``(..., H, W)`` stack, as uint8 on the host."""
    stack = np.asarray(stack.get() if hasattr(stack, "get") else stack)
    if stack.ndim < 2:
        raise ValueError(f"each stack must be (..., H, W), got shape {stack.shape}")
    return to_display(stack.reshape((-1,) + stack.shape[-2:])[:columns])


def _distribution(images):
    """Percent of pixels at each of the 256 levels, and the cumulative fraction."""
    counts = np.bincount(images.ravel(), minlength=256).astype(np.float64)
    total = max(counts.sum(), 1.0)
    return counts / total * 100, np.cumsum(counts) / total


def _histogram_panel(axes, images, reference, target=None):
    """Histogram bars (left axis) and CDF (right axis) of `images`; `reference` (the original)
    in gray; the CDF of `target` (a matching reference image), if any, dotted."""
    edges = np.arange(257) - 0.5
    percent, cdf = _distribution(images)
    handles = []
    if reference is not None:
        ref_percent, ref_cdf = _distribution(reference)
        handles.append(axes.stairs(ref_percent, edges, color=_ORIGINAL_COLOR, linewidth=1,
                                   label="original: histogram"))
    handles.append(axes.stairs(percent, edges, fill=True, color=_BAR_COLOR, alpha=0.8,
                               label="histogram"))
    axes.set_xlim(-0.5, 255.5)
    axes.set_xticks([0, 64, 128, 192, 255])
    top = max(percent.max(), 0 if reference is None else ref_percent.max())
    axes.set_ylim(0, 1.5 * top if top > 0 else 1)  # headroom above the bars for the legend
    axes.set_xlabel("level (uint8 display value)")
    axes.set_ylabel("pixels (%)")
    cdf_axes = axes.twinx()
    levels = np.arange(256)
    if reference is not None:
        handles.append(cdf_axes.plot(levels, ref_cdf, color=_ORIGINAL_COLOR, linestyle="--",
                                     linewidth=1.2, label="original: CDF")[0])
    if target is not None:
        handles.append(cdf_axes.plot(levels, _distribution(target)[1], color=_REFERENCE_COLOR,
                                     linestyle=":", linewidth=2, label="reference: CDF")[0])
    handles.append(cdf_axes.plot(levels, cdf, color=_CDF_COLOR, linewidth=2,
                                 label="CDF")[0])
    cdf_axes.set_ylim(0, 1.02)
    cdf_axes.set_yticks([0, 0.25, 0.5, 0.75, 1])
    cdf_axes.set_ylabel("cumulative fraction", color=_CDF_COLOR)
    cdf_axes.tick_params(axis="y", colors=_CDF_COLOR)
    axes.legend(handles=handles, loc="upper left", fontsize="small", framealpha=0.9)
    axes.grid(axis="x", alpha=0.3)


def figure(original, results, columns=4, tile=192, *, references=None):
    """Draw the original images and each result, every row with its histogram and CDF.

    Parameters
    ----------
    original : (..., H, W) ndarray
        A stack of grayscale images (NumPy or CuPy); its first `columns` images are shown.
    results : dict of str to (..., H, W) ndarray
        Row title -> result of one operation on `original` (same number of images).
    columns : int
        Images shown per row.
    tile : int
        Side of each image in pixels (at 100 dpi).
    references : dict of str to (H, W) ndarray, optional
        Row title -> the reference image that row was made against (``match_histograms``):
        shown after the row's images, titled "reference", with its CDF dotted in the histogram
        panel.

    Returns
    -------
    matplotlib.figure.Figure
        On an Agg canvas; ``.savefig(path)`` writes it.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If a stack has fewer than two dimensions, or `columns` or `tile` is not positive, or
        `references` names a row that is not in `results`.

    Examples
    --------
    >>> from gpu_histeq import equalize_hist
    >>> from gpu_histeq._sample import synthetic
    >>> from gpu_histeq.figure import figure
    >>> stack = synthetic(2, 32)
    >>> fig = figure(stack, {"equalize_hist": equalize_hist(stack)}, tile=96)
    >>> [sub.get_suptitle() for sub in fig.subfigs]
    ['original (2, 32, 32) uint8', 'equalize_hist']
    """
    if int(columns) < 1 or int(tile) < 1:
        raise ValueError(f"`columns` and `tile` must be positive, got {columns!r} and {tile!r}")
    references = dict(references or {})
    unknown = [title for title in references if title not in results]
    if unknown:
        raise ValueError(f"`references` names rows that are not in `results`: {unknown!r}")
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shape, dtype = np.shape(original), getattr(original, "dtype", "")
    titles = [f"original {shape} {dtype}".rstrip()] + [str(title) for title in results]
    shown = [_as_images(original, columns)] + [_as_images(r, columns) for r in results.values()]
    count = max(len(images) for images in shown)
    targets = [None] + [_as_images(references[title], 1)[0] if title in references else None
                        for title in results]
    slots = count + bool(references)  # one more column for the references
    image_inches = tile / DPI
    hist_inches = max(2.4 * image_inches, 4.8)
    row_inches = max(image_inches, 1.9) + 0.9  # the row title above, the axis labels below
    fig = Figure(figsize=(slots * (image_inches + 0.1) + hist_inches + 1.6,
                          len(shown) * row_inches + 0.5), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(f"gpu_histeq: before and after (the first {count} images of each stack)",
                 fontsize="x-large", fontweight="bold")
    rows = np.atleast_1d(fig.subfigures(len(shown), 1))
    for row, title, images, target in zip(rows, titles, shown, targets):
        row.suptitle(title, x=0.01, horizontalalignment="left", fontsize="large",
                     fontweight="bold")
        grid = row.add_gridspec(1, slots + 1,
                                width_ratios=[image_inches] * slots + [hist_inches])
        for c in range(slots):
            axes = row.add_subplot(grid[0, c])
            axes.set_axis_off()
            if c < len(images):
                axes.imshow(images[c], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            elif c == count and target is not None:
                axes.imshow(target, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                axes.set_title("reference", fontsize="medium", color=_REFERENCE_COLOR)
                axes.set_axis_on()  # a frame (no ticks) sets the reference apart
                axes.set_xticks([])
                axes.set_yticks([])
                for spine in axes.spines.values():
                    spine.set_edgecolor(_REFERENCE_COLOR)
                    spine.set_linewidth(3)
        _histogram_panel(row.add_subplot(grid[0, slots]), images,
                         shown[0] if images is not shown[0] else None, target)
    return fig


def before_after(path, original, results, columns=4, tile=192, *, references=None):
    """Write a before/after PNG: the original images, then each result, with histograms.

    Parameters
    ----------
    path : str or os.PathLike
        The PNG file to write (written as PNG whatever its suffix).
    original : (..., H, W) ndarray
    results : dict of str to (..., H, W) ndarray
        Title -> result of one operation on `original`.
    columns, tile : int
        As for :func:`figure`.
    references : dict of str to (H, W) ndarray, optional
        As for :func:`figure`: the reference image of a row, shown in it.

    Examples
    --------
    >>> import os, tempfile
    >>> from gpu_histeq import equalize_hist
    >>> from gpu_histeq._sample import synthetic
    >>> from gpu_histeq.figure import before_after
    >>> stack = synthetic(2, 32)
    >>> path = os.path.join(tempfile.mkdtemp(), "figure.png")
    >>> before_after(path, stack, {"equalize_hist": equalize_hist(stack)}, tile=48)
    >>> from pathlib import Path
    >>> Path(path).read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    fig = figure(original, results, columns, tile, references=references)
    fig.savefig(os.fspath(path), format="png", dpi=DPI, facecolor="white")
