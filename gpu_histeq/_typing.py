"""Type aliases of the public signatures: annotations only, nothing here runs per call.

An ``ndarray`` in gives an ``ndarray`` out; a list or tuple of ndarrays (a ragged batch, see
:mod:`gpu_histeq._interop.ragged`) gives a list; anything else (CuPy and Dask arrays, torch
tensors, JAX arrays: untyped or optional here) falls back to ``Any``.
"""

from collections.abc import Sequence
from typing import Any, Union

from numpy.typing import NDArray

__all__ = ["Array", "ArrayList", "Axes", "Pair"]

#: One array of any dtype (the result dtype follows the method, not the input, so it stays Any).
Array = NDArray[Any]
#: A ragged batch: a list or tuple of arrays of any sizes.
ArrayList = Union[list[NDArray[Any]], tuple[NDArray[Any], ...]]
#: The `axes` parameter: one axis, several, or None (the default).
Axes = Union[int, Sequence[int], None]
#: What histogram and cumulative_distribution return: (counts or cdf, centers).
Pair = tuple[NDArray[Any], NDArray[Any]]
