"""Batched histogram equalization on NumPy and CuPy arrays: many images, one call.

The public functions, each wrapped once here by :func:`gpu_histeq._interop.adapt` so that Dask
arrays, torch tensors and JAX arrays are accepted too.
"""

from . import _cli_startup  # noqa: F401  first: the gpu-histeq process's signals while importing
from . import adaptive as _adaptive
from . import equalize as _equalize
from . import exposure
from . import histogram as _histogram
from . import lut as _lut
from . import matching as _matching
from ._config import show_config
from ._planes import thread_limit
from ._interop import adapt as _adapt
from ._version import __version__

equalize_hist = _adapt(_equalize.equalize_hist)
histogram = _adapt(_histogram.histogram)
cumulative_distribution = _adapt(_histogram.cumulative_distribution)
apply_lut = _adapt(_lut.apply_lut)
clahe = _adapt(_adaptive.clahe)
equalize_adapthist = _adapt(_adaptive.equalize_adapthist)
match_histograms = _adapt(_matching.match_histograms)

__all__ = ["equalize_hist", "histogram", "cumulative_distribution", "apply_lut",
           "clahe", "equalize_adapthist", "match_histograms", "show_config", "thread_limit"]
