"""The checks that prove the CUDA kernels produced what the tests compare, each shown catching a
planted fault (issue 20).

The convention (gpu_histeq/_cuda/__init__.py, tests/emulation/README.md): a CUDA entry point
answers True or a ``_cuda.Declined``; the engine reports every step on CuPy input to
``_engine.recording()``; the ``cp`` / ``xp`` CuPy fixtures check those steps after each test
(``conftest.check_steps``); errors must come from the kernel path; the emulator refuses a launch
whose static plus dynamic shared memory is over 48 KiB and counts only the launches it ran.

Each fault below would pass the checks this project had before: a kernel that declines after it
launched (the portable path recomputes, so the result is right and a kernel did run), an engine
that falls back silently (right result, the portable path), a portable path that raises the
error the kernels should have raised, a launch whose dynamic shared memory alone fits. The
faults are planted with ``monkeypatch`` on the emulated CuPy, outside the ``cp`` fixture (whose
own check would fail these tests for the fault they plant); the shared-memory numbers are also
checked on a real GPU, through the ``cp`` fixture.
"""

import numpy as np
import pytest

import conftest
from conftest import (assert_declined, assert_wrote, check_steps, emulated_cupy_or_skip,
                      raised_in_kernel_path)
from gpu_histeq import _cuda, _engine, equalize_hist
from test_cuda_edge_cases import compare
from test_cuda_kernels import assert_same_bits, run_both

#: The shared memory a block gets without opting in.
SHARED_LIMIT = 48 << 10


@pytest.fixture
def emu(monkeypatch):
    """The emulated CuPy, without the ``cp`` fixture's step check (the faults are planted)."""
    return emulated_cupy_or_skip(monkeypatch)


def _launches(emu):
    return sum(emu.LAUNCHES.values())


def _images(emu, dtype=np.float32):
    rng = np.random.default_rng(20)
    return emu.asarray(rng.normal(0.0, 2.0, (3, 40, 48)).astype(dtype))


def _declining(monkeypatch, answer):
    """Plant a fault: ``_cuda._equalize`` runs the kernels (they write the result), then
    answers `answer` instead of True."""
    kernels = _cuda._equalize

    def declines_after_launching(planes, method, nbins):
        kernels(planes, method, nbins)
        return answer

    monkeypatch.setattr(_cuda, "_equalize", declines_after_launching)


@pytest.mark.parametrize("answer", [False, _cuda.Declined("irregular", "planted", written=True)],
                         ids=["bare-False", "undeclared-irregular"])
def test_a_kernel_declining_after_launching_is_caught(emu, monkeypatch, answer):
    images = _images(emu)
    with _engine.portable():
        expected = equalize_hist(images)
    _declining(monkeypatch, answer)
    before = _launches(emu)
    with _engine.recording() as steps:
        result = equalize_hist(images)
    # what the old checks saw: a kernel ran, and the (portably recomputed) result is right
    assert _launches(emu) > before
    assert_same_bits(result, expected)
    # what the new ones see
    assert steps[0].name == "equalize" and steps[0].engine == "cuda"
    with pytest.raises(AssertionError, match="neither True nor a Declined" if answer is False
                       else "named no such decline"):
        check_steps(steps)
    with pytest.raises(AssertionError, match="did not write the result"):
        assert_wrote(steps[0].outcome)
    with pytest.raises(AssertionError):
        compare(emu, images.get())  # the helper of every test_cuda_edge_cases comparison
    planes = images.reshape(3, -1)
    with pytest.raises(AssertionError, match="did not write the result"):
        run_both(emu, planes, None, "skimage", 256)  # the helper of test_cuda_kernels


def test_a_named_decline_passes_and_a_missing_one_fails(emu, monkeypatch):
    """The documented decline, named, passes; named but absent, it fails."""
    images = _images(emu)
    with _engine.recording() as steps:
        equalize_hist(images)
    check_steps(steps)  # the kernels wrote: clean
    with pytest.raises(AssertionError, match="expected a 'irregular' decline, none came"):
        check_steps(steps, ["irregular"])
    _declining(monkeypatch, _cuda.Declined("irregular", "planted", written=True))
    with _engine.recording() as steps:
        equalize_hist(images)
    check_steps(steps, ["irregular"])
    assert_declined(steps[0].outcome, "irregular")


def test_an_engine_falling_back_silently_is_caught(emu, monkeypatch):
    images = _images(emu, np.float64)
    with _engine.portable():
        expected = equalize_hist(images)
    # the fixture's own check, driven by hand: clean without the fault
    fixture = conftest._checked(emu)
    assert next(fixture) is emu
    equalize_hist(images)
    with pytest.raises(StopIteration):
        next(fixture)
    monkeypatch.setattr(_engine, "select", lambda xp, dtype: "portable")  # the fault
    fixture = conftest._checked(emu)
    next(fixture)
    before = _launches(emu)
    result = equalize_hist(images)
    assert _launches(emu) == before  # no kernel ran, and the result is right
    assert_same_bits(result, expected)
    with pytest.raises(AssertionError, match="the portable engine ran on CuPy input while CUDA "
                                             "was on"):
        next(fixture)


def test_switching_cuda_off_is_not_a_fallback(emu, monkeypatch):
    images = _images(emu)
    monkeypatch.setenv("GPU_HISTEQ_CUDA", "0")
    with _engine.recording() as steps:
        equalize_hist(images)
    assert steps and all(step.engine == "portable" and step.switched_off for step in steps)
    check_steps(steps)


def test_an_error_raised_by_the_portable_path_instead_is_caught(emu, monkeypatch):
    """The kernels find NaN themselves; planted: they decline as "uncovered" and the portable
    path raises the same error, which the old comparison (same error both ways) accepted."""
    host = np.random.default_rng(1).normal(size=(2, 8, 8)).astype(np.float32)
    host[1, 2, 3] = np.nan
    _, error = compare(emu, host)
    assert "NaN or infinity" in str(error)  # and compare() saw it raised in the kernel path
    monkeypatch.setattr(_cuda, "_equalize", lambda *args: _cuda.Declined("uncovered", "planted"))
    with pytest.raises(ValueError, match="NaN or infinity") as caught:
        equalize_hist(emu.asarray(host))
    assert not raised_in_kernel_path(caught.value)
    with pytest.raises(AssertionError, match="was not raised by the kernel path"):
        compare(emu, host)


def test_a_launch_over_the_shared_memory_limit_is_refused(emu, monkeypatch):
    """Planted: the one-block float kernels may cache planes of 41 KiB. Dynamic shared memory
    alone (41600 bytes) fits 48 KiB, which is all the emulator checked before; with the
    kernel's 8448 static bytes it does not, and the launch is refused, and not counted."""
    pytest.importorskip("cuda.bindings.nvrtc", reason="NVRTC gives the static shared memory")
    from gpu_histeq._cuda import _kernels
    name = "gpu_histeq_equalize_small_float<double>"
    images = emu.asarray(np.random.default_rng(2).random((2, 5200)))  # 41600 bytes a plane
    assert_wrote(_cuda.equalize(images, None, "skimage", 256, emu.empty((2, 5200))))
    monkeypatch.setattr(_kernels, "CACHE_BYTES_FLOAT", 41 << 10)
    before = dict(emu.LAUNCHES)
    with pytest.raises(emu.EmulatedLaunchError,
                       match="static shared memory of 8448 bytes plus dynamic shared memory of "
                             "41600 bytes exceeds the 48 KiB"):
        _cuda.equalize(images, None, "skimage", 256, emu.empty((2, 5200)))
    assert emu.LAUNCHES.get(name, 0) == before.get(name, 0)
    assert 41600 <= SHARED_LIMIT < 8448 + 41600


#: Static shared memory (bytes, NVRTC sm_90) and the most dynamic shared memory each launcher
#: asks for, of the kernels that take dynamic shared memory.
DYNAMIC_KERNELS = {
    ("levels.cu", "gpu_histeq_equalize_small_u8<0, unsigned char>"): (9632, "CACHE_BYTES_U8"),
    ("levels.cu", "gpu_histeq_equalize_small_u8<2, double>"): (11424, "CACHE_BYTES_U8"),
    ("levels.cu", "gpu_histeq_level_histogram<unsigned short>"): (1024, "PRIVATE"),
    ("uniform.cu", "gpu_histeq_uniform_histogram<double>"): (1024, "PRIVATE"),
    ("uniform.cu", "gpu_histeq_equalize_small_float<float>"): (8384, "CACHE_BYTES_FLOAT"),
    ("uniform.cu", "gpu_histeq_equalize_small_float<double>"): (8448, "CACHE_BYTES_FLOAT"),
}


@pytest.mark.parametrize("filename, name", sorted(DYNAMIC_KERNELS), ids=lambda v: str(v))
def test_static_plus_dynamic_shared_memory_fits(cp, filename, name):
    """Each kernel's static shared memory (CuPy's ``shared_size_bytes``: the device's own
    number on a GPU, NVRTC's CUBIN on the emulator) plus the most dynamic shared memory its
    launcher asks for stays under 48 KiB; the emulated numbers are the ones written here."""
    from gpu_histeq._cuda import _kernels
    static, limit = DYNAMIC_KERNELS[filename, name]
    kernel = _kernels.kernel(filename, name)
    if kernel.shared_size_bytes is None:
        pytest.skip("NVRTC (the nvrtc extra) is not installed: the static part is unknown")
    dynamic = (_kernels.WARPS * _kernels.PRIVATE_BINS * 4 if limit == "PRIVATE"
               else getattr(_kernels, limit))
    assert kernel.shared_size_bytes + dynamic <= SHARED_LIMIT, (kernel.shared_size_bytes, dynamic)
    if conftest.is_emulated(cp):
        assert kernel.shared_size_bytes == static
