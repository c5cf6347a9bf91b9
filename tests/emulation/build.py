"""Compile CUDA kernel sources, unmodified, as host C++ against ``cuda_emu.h`` (tests only).

:func:`build` takes the text NVRTC gets (``gpu_histeq._cuda._sources.source(filename)``), its
NVRTC options and the name expressions to instantiate, appends a generated wrapper (definitions
of the ``extern __shared__`` arrays and one ``extern "C"`` launcher per name expression), and
compiles a shared library with the system C++ compiler, cached by a hash of everything that
goes into it.
"""

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = HERE / "cuda_emu.h"

#: Flags of every build. -ffp-contract=off mirrors --fmad=false; the -fno-* flags each fixed a
#: crash or a wrong result once (README.md beside this file).
BASE_FLAGS = ("-std=c++17", "-ffp-contract=off", "-fno-extern-tls-init", "-fno-gnu-unique",
              "-fvisibility=hidden", "-fPIC", "-shared", "-pthread", "-Wall", "-Wno-unused-function")

#: Extra flags per sanitizer ("" is the plain build the tests use).
SANITIZER_FLAGS = {
    "": ("-O2",),
    "thread": ("-O1", "-g", "-fsanitize=thread"),
    "address": ("-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                "-fsanitize=float-cast-overflow", "-fno-sanitize-recover=all"),
}

#: NVRTC options the emulator understands (anything else is refused, so that a new option in
#: _sources.OPTIONS is looked at here before it is trusted).
KNOWN_OPTIONS = {"--std=c++17", "--fmad=false", "-ftz=true"}

_EXTERN_SHARED = re.compile(r"\bextern\s+__shared__\s+([A-Za-z_][\w ]*?)\s+(\w+)\s*\[\s*\]")
_LAUNCH_BOUNDS = re.compile(r"__launch_bounds__\s*\(([^)]*)\)\s*(\w+)\s*\(")


class EmulationUnavailable(RuntimeError):
    """No C++ compiler, or the harness cannot build here."""


def compiler():
    """The C++ compiler: $CXX, else g++, else clang++; None when there is none."""
    for name in (os.environ.get("CXX"), "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def cache_dir():
    """$GPU_HISTEQ_EMU_CACHE, else ~/.cache/gpu_histeq_emu, else a folder in the temp dir."""
    root = os.environ.get("GPU_HISTEQ_EMU_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gpu_histeq_emu")
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK):
            return Path(root)
    except OSError:
        pass
    fallback = Path(tempfile.gettempdir()) / f"gpu_histeq_emu-{os.getuid()}"
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def _template_args(expression):
    return expression[expression.index("<") + 1:expression.rindex(">")] if "<" in expression else ""


def wrapper_source(code, options, expressions, filename="kernels.cu"):
    """The translation unit: header, the kernel text as given, then the generated launchers."""
    unknown = set(options) - KNOWN_OPTIONS
    if unknown:
        raise EmulationUnavailable(f"NVRTC options the emulator does not model: {sorted(unknown)}")
    if "--fmad=false" not in options:
        raise EmulationUnavailable("without --fmad=false NVRTC contracts a * b + c into fused "
                                   "multiply-adds where it chooses; the emulator cannot follow it")
    ftz_option = "-ftz=true" in options
    lines = ['#include "cuda_emu.h"', f'#line 1 "{filename}"', code, "", '#line 1 "emu_wrapper.cpp"']
    seen = {}
    for ctype, name in _EXTERN_SHARED.findall(code):
        if name in seen and seen[name] != ctype:
            raise EmulationUnavailable(f"extern __shared__ {name} declared with two types")
        seen[name] = ctype
    for name, ctype in seen.items():
        lines.append(f"alignas(16) thread_local {ctype} {name}"
                     f"[emu::kDynamicCapacity / sizeof({ctype})];")
    entries = ", ".join("{[]() -> void* { return (void*)" + name + "; }}" for name in seen)
    lines.append(f"static const emu::DynamicShared emu_dynamic[] = {{{entries or '{nullptr}'}}};")
    bounds = {name: bound for bound, name in _LAUNCH_BOUNDS.findall(code)}
    for index, expression in enumerate(expressions):
        kernel = expression.split("<")[0].strip()
        bound = bounds.get(kernel, "1024")
        ftz = int(ftz_option and re.search(r"\bfloat\b", _template_args(expression)) is not None)
        lines.append(
            f"EMU_EXPORT int gpu_histeq_emu_launch_{index}(const emu::LaunchConfig* config, "
            "void** args, const char* kinds, const int* widths, int nargs, char* error, "
            "int error_size) {\n"
            f"    return emu::launch(&{expression}, ({bound}), {ftz}, emu_dynamic, {len(seen)}, "
            "config, args, kinds, widths, nargs, error, error_size);\n}")
    return "\n".join(lines) + "\n"


class LaunchConfig(ctypes.Structure):
    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3),
                ("shared_mem", ctypes.c_ulonglong), ("static_shared", ctypes.c_ulonglong),
                ("workers", ctypes.c_int), ("stack_bytes", ctypes.c_int)]


class Module:
    """A built library: ``launcher(expression)`` returns its ctypes launcher."""

    def __init__(self, path, expressions, sanitizer):
        self.path, self.expressions, self.sanitizer = path, tuple(expressions), sanitizer
        self.library = ctypes.CDLL(str(path), mode=ctypes.RTLD_LOCAL)
        self._launchers = {}
        for index, expression in enumerate(self.expressions):
            function = getattr(self.library, f"gpu_histeq_emu_launch_{index}")
            function.restype = ctypes.c_int
            function.argtypes = [ctypes.POINTER(LaunchConfig), ctypes.POINTER(ctypes.c_void_p),
                                 ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int,
                                 ctypes.c_char_p, ctypes.c_int]
            self._launchers[expression] = function

    def launcher(self, expression):
        return self._launchers[expression]


_MODULES = {}


def build(code, options, expressions, sanitizer="", filename="kernels.cu"):
    """Compile (or fetch from the cache) and load the emulated module of `code`."""
    expressions = tuple(dict.fromkeys(expressions))
    key = (code, tuple(options), expressions, sanitizer)
    if key in _MODULES:
        return _MODULES[key]
    cxx = compiler()
    if cxx is None:
        raise EmulationUnavailable("no C++ compiler ($CXX, g++ or clang++) to build the CUDA emulator")
    source = wrapper_source(code, options, expressions, filename)
    flags = BASE_FLAGS + SANITIZER_FLAGS[sanitizer]
    digest = hashlib.sha256("\0".join(
        [HEADER.read_text(), source, cxx, *flags]).encode()).hexdigest()[:24]
    target = cache_dir() / f"{digest}{'-' + sanitizer if sanitizer else ''}.so"
    if not target.exists():
        with tempfile.TemporaryDirectory(dir=target.parent) as work:
            unit = Path(work) / "emu_kernels.cpp"
            unit.write_text(source)
            output = Path(work) / target.name
            command = [cxx, *flags, "-I", str(HERE), str(unit), "-o", str(output)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"emulator build failed ({' '.join(command)}):\n{done.stderr[-6000:]}")
            os.replace(output, target)
    module = Module(target, expressions, sanitizer)
    _MODULES[key] = module
    return module


#: Architecture whose static shared memory the launches are checked with (the lent H100/H200).
STATIC_SHARED_ARCH = "sm_90"


def _elf_section_sizes(blob):
    """{section name: size} of a 64-bit little-endian ELF image (a cubin)."""
    import struct
    if blob[:6] != b"\x7fELF\x02\x01":
        raise EmulationUnavailable("NVRTC's CUBIN is not a 64-bit little-endian ELF image")
    (shoff,) = struct.unpack_from("<Q", blob, 0x28)
    entsize, count, names_index = struct.unpack_from("<HHH", blob, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", blob, shoff + i * entsize) for i in range(count)]
    names = blob[headers[names_index][4]:headers[names_index][4] + headers[names_index][5]]
    return {names[h[0]:names.index(b"\0", h[0])].decode(): h[5] for h in headers}


def static_shared(code, options, expressions, filename="kernels.cu"):
    """``{name expression: static __shared__ bytes}`` as NVRTC compiles `code` for
    :data:`STATIC_SHARED_ARCH` (the size of each kernel's ``.nv.shared.<kernel>`` section in the
    CUBIN: what the driver reserves per block), cached beside the emulator builds; None when
    NVRTC (``cuda.bindings``, the nvrtc extra) is not installed."""
    import json
    try:
        from cuda.bindings import nvrtc
    except ImportError:
        return None
    expressions = tuple(dict.fromkeys(expressions))
    digest = hashlib.sha256("\0".join([code, *options, *expressions, STATIC_SHARED_ARCH])
                            .encode()).hexdigest()[:24]
    if digest in _STATIC_SHARED:
        return _STATIC_SHARED[digest]
    cached = cache_dir() / f"{digest}-static-shared.json"
    if cached.exists():
        return _STATIC_SHARED.setdefault(digest, json.loads(cached.read_text()))

    def check(result):
        if result[0] != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise EmulationUnavailable(f"NVRTC failed on {filename}: {result[0]}")
        return result[1:]

    (program,) = check(nvrtc.nvrtcCreateProgram(code.encode(), filename.encode(), 0, [], []))
    try:
        for name in expressions:
            check(nvrtc.nvrtcAddNameExpression(program, name.encode()))
        flags = [o.encode() for o in options] + [f"--gpu-architecture={STATIC_SHARED_ARCH}".encode()]
        check(nvrtc.nvrtcCompileProgram(program, len(flags), flags))
        (size,) = check(nvrtc.nvrtcGetCUBINSize(program))
        blob = b" " * size
        check(nvrtc.nvrtcGetCUBIN(program, blob))
        sections = _elf_section_sizes(blob)
        sizes = {}
        for name in expressions:
            (lowered,) = check(nvrtc.nvrtcGetLoweredName(program, name.encode()))
            lowered = lowered.decode() if isinstance(lowered, bytes) else lowered
            sizes[name] = int(sections.get(f".nv.shared.{lowered}", 0))  # none: no __shared__
    finally:
        nvrtc.nvrtcDestroyProgram(program)
    cached.write_text(json.dumps(sizes))
    return _STATIC_SHARED.setdefault(digest, sizes)


_STATIC_SHARED = {}


def build_sources(sanitizer=""):
    """Build every kernel source of gpu_histeq (one compiler per file, in parallel) and return
    the modules by file name; later RawModule calls for the same text find them built."""
    from concurrent.futures import ThreadPoolExecutor

    from gpu_histeq._cuda import _sources

    def one(filename):
        static_shared(_sources.source(filename), _sources.OPTIONS,
                      _sources.INSTANTIATIONS[filename], filename)  # cached for RawModule
        return build(_sources.source(filename), _sources.OPTIONS, _sources.INSTANTIATIONS[filename],
                     sanitizer=sanitizer, filename=filename)

    names = sorted(_sources.INSTANTIATIONS)
    with ThreadPoolExecutor(len(names)) as pool:
        return dict(zip(names, pool.map(one, names)))
