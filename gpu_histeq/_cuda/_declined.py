"""What a CUDA entry point answers when its kernels did not produce the whole result: the
convention at the top of :mod:`gpu_histeq._cuda` (imports nothing at import time, so every
entry-point module of the package can use it)."""

#: Every reason an entry point may decline (:class:`Declined`), and the inputs that cause it.
DECLINES = {
    "uncovered": "the kernels do not cover this case (dtype, method, layout or size), decided "
                 "before any launch; nothing written",
    "irregular": "a float plane whose bin centers are less than two smallest normals apart "
                 "(float64 planes a few subnormals wide) or repeat (a constant plane of large "
                 "magnitude with bins narrower than its spacing, e.g. float32 2**19 with 12 "
                 "bins): numpy.interp's own search, which the portable path runs where its "
                 "InterpTable is irregular; found after the kernels ran, `result` partly written",
}


class Declined:
    """The answer of an entry point whose kernels did not produce the whole result (falsy).

    Parameters
    ----------
    reason : str
        A key of :data:`DECLINES`.
    detail : str
        What was not covered, for messages.
    written : bool
        True when the kernels ran and `result` is partly written (to be redone).
    """

    __slots__ = ("reason", "detail", "written")

    def __init__(self, reason, detail="", written=False):
        if reason not in DECLINES:
            raise ValueError(f"`reason` must be one of {sorted(DECLINES)}, got {reason!r}")
        self.reason, self.detail, self.written = reason, detail, written

    def __bool__(self):
        return False

    def __repr__(self):
        return f"Declined({self.reason!r}, {self.detail!r}, written={self.written})"


def _uncovered(detail):
    return Declined("uncovered", detail)


def _uncovered_rows(planes, *others):
    """Why (P, N) `planes` are not covered, or None: they must be non-empty, C-contiguous (and
    so must `others`), with N below the 32-bit count limit."""
    from ._kernels import MAX_PIXELS
    nplanes, npixels = planes.shape
    if not (nplanes > 0 and 0 < npixels <= MAX_PIXELS):
        return _uncovered(f"{nplanes} planes of {npixels} pixels")
    if not all(a is None or a.flags.c_contiguous for a in (planes, *others)):
        return _uncovered("arrays that are not C-contiguous")
    return None
