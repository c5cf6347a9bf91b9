"""scikit-image's ``skimage.exposure`` API on gpu_histeq: change one import line.

::

    from skimage import exposure          # before (or: from cucim.skimage import exposure)
    from gpu_histeq import exposure       # after: the same calls, the same numbers

Every function of :mod:`skimage.exposure` with its signature, defaults, result dtypes and
exception types, one image per call, on NumPy and CuPy arrays (torch tensors and JAX arrays
come back as the same type on the same device; Dask arrays come back lazy, through gpu_histeq's
Dask adapters, except ``is_low_contrast``, which computes its answer, and ``histogram`` with
``source_range="dtype"`` or ``channel_axis``, which is refused for them). Underneath, the image
is one plane of gpu_histeq's batched pipeline: compiled C kernels for NumPy, CUDA kernels for
CuPy. For many images at once use the batched functions of :mod:`gpu_histeq` itself.
"""

import functools

from .._backend import is_tensor
from . import _histogram, _intensity

__all__ = ["histogram", "cumulative_distribution", "equalize_hist", "equalize_adapthist",
           "match_histograms", "rescale_intensity", "adjust_gamma", "adjust_log",
           "adjust_sigmoid", "is_low_contrast"]


def _on_tensors(function):
    """`function` that also takes a torch tensor or JAX array (the same type comes back)."""
    @functools.wraps(function)
    def public(image, *args, **kwargs):
        if not is_tensor(image):
            return function(image, *args, **kwargs)
        from .._interop import tensors
        if function is _intensity.is_low_contrast:  # a host answer, not an array
            return function(tensors.to_array(image), *args, **kwargs)
        return tensors.call(function, image, *args, **kwargs)

    return public


histogram = _on_tensors(_histogram.histogram)
cumulative_distribution = _on_tensors(_histogram.cumulative_distribution)
equalize_hist = _on_tensors(_histogram.equalize_hist)
equalize_adapthist = _on_tensors(_histogram.equalize_adapthist)
match_histograms = _on_tensors(_histogram.match_histograms)
rescale_intensity = _on_tensors(_intensity.rescale_intensity)
adjust_gamma = _on_tensors(_intensity.adjust_gamma)
adjust_log = _on_tensors(_intensity.adjust_log)
adjust_sigmoid = _on_tensors(_intensity.adjust_sigmoid)
is_low_contrast = _on_tensors(_intensity.is_low_contrast)
