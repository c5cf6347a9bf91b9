"""Route foreign arrays (dask arrays, torch tensors, JAX arrays) to their adapters.

Each public function starts with a two-line hook::

    if _interop.handles(images):
        return _interop.call("equalize_hist", images, ...)

(the same in ``clahe``, ``equalize_adapthist`` and ``match_histograms``: both adapters serve
them). ``handles`` costs one ``isinstance`` for NumPy input and imports nothing; the adapters
(:mod:`gpu_histeq._dask`, :mod:`gpu_histeq._tensors`) are imported on first use.
"""

import sys

import numpy as np

from ._tensors import is_tensor


def is_dask(array):
    """True for a ``dask.array.Array``; never imports dask."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(array, module.Array)


def handles(images):
    """True when `images` is a dask array, a torch tensor or a JAX array."""
    return not isinstance(images, np.ndarray) and (is_dask(images) or is_tensor(images))


def call(name, images, *args, **kwargs):
    """The public function `name` for a foreign `images`: lazily for dask, as tensors otherwise."""
    if is_dask(images):
        from . import _dask
        return getattr(_dask, name)(images, *args, **kwargs)
    from . import _tensors
    return _tensors.call(name, images, *args, **kwargs)
