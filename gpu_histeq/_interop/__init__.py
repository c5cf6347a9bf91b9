"""Adapters above the public API: Dask arrays, torch tensors and JAX arrays in, the same out;
lists and tuples of arrays of any sizes (ragged batches) in, a list out.

:func:`adapt` wraps an in-memory public function once, in ``gpu_histeq/__init__.py``; the public
modules never import this package. A NumPy or CuPy input costs one ``isinstance``; the adapters
(:mod:`.dask`, :mod:`.tensors`, :mod:`.ragged`) are imported on first use, and dask, torch or
JAX never by this package (an array of theirs can only exist if the caller imported them).
"""

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np

from .._backend import is_dask, is_tensor

__all__ = ["adapt"]

#: A public function; :func:`adapt` returns a function of the same type (its overloads too).
F = TypeVar("F", bound=Callable[..., Any])


def adapt(function: F) -> F:
    """`function` that also takes a dask array (lazily, as dask), a tensor (same type out) or a
    list / tuple of arrays (a list out, see :mod:`.ragged`).

    Parameters
    ----------
    function : callable
        An in-memory public function whose first parameter is `images`.

    Returns
    -------
    callable
        The wrapper (``functools.wraps``: same name, docstring and signature), typed as
        `function` is, so a type checker sees the public function's overloads.
    """
    @functools.wraps(function)
    def public(images: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(images, np.ndarray):
            if isinstance(images, (list, tuple)):
                from . import ragged
                return ragged.call(function, images, *args, **kwargs)
            if is_dask(images):
                from . import dask
                return getattr(dask, function.__name__)(images, *args, **kwargs)
            if is_tensor(images):
                from . import tensors
                return tensors.call(function, images, *args, **kwargs)
        return function(images, *args, **kwargs)

    return cast(F, public)
