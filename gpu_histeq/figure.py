"""Before/after figures as PNG: images next to their histograms, drawn with NumPy alone.

The canvas is a NumPy array and the PNG is written with :mod:`zlib`, so a figure needs no
plotting library; row titles are added with Pillow when it is installed (and left out otherwise).
"""

import os
import struct
import zlib

import numpy as np

__all__ = ["before_after", "render", "write_png"]

_BACKGROUND = 255
_BAR = np.array([70, 70, 70], np.uint8)
_CDF = np.array([230, 120, 20], np.uint8)
_TITLE_HEIGHT = 22


def write_png(path, image):
    """Write an ``(H, W)`` gray or ``(H, W, 3)`` RGB uint8 array as a PNG file.

    Parameters
    ----------
    path : str or os.PathLike
    image : (H, W) or (H, W, 3) uint8 ndarray

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from gpu_histeq.figure import write_png
    >>> path = os.path.join(tempfile.mkdtemp(), "ramp.png")
    >>> write_png(path, np.tile(np.arange(256, dtype=np.uint8), (8, 1)))
    >>> from pathlib import Path
    >>> Path(path).read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"`image` must be (H, W) or (H, W, 3), got shape {image.shape}")
    height, width = image.shape[:2]
    color_type = 2 if image.ndim == 3 else 0
    rows = image.reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    with open(os.fspath(path), "wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                   + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def to_display(image):
    """An image as uint8 for display: uint8 as is, other integers and floats by their range.

    Floats already in ``[0, 1]`` (``method="skimage"`` output) are scaled by 255, not stretched.
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


def _fit(image, size):
    """Nearest-neighbour resize of a 2-d image into a ``size`` x ``size`` box, centred."""
    height, width = image.shape
    scale = size / max(height, width, 1)
    rows = np.minimum((np.arange(max(1, round(height * scale))) / scale).astype(int), height - 1)
    cols = np.minimum((np.arange(max(1, round(width * scale))) / scale).astype(int), width - 1)
    resized = image[rows[:, None], cols[None, :]]
    box = np.full((size, size), _BACKGROUND, np.uint8)
    top, left = (size - resized.shape[0]) // 2, (size - resized.shape[1]) // 2
    box[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
    return box


def _histogram_panel(images, height, width):
    """Bars of the 256-level histogram of `images` (uint8) and their cumulative distribution."""
    panel = np.full((height, width, 3), _BACKGROUND, np.uint8)
    counts = np.bincount(np.asarray(images).ravel(), minlength=256).astype(np.float64)
    margin = 6
    plot_h, plot_w = height - 2 * margin, width - 2 * margin
    bars = np.round(counts / max(counts.max(), 1) * plot_h).astype(int)
    levels = (np.arange(plot_w) * 256) // plot_w
    rows = np.arange(plot_h)[:, None]
    filled = rows >= plot_h - bars[levels][None, :]
    panel[margin:margin + plot_h, margin:margin + plot_w][filled] = _BAR
    cdf = np.cumsum(counts) / max(counts.sum(), 1)
    line = np.clip(np.round((1 - cdf[levels]) * (plot_h - 1)).astype(int), 0, plot_h - 1)
    for dy in (0, 1):
        panel[margin + np.clip(line + dy, 0, plot_h - 1), margin + np.arange(plot_w)] = _CDF
    panel[height - margin, margin:margin + plot_w] = 0  # axis
    return panel


def render(rows, titles=None, columns=4, tile=192):
    """Draw rows of images, each row followed by the histogram of the images shown.

    Parameters
    ----------
    rows : sequence of (N, H, W) arrays
        One stack per row (the original, then each operation's result); the first `columns`
        images of each are shown.
    titles : sequence of str, optional
        A title above each row (drawn when Pillow is installed).
    columns : int
        Images shown per row.
    tile : int
        Side of each image tile in pixels.

    Returns
    -------
    (H, W, 3) uint8 ndarray
    """
    gap = 8
    shown = [to_display(np.asarray(stack).reshape((-1,) + np.asarray(stack).shape[-2:])[:columns])
             for stack in rows]
    count = max(len(images) for images in shown)
    hist_w = int(tile * 1.6)
    row_h = tile + _TITLE_HEIGHT
    height = gap + len(shown) * (row_h + gap)
    width = gap + count * (tile + gap) + hist_w + gap
    canvas = np.full((height, width, 3), _BACKGROUND, np.uint8)
    for r, images in enumerate(shown):
        top = gap + r * (row_h + gap) + _TITLE_HEIGHT
        for c, image in enumerate(images):
            left = gap + c * (tile + gap)
            canvas[top:top + tile, left:left + tile] = _fit(image, tile)[..., None]
        left = gap + count * (tile + gap)
        canvas[top:top + tile, left:left + hist_w] = _histogram_panel(images, tile, hist_w)
    if titles:
        canvas = _draw_titles(canvas, titles, gap, row_h)
    return canvas


def _draw_titles(canvas, titles, gap, row_h):
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        return canvas
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    try:
        font = ImageFont.load_default(size=15)
    except TypeError:  # Pillow < 10.1: one bitmap size
        font = ImageFont.load_default()
    for r, title in enumerate(titles):
        draw.text((gap, gap + r * (row_h + gap) + 2), title, fill=(0, 0, 0), font=font)
    return np.asarray(picture)


def before_after(path, original, results, columns=4, tile=192):
    """Write a before/after PNG: the original images, then each result, with histograms.

    Parameters
    ----------
    path : str or os.PathLike
        The PNG file to write.
    original : (N, H, W) ndarray
    results : dict of str to (N, H, W) ndarray
        Title -> result of one operation on `original`.
    columns, tile : int
        As for :func:`render`.

    Examples
    --------
    >>> import os, tempfile
    >>> from gpu_histeq import equalize_hist
    >>> from gpu_histeq._sample import synthetic
    >>> from gpu_histeq.figure import before_after
    >>> stack = synthetic(2, 32)
    >>> path = os.path.join(tempfile.mkdtemp(), "figure.png")
    >>> before_after(path, stack, {"equalize_hist": equalize_hist(stack)}, tile=48)
    >>> os.path.getsize(path) > 0
    True
    """
    titles = ["original"] + list(results)
    write_png(path, render([original] + list(results.values()), titles, columns, tile))
