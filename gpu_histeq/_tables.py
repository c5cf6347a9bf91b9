"""Counts -> tables: every table of the pipeline, vectorised over planes (and tiles).

* :func:`opencv_lut`, :func:`pil_lut` -- level tables of ``cv2.equalizeHist`` and
  ``PIL.ImageOps.equalize``;
* :func:`cdf_table` and :class:`InterpTable` -- scikit-image's cumulative distribution and the
  :func:`numpy.interp` table through its bin centers;
* :func:`table_maker` -- the tables of one method, as the equalize pipeline asks for them;
* :func:`clahe_opencv_tables`, :func:`clahe_skimage_clip` -- the tile tables of the two CLAHEs.

Every engine reproduces these bit for bit (the compiled C and the CUDA kernels build the same
tables in their own code; the tests compare them).
"""

import numpy as np

from ._backend import is_cupy


def cdf_dtype(dtype):
    """scikit-image's floating type for `dtype`: float32 for float16/32, float64 otherwise."""
    return np.dtype(np.float32) if np.dtype(dtype) in (np.float16, np.float32) else np.dtype(np.float64)


def cdf_table(xp, counts, dtype):
    """``(P, B)`` cumulative fraction ``cumsum / total`` in float64, cast to scikit-image's type."""
    cumulative = xp.cumsum(counts, axis=-1)
    total = xp.maximum(cumulative[..., -1:], 1)
    return (cumulative / total.astype(np.float64)).astype(cdf_dtype(dtype))


def opencv_lut(xp, counts, dtype):
    """``(P, L)`` table of :func:`cv2.equalizeHist` from ``(P, L)`` level counts.

    ``lut[v] = round_half_even(float32(cum[v] - cum[first]) * float32((L - 1) / (total - h[first])))``
    where ``first`` is the lowest level present; a plane with a single level is left unchanged.
    """
    levels = counts.shape[1]
    cumulative = xp.cumsum(counts, axis=1)
    first = xp.argmax(counts > 0, axis=1)[:, None]
    first_count = xp.take_along_axis(counts, first, axis=1)
    spread = cumulative[:, -1:] - first_count
    scale = np.float32(levels - 1) / xp.maximum(spread, 1).astype(np.float32)
    lut = xp.rint((cumulative - first_count).astype(np.float32) * scale)
    lut = xp.clip(lut, 0, levels - 1).astype(dtype)
    return xp.where(spread == 0, xp.arange(levels, dtype=dtype), lut)


def pil_lut(xp, counts):
    """``(P, 256)`` table of :func:`PIL.ImageOps.equalize` from ``(P, 256)`` level counts.

    ``step = (total - h[last]) // 255`` and ``lut[v] = (step // 2 + cum[v - 1]) // step`` clipped
    to 255; a plane with one level, or ``step == 0``, is left unchanged.
    """
    present = counts > 0
    last = counts.shape[1] - 1 - xp.argmax(present[:, ::-1], axis=1)[:, None]
    step = (counts.sum(axis=1, keepdims=True) - xp.take_along_axis(counts, last, axis=1)) // 255
    below = xp.cumsum(counts, axis=1) - counts
    lut = xp.clip((step // 2 + below) // xp.maximum(step, 1), 0, 255).astype(np.uint8)
    unchanged = (present.sum(axis=1, keepdims=True) <= 1) | (step == 0)
    return xp.where(unchanged, xp.arange(256, dtype=np.uint8), lut)


class InterpTable:
    """Per-plane piecewise-linear table: :func:`numpy.interp` through ``(centers, cdf)``.

    Parameters
    ----------
    cdf : (P, B) float ndarray
        Value at each bin center.
    centers : (P, B) float ndarray
        Bin centers, increasing along each row.
    """

    def __init__(self, xp, cdf, centers):
        self.cdf, self.centers = cdf, centers
        values = cdf.astype(np.float64)
        positions = centers.astype(np.float64)
        slopes = xp.zeros_like(values)
        # numpy.interp's slope between neighbouring points; 0 past the last one
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            spacing = positions[:, 1:] - positions[:, :-1]
            slopes[:, :-1] = (values[:, 1:] - values[:, :-1]) / spacing
        self.values, self.positions, self.slopes = values, positions, slopes
        # (P,) bool: planes whose bins a few subnormal units wide may put a value more than one
        # bin from its histogram bin, or whose slopes are not finite (repeated centers):
        # :func:`gather` runs numpy.interp itself there
        tiny = np.finfo(centers.dtype).smallest_normal
        self.irregular = ((spacing < 2 * tiny) | ~xp.isfinite(slopes[:, :-1])).any(axis=1)

    def __getitem__(self, rows):
        table = object.__new__(InterpTable)
        for name in ("cdf", "centers", "values", "positions", "slopes", "irregular"):
            setattr(table, name, getattr(self, name)[rows])
        return table


def table_maker(xp, method, binning, dtype, nplanes):
    """Return ``tables(counts, rows)``: the remap tables of planes `rows` from their counts."""
    if method == "opencv":
        return lambda counts, rows: opencv_lut(xp, counts, dtype)
    if method == "pil":
        return lambda counts, rows: pil_lut(xp, counts)
    if np.dtype(dtype).kind == "f":
        return lambda counts, rows: InterpTable(
            xp, cdf_table(xp, counts, dtype), binning.centers(rows, nplanes))
    # integer skimage: one bin per level, each value lands exactly on its bin center
    return lambda counts, rows: cdf_table(xp, counts, dtype)


# ---------------------------------------------------------------------------------------------
# CLAHE tile tables

def clahe_opencv_clip(xp, hist, limit, area):
    """Clip ``(K, B)`` int64 tile histograms of `area` pixels in place, as OpenCV does.

    Every bin is capped at `limit`; the clipped count ``c`` is spread as ``c // B`` on every
    bin, and the remaining ``r = c % B`` as one more count on bins ``0, s, 2s, ...`` (``r`` of
    them) with ``s = max(B // r, 1)``.
    """
    nbins = hist.shape[-1]
    xp.minimum(hist, limit, out=hist)
    clipped = area - hist.sum(axis=-1, keepdims=True)
    if not is_cupy(xp) and not clipped.any():
        return hist
    batch = clipped // nbins
    residual = clipped - batch * nbins
    hist += batch
    step = xp.maximum(nbins // xp.maximum(residual, 1), 1)
    # bins 0, s, ..., (r - 1) * s: multiples of s below r * s (rows of a precomputed table)
    bins = xp.arange(nbins)
    if nbins <= 256:
        multiples = xp.take(_multiples_table(xp, nbins), step[:, 0], axis=0)
    else:
        multiples = bins % step == 0
    multiples &= bins < residual * step
    hist += multiples
    return hist


_MULTIPLES = {}


def _multiples_table(xp, nbins):
    """``(nbins + 1, nbins)`` bool: ``table[s, i] = (i % s == 0)`` (row 0 unused)."""
    key = (xp.__name__, nbins)
    if key not in _MULTIPLES:
        steps = np.arange(nbins + 1)[:, None]
        _MULTIPLES[key] = xp.asarray(np.arange(nbins)[None, :] % np.maximum(steps, 1) == 0)
    return _MULTIPLES[key]


def clahe_opencv_tables(xp, hist, limit, area):
    """``(K, B)`` float32 tables ``rint(float32(cumsum) * float32((B - 1) / area))``."""
    nbins = hist.shape[-1]
    if limit > 0:
        hist = clahe_opencv_clip(xp, hist, limit, area)
    cumulative = xp.cumsum(hist, axis=-1, out=hist)
    scale = np.float32(nbins - 1) / np.float32(area)
    tables = xp.multiply(cumulative, scale, dtype=np.float32)
    return xp.rint(tables, out=tables)


def clahe_skimage_clip(xp, hist, limit):
    """Clip ``(K, B)`` int64 histograms to `limit` in place, as scikit-image's ``clip_histogram``.

    The first pass is vectorised as is. scikit-image's last step is a loop that adds one count
    to bins under the limit with a data-dependent stride until the excess is spent; here every
    histogram that still has excess takes that step together (a Python loop over steps, with
    the set of active histograms shrinking), so no loop runs over tiles or planes.
    """
    nbins = hist.shape[-1]
    over = hist > limit
    excess = xp.where(over, hist - limit, 0).sum(axis=-1)
    xp.minimum(hist, limit, out=hist)
    increment = excess // nbins
    upper = (limit - increment)[:, None]
    low = hist < upper
    excess -= low.sum(axis=-1) * increment
    hist += low * increment[:, None]
    middle = (hist >= upper) & (hist < limit)
    excess += xp.where(middle, hist - limit, 0).sum(axis=-1)
    hist[middle] = limit

    active = xp.nonzero(excess > 0)[0]  # sync: the remaining loop is data dependent
    if active.size == 0:
        return hist
    work, left = hist[active], excess[active]
    bins = xp.arange(nbins)
    while active.size:
        before = left.copy()
        for start in range(nbins):
            under = work < limit
            step = xp.maximum(under.sum(axis=-1) // left, 1)[:, None]
            picked = under & (bins >= start) & ((bins - start) % step == 0)
            work += picked
            left -= picked.sum(axis=-1)
            finished = left <= 0
            if bool(finished.any()):  # sync: histograms leave the loop once their excess is spent
                hist[active[finished]] = work[finished]
                keep = ~finished
                active, work, left, before = active[keep], work[keep], left[keep], before[keep]
                if active.size == 0:
                    return hist
        stuck = left == before
        hist[active] = work
        keep = ~stuck
        active, work, left = active[keep], work[keep], left[keep]
    return hist
