"""Shared fixtures: every test body runs on NumPy, and on CuPy when a GPU is usable."""

import numpy as np
import pytest


def _cupy_or_reason():
    try:
        import cupy
    except Exception as error:  # ImportError, or a broken CUDA install
        return None, f"CuPy is not importable ({type(error).__name__}: {error})"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None, "CuPy sees no CUDA device"
        cupy.zeros(1).sum().item()
    except Exception as error:
        return None, f"CuPy cannot use a GPU ({type(error).__name__}: {error})"
    return cupy, None


CUPY, CUPY_SKIP_REASON = _cupy_or_reason()


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def xp(request):
    """The array module under test: numpy always, cupy when a GPU is usable."""
    if request.param == "numpy":
        return np
    if CUPY is None:
        pytest.skip(CUPY_SKIP_REASON)
    return CUPY


def to_numpy(array):
    """Host copy of a NumPy or CuPy array, for comparison with CPU references."""
    return array.get() if hasattr(array, "get") else np.asarray(array)


def assert_backend(array, xp):
    """The result lives on the backend of the input: no silent host/device copy."""
    assert type(array) is xp.ndarray, f"expected {xp.__name__}.ndarray, got {type(array)}"
