"""Shared fixtures: every test body runs on NumPy, on CuPy when a GPU is usable, and on the
emulated CuPy (tests/emulation: the real kernels and launchers run on the CPU) when it is not."""

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


def emulated_cupy_or_skip(monkeypatch):
    """The stand-in cupy module (tests/emulation/fake_cupy.py), installed as ``cupy`` for this
    test; skipped when a real GPU runs the kernels or no C++ compiler can build the emulator."""
    if CUPY is not None:
        pytest.skip("a GPU is usable: the kernels run for real under the `cupy` parameter")
    from emulation import build, fake_cupy
    if build.compiler() is None:
        pytest.skip("no C++ compiler ($CXX, g++ or clang++) to build the CUDA emulator")
    global _EMULATOR_BUILT
    if not _EMULATOR_BUILT:  # both kernel files at once (one compiler per core), then cached
        build.build_sources()
        _EMULATOR_BUILT = True
    fake_cupy.install(monkeypatch)
    return fake_cupy


_EMULATOR_BUILT = False


#: The backends of the ``xp`` fixture. "cupy-emulated" runs gpu_histeq's CuPy code against the
#: stand-in module: the CUDA kernels and launchers for real (on the CPU), the portable path on
#: NumPy arithmetic.
BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu), "cupy-emulated"]


@pytest.fixture(params=BACKENDS)
def xp(request, monkeypatch):
    """The array module under test: numpy always, cupy when a GPU is usable, else emulated."""
    if request.param == "numpy":
        return np
    if request.param == "cupy-emulated":
        return emulated_cupy_or_skip(monkeypatch)
    if CUPY is None:
        pytest.skip(CUPY_SKIP_REASON)
    return CUPY


@pytest.fixture(params=[pytest.param("cupy", marks=pytest.mark.gpu), "cupy-emulated"])
def cp(request, monkeypatch):
    """A CuPy module whose kernels run: the real one on a GPU, else the emulated one."""
    if request.param == "cupy-emulated":
        return emulated_cupy_or_skip(monkeypatch)
    if CUPY is None:
        pytest.skip(CUPY_SKIP_REASON)
    return CUPY


def is_emulated(xp):
    return getattr(xp, "__name__", "").endswith("fake_cupy")


def to_numpy(array):
    """Host copy of a NumPy or CuPy array, for comparison with CPU references."""
    return array.get() if hasattr(array, "get") else np.asarray(array)


def assert_backend(array, xp):
    """The result lives on the backend of the input: no silent host/device copy."""
    assert type(array) is xp.ndarray, f"expected {xp.__name__}.ndarray, got {type(array)}"
