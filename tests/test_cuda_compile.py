"""Every CUDA kernel source compiles, every template instantiation included, with no GPU.

NVRTC runs on the CPU: the ``cuda-bindings`` and ``nvidia-cuda-nvrtc`` wheels compile for any
architecture without a driver. The options come from ``gpu_histeq._cuda._sources.OPTIONS``, the
ones the CuPy loader uses. NVRTC 13 no longer targets Volta (sm_70); sm_70 is compiled with the
CUDA 12 NVRTC of the ``nvidia-cuda-nvrtc-cu12`` wheel through ctypes when it is installed.
"""

import ctypes
import glob
import os
import re
import sys

import pytest

from gpu_histeq._cuda import _sources

nvrtc = pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-bindings (NVRTC) is not installed")

#: Architectures NVRTC 13 compiles for: Turing, Ampere, Hopper.
ARCHITECTURES = ("sm_75", "sm_80", "sm_90")


def _check(result, program=None):
    error = result[0] if isinstance(result, tuple) else result
    if error != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        log = _log(program) if program is not None else ""
        raise AssertionError(f"NVRTC failed: {error}\n{log}")
    return result[1:] if isinstance(result, tuple) else ()


def _log(program):
    (size,) = _check(nvrtc.nvrtcGetProgramLogSize(program))
    buffer = b" " * size
    _check(nvrtc.nvrtcGetProgramLog(program, buffer))
    return buffer.decode(errors="replace").rstrip("\x00 \n")


def compile_with_nvrtc(filename, architecture):
    """Compile `filename` with every instantiation; return (cubin size, lowered names, log)."""
    text = _sources.source(filename).encode()
    (program,) = _check(nvrtc.nvrtcCreateProgram(text, filename.encode(), 0, [], []))
    try:
        expressions = _sources.INSTANTIATIONS[filename]
        for name in expressions:
            _check(nvrtc.nvrtcAddNameExpression(program, name.encode()))
        options = [o.encode() for o in _sources.OPTIONS] + [f"--gpu-architecture={architecture}".encode()]
        result = nvrtc.nvrtcCompileProgram(program, len(options), options)
        _check(result, program)
        log = _log(program)
        lowered = {name: _check(nvrtc.nvrtcGetLoweredName(program, name.encode()))[0]
                   for name in expressions}
        (size,) = _check(nvrtc.nvrtcGetCUBINSize(program))
        return size, lowered, log
    finally:
        nvrtc.nvrtcDestroyProgram(program)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("filename", sorted(_sources.INSTANTIATIONS))
def test_kernels_compile(filename, architecture):
    size, lowered, log = compile_with_nvrtc(filename, architecture)
    assert size > 0
    assert len(lowered) == len(_sources.INSTANTIATIONS[filename])
    assert all(name for name in lowered.values()), lowered
    assert "warning" not in log.lower(), log


def test_every_symbol_is_prefixed():
    for filename in ["common.cuh", *_sources.INSTANTIATIONS]:
        text = (_sources._DIRECTORY / filename).read_text()
        text = re.sub(r"//[^\n]*|__launch_bounds__\([^)]*\)", "", text)
        # namespace-scope names only: members (indented) live inside a prefixed struct
        defined = re.findall(r"(?m)^(?:__global__|__device__)[^;{(]*?\b(\w+)\s*\(", text)
        defined += re.findall(r"(?m)^struct[^{;]*?(\w+)\s*\{", text)
        defined += re.findall(r"#define\s+(\w+)", text)
        defined += re.findall(r"\bextern __shared__ \w+ (\w+)\[", text)
        assert defined, filename
        strays = sorted(n for n in defined if not n.startswith(("gpu_histeq_", "GPU_HISTEQ_", "operator")))
        assert not strays, f"{filename}: symbols without the gpu_histeq_ prefix: {strays}"


def _cuda12_nvrtc():
    """ctypes handle of libnvrtc.so.12 from the nvidia-cuda-nvrtc-cu12 wheel, or None."""
    for root in sys.path:
        for path in glob.glob(os.path.join(root, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so.12")):
            try:
                return ctypes.CDLL(path)
            except OSError:
                continue
    return None


@pytest.mark.parametrize("filename", sorted(_sources.INSTANTIATIONS))
def test_kernels_compile_for_volta(filename):
    library = _cuda12_nvrtc()
    if library is None:
        pytest.skip("CUDA 13's NVRTC dropped Volta (sm_70) and the CUDA 12 NVRTC "
                    "(nvidia-cuda-nvrtc-cu12 wheel) is not installed")
    program = ctypes.c_void_p()
    text = _sources.source(filename).encode()
    assert library.nvrtcCreateProgram(ctypes.byref(program), text, filename.encode(), 0, None, None) == 0
    try:
        for name in _sources.INSTANTIATIONS[filename]:
            assert library.nvrtcAddNameExpression(program, name.encode()) == 0
        options = [o.encode() for o in _sources.OPTIONS] + [b"--gpu-architecture=sm_70"]
        argv = (ctypes.c_char_p * len(options))(*options)
        status = library.nvrtcCompileProgram(program, len(options), argv)
        size = ctypes.c_size_t()
        library.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        library.nvrtcGetProgramLog(program, log)
        assert status == 0, log.value.decode(errors="replace")
        for name in _sources.INSTANTIATIONS[filename]:
            lowered = ctypes.c_char_p()
            assert library.nvrtcGetLoweredName(program, name.encode(), ctypes.byref(lowered)) == 0
            assert lowered.value
        cubin = ctypes.c_size_t()
        assert library.nvrtcGetCUBINSize(program, ctypes.byref(cubin)) == 0
        assert cubin.value > 0
    finally:
        library.nvrtcDestroyProgram(ctypes.byref(program))
