"""Which array module (NumPy or CuPy) holds the arrays, decided from the arrays themselves.

CuPy is never imported here: an array can only be a CuPy array if the caller already imported
``cupy``, so looking it up in ``sys.modules`` is enough and keeps ``import gpu_histeq`` free of it.
"""

import sys

import numpy as np


def _cupy_if_imported():
    return sys.modules.get("cupy")


def backend_name(array):
    """Return ``"numpy"``, ``"cupy"`` or ``None`` for something that is not an array of either."""
    cupy = _cupy_if_imported()
    if cupy is not None and isinstance(array, cupy.ndarray):  # first: a subclass of numpy's may stand in
        return "cupy"
    if isinstance(array, np.ndarray):
        return "numpy"
    return None


def array_module(images, **others):
    """Return the array module (``numpy`` or ``cupy``) that holds `images` and every other array.

    Parameters
    ----------
    images : ndarray
        The main input; its backend decides the result's.
    **others : ndarray or None
        Further arrays by parameter name (``mask=...``, ``out=...``); ``None`` is skipped.

    Raises
    ------
    TypeError
        If `images` is neither a NumPy nor a CuPy array, or another array lives on another backend.
    """
    name = backend_name(images)
    if name is None:
        raise TypeError(
            f"`images` must be a numpy.ndarray or cupy.ndarray, got {type(images).__module__}."
            f"{type(images).__qualname__}"
        )
    for param, other in others.items():
        if other is None:
            continue
        other_name = backend_name(other)
        if other_name is None and name == "numpy" and not hasattr(other, "__cuda_array_interface__"):
            continue  # plain Python sequences are fine next to NumPy arrays
        if other_name != name:
            raise TypeError(
                f"`{param}` must be a {name} array like `images`, got "
                f"{type(other).__module__}.{type(other).__qualname__}; move it explicitly "
                f"(cupy.asarray / cupy.asnumpy), gpu_histeq never copies between host and device"
            )
    return np if name == "numpy" else _cupy_if_imported()


def is_dask(array):
    """True for a ``dask.array.Array``; never imports dask."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(array, module.Array)


def tensor_kind(array):
    """``"torch"`` for a ``torch.Tensor``, ``"jax"`` for a ``jax.Array``, else None (imports
    neither: a tensor can only exist if its library was imported)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        return "torch"
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(array, jax.Array):
        return "jax"
    return None


def is_tensor(array):
    """True for a ``torch.Tensor`` or a ``jax.Array``."""
    return tensor_kind(array) is not None


def is_cupy(xp):
    """True when `xp` is the CuPy module."""
    return xp is not np
