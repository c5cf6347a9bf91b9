"""The CUDA kernels under ThreadSanitizer and AddressSanitizer + UBSan, through the emulator.

Each run is a subprocess (tests/emulation/sanitize_cases.py) with the sanitizer runtime
preloaded, since the emulated kernels are loaded into Python. ``cases`` reaches every kernel and
every launcher branch and checks each result against the portable path; it must finish with zero
reports. The self-test plants one bug per detector and requires it to be reported: a missing
``__syncthreads`` (ThreadSanitizer), a write past the dynamic shared memory a launch asked for
(AddressSanitizer), an out-of-range float -> int conversion (UBSan float-cast-overflow) and a
``__syncthreads`` only some threads reach (the emulator's barrier).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CUPY, emulated_cupy_or_skip

SCRIPT = Path(__file__).parent / "emulation" / "sanitize_cases.py"
RUNTIMES = {"thread": "libtsan.so", "address": "libasan.so"}
REPORTS = ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "runtime error:",
           "ERROR: LeakSanitizer")


def _gcc_runtime(sanitizer):
    """Path of g++'s runtime library for `sanitizer`, or skip."""
    from emulation import build
    cxx = build.compiler()
    if cxx is None or "clang" in os.path.basename(cxx):
        pytest.skip("the sanitizer runs need g++ (its libtsan / libasan are preloaded)")
    found = subprocess.run([cxx, f"-print-file-name={RUNTIMES[sanitizer]}"], capture_output=True,
                           text=True).stdout.strip()
    if not os.path.isabs(found) or not os.path.exists(found):
        pytest.skip(f"g++ has no {RUNTIMES[sanitizer]} runtime here")
    return found


def run_sanitized(sanitizer, *args):
    if CUPY is not None:  # the device's time is short; compute-sanitizer runs there instead
        pytest.skip("a GPU is usable: compute-sanitizer checks the kernels there (ci/gpu/)")
    env = dict(os.environ, GPU_HISTEQ_EMU_SANITIZER=sanitizer,
               LD_PRELOAD=_gcc_runtime(sanitizer),
               TSAN_OPTIONS="halt_on_error=1 exitcode=66",
               ASAN_OPTIONS="detect_leaks=0 halt_on_error=1",
               UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1")
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=900, cwd=SCRIPT.parent)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("sanitizer", ["thread", "address"])
def test_every_kernel_runs_clean(sanitizer):
    code, out, err = run_sanitized(sanitizer, "cases")
    reports = [line for line in err.splitlines() if any(r in line for r in REPORTS)]
    assert code == 0 and not reports, f"exit {code}; {reports[:5]}\n{err[-4000:]}"
    assert "CASES OK" in out, out + err[-2000:]


@pytest.mark.parametrize("bug, sanitizer, report", [
    ("race", "thread", "WARNING: ThreadSanitizer: data race"),
    ("overflow", "address", "ERROR: AddressSanitizer: use-after-poison"),
    ("cast", "address", "is outside the range of representable values of type 'int'"),
])
def test_planted_bug_is_reported(bug, sanitizer, report):
    code, out, err = run_sanitized(sanitizer, "planted", bug)
    assert code != 0 and report in err, f"exit {code}\n{out}\n{err[-3000:]}"
    assert "PLANTED RAN" not in out


def test_divergent_barrier_is_reported(monkeypatch):
    """Without any sanitizer: the emulator's barrier names the divergence instead of hanging."""
    cp = emulated_cupy_or_skip(monkeypatch)
    from emulation import sanitize_cases
    code, _ = sanitize_cases.PLANTED["divergent"]
    kernel = cp.RawModule(code=code, options=("--std=c++17", "--fmad=false"), name_expressions=("planted",))
    out = cp.zeros(256, np.int32)
    with pytest.raises(cp.EmulatedLaunchError,
                       match=r"divergent __syncthreads: 224 threads exited while 32 wait"):
        kernel.get_function("planted")((1,), (256,), (out,))


@pytest.mark.parametrize("grid, block, shared, args, message", [
    ((1,), (512,), 0, "ok", r"exceeds __launch_bounds__\(256\)"),
    ((1, 70000), (256,), 0, "ok", "invalid grid"),
    ((1,), (256,), 49 * 1024, "ok", "exceeds the 48 KiB"),
    ((1,), (256,), 0, "int64", "must be kind 'i' of 4 bytes, got 'i' of 8 bytes"),
    ((1,), (256,), 0, "misaligned", "must be a pointer aligned to 4 bytes"),
    ((1,), (256,), 0, "short", "kernel takes 4 arguments, got 3"),
])
def test_launches_are_checked_as_the_driver_would(monkeypatch, grid, block, shared, args, message):
    cp = emulated_cupy_or_skip(monkeypatch)
    code = """
#define GPU_HISTEQ_THREADS 256
extern "C" __global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
planted(const int* values, long long n, int scale, int* out) {
    for (long long i = threadIdx.x; i < n; i += blockDim.x) out[i] = values[i] * scale;
}"""
    kernel = cp.RawModule(code=code, options=("--std=c++17", "--fmad=false"),
                          name_expressions=("planted",)).get_function("planted")
    values, out = cp.arange(300, dtype=np.int32), cp.zeros(300, np.int32)
    kernel((1,), (256,), (values, np.int64(300), np.int32(3), out))  # a correct launch runs
    np.testing.assert_array_equal(out.get(), np.arange(300) * 3)
    arguments = {"ok": (values, np.int64(300), np.int32(3), out),
                 "int64": (values, np.int64(300), np.int64(3), out),
                 "misaligned": (values.view(np.uint8)[2:].view(np.uint8), np.int64(3), np.int32(3), out),
                 "short": (values, np.int64(300), out)}[args]
    with pytest.raises(cp.EmulatedLaunchError, match=message):
        kernel(grid, block, arguments, shared_mem=shared)
