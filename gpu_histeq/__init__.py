"""Batched histogram equalization on NumPy and CuPy arrays: many images, one call."""

from .equalize import equalize_hist
from .histogram import cumulative_distribution, histogram
from .lut import apply_lut
from .adaptive import clahe, equalize_adapthist
from .matching import match_histograms

__all__ = ["equalize_hist", "histogram", "cumulative_distribution", "apply_lut",
           "clahe", "equalize_adapthist", "match_histograms"]
__version__ = "0.1.0"
