"""A stand-in ``cupy`` module for tests: NumPy arrays in host memory, kernels run by the emulator.

Installed as ``sys.modules["cupy"]`` by the ``cupy-emulated`` fixtures (tests/conftest.py) for
the duration of one test, so gpu_histeq's real CuPy code (``_backend``, ``_cuda``,
``_cuda._kernels``) runs unchanged against it:

* :class:`ndarray` is a NumPy subclass whose ``.data.ptr`` is the buffer's address; ``.get()``
  copies to a plain NumPy array, ``.device`` is a context manager;
* every other ``cupy.*`` function is NumPy's, its array results viewed as :class:`ndarray`;
  the creation functions allocate 256-byte-aligned buffers, as CuPy's allocator does;
* :class:`RawModule` compiles the source text with :mod:`build` and ``get_function(name)``
  returns a kernel called as CuPy's, ``kernel(grid, block, args, shared_mem=0)``, whose launch
  the emulator checks as the driver would (:func:`emu::launch` in cuda_emu.h).

The arithmetic of the portable path is NumPy's here: CuPy compiles its own elementwise kernels
with ``-ftz=true``, so on a GPU float32 subnormals are flushed where NumPy keeps them; tests
compute that reference inside :func:`flushed_float32` (README.md).
"""

import contextlib
import ctypes
import functools
import math
import os
import sys

import numpy as np

from . import build as _build

__version__ = "0.0-emulated"

#: Sanitizer of the emulator builds ("" plain, "thread", "address"); set before the first launch.
SANITIZER = os.environ.get("GPU_HISTEQ_EMU_SANITIZER", "")
#: OS threads running the blocks of one launch.
WORKERS = int(os.environ.get("GPU_HISTEQ_EMU_WORKERS", "2"))
#: Launches the emulator accepted and ran to the end, by kernel name expression (a refused or
#: failed launch raises EmulatedLaunchError and is not counted).
LAUNCHES = {}
#: Launches taken by :func:`stubbed_launches` (checked, not run), by kernel name expression.
STUBBED = {}
_stub = {"on": False}


@contextlib.contextmanager
def stubbed_launches():
    """Within this block a kernel launch checks its grid, block and shared memory as the driver
    would, counts itself in :data:`STUBBED` and returns without running: only the host's own
    work of a call remains (``benchmarks/bench_host_overhead.py``). Results are then garbage."""
    previous = _stub["on"]
    _stub["on"] = True
    try:
        yield STUBBED
    finally:
        _stub["on"] = previous


class EmulatedLaunchError(RuntimeError):
    """A launch the driver would refuse, or a kernel that deadlocked or diverged at a barrier."""


class _Pointer:
    __slots__ = ("ptr",)

    def __init__(self, ptr):
        self.ptr = ptr


class _Device:
    id = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        pass


class ndarray(np.ndarray):
    """A NumPy array standing in for a device array."""

    _data = None  # the _Pointer, kept on first use (CuPy keeps its MemoryPointer too)

    @property
    def data(self):
        data = self._data
        if data is None:
            data = self._data = _Pointer(self.__array_interface__["data"][0])
        return data

    @property
    def device(self):
        return _Device()

    def __array_function__(self, func, types, args, kwargs):
        # NumPy functions of device arrays return device arrays, as CuPy's do
        return _wrap(super().__array_function__(func, types, args, kwargs))

    def get(self, stream=None, order="C", out=None):
        host = np.array(self.view(np.ndarray), order=order)
        if out is not None:
            out[...] = host
            return out
        return host


def _wrap(value):
    if isinstance(value, np.ndarray) and not isinstance(value, ndarray):
        return value.view(ndarray)
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _aligned_empty(shape, dtype=float, order="C"):
    dtype = np.dtype(dtype)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + 256, np.uint8)
    address = raw.__array_interface__["data"][0]
    offset = (-address) % 256
    array = raw[offset:offset + nbytes].view(dtype)
    if order == "F":
        return array.reshape(shape[::-1]).T.view(ndarray)
    array = array.reshape(shape).view(ndarray)
    array._data = _Pointer(address + offset)
    return array


def empty(shape, dtype=float, order="C"):
    return _aligned_empty(shape, dtype, order)


def zeros(shape, dtype=float, order="C"):
    out = _aligned_empty(shape, dtype, order)
    out[...] = 0
    return out


def ones(shape, dtype=float, order="C"):
    out = _aligned_empty(shape, dtype, order)
    out[...] = 1
    return out


def full(shape, fill_value, dtype=None, order="C"):
    dtype = np.array(fill_value).dtype if dtype is None else dtype
    out = _aligned_empty(shape, dtype, order)
    out[...] = fill_value
    return out


def empty_like(a, dtype=None, order="K", subok=None, shape=None):
    return _aligned_empty(a.shape if shape is None else shape, a.dtype if dtype is None else dtype)


def zeros_like(a, dtype=None, order="K", subok=None, shape=None):
    out = empty_like(a, dtype, shape=shape)
    out[...] = 0
    return out


def full_like(a, fill_value, dtype=None, order="K", subok=None, shape=None):
    out = empty_like(a, dtype, shape=shape)
    out[...] = fill_value
    return out


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(obj, ndarray) and not copy and (dtype is None or np.dtype(dtype) == obj.dtype):
        return obj
    host = np.array(obj.view(np.ndarray) if isinstance(obj, ndarray) else obj, dtype=dtype, ndmin=ndmin)
    out = _aligned_empty(host.shape, host.dtype)
    out[...] = host
    return out


def asarray(obj, dtype=None, order=None):
    if isinstance(obj, ndarray) and (dtype is None or np.dtype(dtype) == obj.dtype):
        return obj
    return array(obj, dtype=dtype)


def ascontiguousarray(a, dtype=None):
    if isinstance(a, ndarray) and a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    return array(a, dtype=dtype)


def asnumpy(a, stream=None, order="C", out=None):
    return a.get(order=order, out=out) if isinstance(a, ndarray) else np.asarray(a, order=order)


def memoize(for_each_device=False):
    """CuPy's memoize: results cached per argument tuple (one emulated device)."""
    def decorator(function):
        cache = {}

        @functools.wraps(function)
        def wrapper(*args):
            if args not in cache:
                cache[args] = function(*args)
            return cache[args]
        return wrapper
    return decorator


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def getDeviceProperties(index):
        return {"name": b"gpu_histeq CPU emulator", "totalGlobalMem": 0}


class cuda:  # noqa: N801 -- the cupy.cuda namespace
    runtime = _Runtime()
    Device = staticmethod(lambda index=0: _Device())


def _matching_instantiations(code):
    """Every instantiation _sources lists for this text: one build serves every kernel() call."""
    if "gpu_histeq_" not in (code or ""):
        return "kernels.cu", ()
    from gpu_histeq._cuda import _sources
    for filename, names in _sources.INSTANTIATIONS.items():
        if _sources.source(filename) == code:
            return filename, names
    return "kernels.cu", ()


class RawModule:
    """``cupy.RawModule(code=..., options=..., name_expressions=...)`` built for the emulator."""

    def __init__(self, code=None, options=(), name_expressions=None, **unsupported):
        if unsupported:
            raise TypeError(f"RawModule arguments the stand-in does not model: {sorted(unsupported)}")
        if name_expressions is None:
            raise TypeError("the stand-in RawModule needs name_expressions")
        filename, listed = _matching_instantiations(code)
        self.name_expressions = tuple(name_expressions)
        expressions = (*listed, *self.name_expressions)
        self._module = _build.build(code, tuple(options), expressions,
                                    sanitizer=SANITIZER, filename=filename)
        self._static = _build.static_shared(code, tuple(options), expressions, filename)

    def get_function(self, name):
        if name not in self.name_expressions:
            raise KeyError(f"{name} is not among this module's name_expressions")
        static = None if self._static is None else self._static[name]
        return RawKernel(name, self._module.launcher(name), static)


_KINDS = {"b": b"b", "i": b"i", "u": b"u", "f": b"f"}


def _argument(value):
    """(kind, width, bytes) of one kernel argument, as CuPy would pass it."""
    if isinstance(value, ndarray):
        return b"p", 8, int(value.data.ptr).to_bytes(8, "little")
    if isinstance(value, np.ndarray):
        raise TypeError(f"a numpy.ndarray cannot be a kernel argument (got shape {value.shape})")
    if isinstance(value, (bool, np.bool_)):
        value = np.bool_(value)
    elif isinstance(value, int):
        value = np.int64(value)
    elif isinstance(value, float):
        value = np.float64(value)
    if not isinstance(value, np.generic) or value.dtype.kind not in _KINDS:
        raise TypeError(f"unsupported kernel argument {value!r}")
    return _KINDS[value.dtype.kind], value.dtype.itemsize, value.tobytes()


def _dims(value, what):
    dims = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, (int, np.integer)) for d in dims):
        raise TypeError(f"`{what}` must be 1 to 3 integers, got {value!r}")
    return [int(d) for d in dims] + [1] * (3 - len(dims))


class RawKernel:
    """One emulated instantiation, called as ``kernel(grid, block, args, shared_mem=0)``.

    ``shared_size_bytes`` is its static shared memory as NVRTC compiles it (CuPy's attribute of
    the same name), None without NVRTC; every launch is refused when that plus `shared_mem` is
    over 48 KiB (only `shared_mem` is checked when it is None).
    """

    def __init__(self, name, launcher, shared_size_bytes=None):
        self.name, self._launcher = name, launcher
        self.shared_size_bytes = shared_size_bytes

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None):
        if _stub["on"]:  # the stub: the launch checks, no run
            if type(grid) is not tuple or type(block) is not tuple:
                grid, block = tuple(_dims(grid, "grid")), tuple(_dims(block, "block"))
            dims = grid + block
            if (not (0 < len(grid) <= 3 and 0 < len(block) <= 3) or min(dims) < 0
                    or max(dims) >= 1 << 32
                    or shared_mem + (self.shared_size_bytes or 0) > 48 << 10):
                raise EmulatedLaunchError(f"{self.name}: invalid grid {grid}, block {block} or "
                                          f"{shared_mem} bytes of dynamic shared memory")
            STUBBED[self.name] = STUBBED.get(self.name, 0) + 1
            return
        grid, block = _dims(grid, "grid"), _dims(block, "block")
        if min(grid + block) < 0 or max(grid + block) >= 1 << 32:
            raise EmulatedLaunchError(f"{self.name}: invalid grid {grid} or block {block}")
        config = _build.LaunchConfig()
        config.grid[:] = grid
        config.block[:] = block
        config.shared_mem = int(shared_mem)
        config.static_shared = self.shared_size_bytes or 0
        config.workers = WORKERS
        config.stack_bytes = (256 if SANITIZER else 64) << 10
        parts = [_argument(a) for a in args]
        buffers = [ctypes.create_string_buffer(data, 8) for _, _, data in parts]
        pointers = (ctypes.c_void_p * max(1, len(parts)))(
            *[ctypes.cast(b, ctypes.c_void_p) for b in buffers])
        kinds = b"".join(kind for kind, _, _ in parts) + b"\0"
        widths = (ctypes.c_int * max(1, len(parts)))(*[width for _, width, _ in parts])
        error = ctypes.create_string_buffer(2048)
        status = self._launcher(ctypes.byref(config), pointers, kinds, widths, len(parts),
                                error, len(error))
        if status:
            raise EmulatedLaunchError(f"{self.name}: {error.value.decode(errors='replace')}")
        LAUNCHES[self.name] = LAUNCHES.get(self.name, 0) + 1


def __getattr__(name):
    """Everything else is NumPy's, with array results viewed as :class:`ndarray`."""
    value = getattr(np, name)
    if callable(value) and not isinstance(value, type):
        @functools.wraps(value)
        def call(*args, **kwargs):
            return _wrap(value(*args, **kwargs))
        return call
    return value


_FTZ_DAZ = 0x8040


@contextlib.contextmanager
def flushed_float32():
    """Within this block this thread's float arithmetic flushes subnormals (x86 FTZ and DAZ), as
    CuPy's own kernels, compiled with ``-ftz=true``, do with float32 on a GPU: the stand-in's
    portable path then computes what the portable CuPy path computes there. (x86 flushes
    float64 subnormals too, which a GPU does not: use it for float32 data only.)"""
    if not _build._MODULES:
        from gpu_histeq._cuda import _sources
        _build.build(_sources.source("uniform.cu"), _sources.OPTIONS,
                     _sources.INSTANTIATIONS["uniform.cu"], sanitizer=SANITIZER,
                     filename="uniform.cu")
    function = next(iter(_build._MODULES.values())).library.gpu_histeq_emu_mxcsr
    function.restype, function.argtypes = ctypes.c_uint, [ctypes.c_uint, ctypes.c_uint]
    previous = function(_FTZ_DAZ, 0)
    if previous == 0xFFFFFFFF:
        raise NotImplementedError("flush-to-zero is modelled on x86-64 only")
    try:
        yield
    finally:
        function(previous & _FTZ_DAZ, ~previous & _FTZ_DAZ)


def install(monkeypatch):
    """Make this module ``cupy`` for the current test (undone by `monkeypatch`)."""
    monkeypatch.setitem(sys.modules, "cupy", sys.modules[__name__])
