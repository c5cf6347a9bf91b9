"""Which engine runs the pipeline: the one switch for the fast paths, read in one place.

Three engines compute the same steps (count, tables, remap) and the same numbers:

* the portable path -- ``bincount`` over per-plane offsets and a ``take`` gather, on NumPy or
  CuPy (the reference every fast path is tested against, bit for bit);
* the compiled CPU path -- C kernels called through ctypes, for NumPy input, when the extension
  was built;
* the CUDA path -- fused CuPy ``RawModule`` kernels, for CuPy input.

The fast paths are on unless the environment says otherwise (``GPU_HISTEQ_PORTABLE=1`` turns
both off, ``GPU_HISTEQ_CUDA=0`` only the CUDA one; read at every call) or the caller is inside
:func:`portable`, the context manager tests and benchmarks use. Nothing else flips them.
"""

import contextlib
import os
import threading

_lock = threading.Lock()
_portable_depth = 0  # process-wide, so that the worker threads of one call see it too


@contextlib.contextmanager
def portable():
    """Within this block every call takes the portable bincount path (process-wide).

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_histeq import _engine, equalize_hist
    >>> with _engine.portable():
    ...     _engine.compiled_enabled(), _engine.cuda_enabled()
    (False, False)
    """
    global _portable_depth
    with _lock:
        _portable_depth += 1
    try:
        yield
    finally:
        with _lock:
            _portable_depth -= 1


def compiled_enabled():
    """True unless the compiled CPU path is switched off (it may still be unbuilt)."""
    return _portable_depth == 0 and os.environ.get("GPU_HISTEQ_PORTABLE") != "1"


def cuda_enabled():
    """True unless the CUDA kernels are switched off."""
    return (_portable_depth == 0 and os.environ.get("GPU_HISTEQ_PORTABLE") != "1"
            and os.environ.get("GPU_HISTEQ_CUDA", "1") != "0")
