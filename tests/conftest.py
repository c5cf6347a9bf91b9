"""Shared fixtures: every test body runs on NumPy, on CuPy when a GPU is usable, and on the
emulated CuPy (tests/emulation: the real kernels and launchers run on the CPU) when it is not.

Proof that the kernels produced what a test compares (the convention of gpu_histeq/_cuda):

* a direct call of a CUDA entry point: ``assert_wrote(outcome)``, or, for a documented decline,
  ``assert_declined(outcome, reason)`` (a key of ``_cuda.DECLINES``);
* a public call on CuPy input: the ``cp`` and ``xp`` CuPy fixtures record every engine step
  (``_engine.recording``) and fail the test, after it ran, when a step fell back to another
  engine while CUDA was on, or a CUDA entry point declined for any reason but "uncovered"
  (decided before any launch: the case is outside the kernels' claim) unless the test named
  that decline first with ``expect_decline(reason)``; a named decline that never came fails too.
  ``check_steps`` is the same check for a block of one's own (``_engine.recording()``).
"""

import numpy as np
import pytest

from gpu_histeq import _engine


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


def _cupy_module(param, monkeypatch):
    if param == "cupy-emulated":
        return emulated_cupy_or_skip(monkeypatch)
    if CUPY is None:
        pytest.skip(CUPY_SKIP_REASON)
    return CUPY


@pytest.fixture(params=BACKENDS)
def xp(request, monkeypatch):
    """The array module under test: numpy always, cupy when a GPU is usable, else emulated;
    on CuPy, every engine step of the test is checked afterwards (:func:`check_steps`)."""
    if request.param == "numpy":
        yield np
        return
    module = _cupy_module(request.param, monkeypatch)
    yield from _checked(module)


@pytest.fixture(params=[pytest.param("cupy", marks=pytest.mark.gpu), "cupy-emulated"])
def cp(request, monkeypatch):
    """A CuPy module whose kernels run: the real one on a GPU, else the emulated one; every
    engine step of the test is checked afterwards (:func:`check_steps`)."""
    module = _cupy_module(request.param, monkeypatch)
    yield from _checked(module)


# ---------------------------------------------------------------------------------------------
# proof that the CUDA engine produced the results (the convention of gpu_histeq/_cuda)

_EXPECTED_DECLINES: list = []  # expect_decline() of the running test


def _checked(module):
    _EXPECTED_DECLINES.clear()
    with _engine.recording() as steps:
        yield module
    expected = list(_EXPECTED_DECLINES)
    _EXPECTED_DECLINES.clear()
    check_steps(steps, expected)


def expect_decline(reason):
    """Name a documented decline (a key of ``_cuda.DECLINES`` other than "uncovered") that the
    running test's CuPy calls must meet at least once; any other decline still fails."""
    from gpu_histeq._cuda import DECLINES
    if reason not in DECLINES or reason == "uncovered":
        raise ValueError(f"`reason` must be a data-dependent key of _cuda.DECLINES, got {reason!r}")
    _EXPECTED_DECLINES.append(reason)


def check_steps(steps, expected=()):
    """Fail unless every recorded :class:`gpu_histeq._engine.Step` ran the CUDA engine (or CUDA
    was switched off) and each CUDA answer wrote its result, declined as "uncovered", or
    declined for a reason in `expected`; and each reason in `expected` occurred."""
    from gpu_histeq._cuda import Declined
    problems = []
    met = set()
    for step in steps:
        if step.engine != "cuda":
            if not step.switched_off:
                problems.append(f"{step.name}: the {step.engine} engine ran on CuPy input while "
                                "CUDA was on (a silent fallback)")
        elif isinstance(step.outcome, Declined):
            if step.outcome.reason in expected:
                met.add(step.outcome.reason)
            elif step.outcome.reason != "uncovered":
                problems.append(f"{step.name}: the CUDA entry point declined, {step.outcome!r}, "
                                "and the test named no such decline (expect_decline)")
        elif step.outcome is not True:
            problems.append(f"{step.name}: the CUDA entry point answered {step.outcome!r}, "
                            "neither True nor a Declined")
    problems += [f"expected a {reason!r} decline, none came" for reason in set(expected) - met]
    assert not problems, "; ".join(problems)


def assert_wrote(outcome):
    """A CUDA entry point's answer says its kernels produced the whole result."""
    from gpu_histeq._cuda import Declined
    assert not isinstance(outcome, Declined) and outcome is not None and outcome is not False, \
        f"the CUDA entry point did not write the result: {outcome!r}"


def raised_in_kernel_path(error, module="__init__.py"):
    """True when `error` was raised inside a CUDA entry point (gpu_histeq/_cuda/`module`, by
    default __init__.py, is on its traceback): the kernel path found it, not a check before or
    the portable path."""
    import os
    here = os.path.join("gpu_histeq", "_cuda", module)
    trace = error.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename.endswith(here):
            return True
        trace = trace.tb_next
    return False


def assert_declined(outcome, reason):
    """A CUDA entry point's answer is the documented decline `reason`."""
    from gpu_histeq._cuda import DECLINES, Declined
    assert reason in DECLINES, reason
    assert isinstance(outcome, Declined) and outcome.reason == reason, \
        f"expected Declined({reason!r}), got {outcome!r}"
    assert outcome.written == (reason != "uncovered"), outcome


def is_emulated(xp):
    return getattr(xp, "__name__", "").endswith("fake_cupy")


def to_numpy(array):
    """Host copy of a NumPy or CuPy array, for comparison with CPU references."""
    return array.get() if hasattr(array, "get") else np.asarray(array)


def assert_backend(array, xp):
    """The result lives on the backend of the input: no silent host/device copy."""
    assert type(array) is xp.ndarray, f"expected {xp.__name__}.ndarray, got {type(array)}"
