"""Type aliases of the public signatures: annotations only, nothing here runs per call.

An ``ndarray`` in gives an ``ndarray`` out; where the arguments fix the result's dtype (uint8 in
-> uint8 out for ``method="opencv"``/``"pil"`` and ``clahe``, float32 out for float16/float32 in
with ``"skimage"``), the overloads say so. A list or tuple of ndarrays (a ragged batch, see
:mod:`gpu_histeq._interop.ragged`) gives a list; anything else (CuPy and Dask arrays, torch
tensors, JAX arrays: untyped or optional here) falls back to ``Any``. String options are
``Literal`` types, so a checker catches ``method="opencvv"``.
"""

from collections.abc import Sequence
from typing import Any, Literal, TypeVar, Union

import numpy as np
from numpy.typing import NDArray

__all__ = ["Array", "ArrayList", "Axes", "Pair", "Method", "LevelMethod", "Luminance",
           "UInt8", "UInt16", "Float32", "Float64", "HalfOrSingle", "Scalar"]

#: One array of any dtype (the result dtype follows the method, not the input, so it stays Any).
Array = NDArray[Any]
#: A ragged batch: a list or tuple of arrays of any sizes.
ArrayList = Union[list[NDArray[Any]], tuple[NDArray[Any], ...]]
#: The `axes` parameter: one axis, several, or None (the default).
Axes = Union[int, Sequence[int], None]
#: What histogram and cumulative_distribution return: (counts or cdf, centers).
Pair = tuple[NDArray[Any], NDArray[Any]]

#: `method` of equalize_hist: whose numbers to reproduce.
Method = Literal["opencv", "pil", "skimage"]
#: The methods whose result has the dtype of the images (their levels in, levels out).
LevelMethod = Literal["opencv", "pil"]
#: `luminance`: False, or the order of the three colour channels (True means "rgb").
Luminance = Union[bool, Literal["rgb", "bgr"]]

UInt8 = NDArray[np.uint8]
UInt16 = NDArray[np.uint16]
Float32 = NDArray[np.float32]
Float64 = NDArray[np.float64]
#: The inputs whose scikit-image result is float32.
HalfOrSingle = Union[NDArray[np.float16], NDArray[np.float32]]
#: The dtype of a lookup table, which apply_lut's result takes.
Scalar = TypeVar("Scalar", bound=np.generic)
