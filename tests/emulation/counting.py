"""What a call on the emulated CuPy would cost on a GPU: launches, syncs, transfers, bytes.

:func:`counting` hooks the stand-in ``cupy`` (:mod:`fake_cupy`) for the duration of a ``with``
block, without editing it, and records per call into a :class:`Tally`:

* **raw kernel launches** -- every ``RawKernel`` call (the fused CUDA kernels), by name;
* **array-operation launches** -- every ``cupy.*`` function, ndarray method, ufunc and operator
  that returns a new array (or writes an ``out=``): each is at least one kernel on a GPU. Views
  (``reshape``, ``broadcast_to``, basic slicing, ``asarray`` of a device array) and
  ``cupy.empty`` are free; ``zeros`` / ``full`` are one fill each;
* **host synchronisations**, each with the ``file:line`` in gpu_histeq that caused it: ``bool``,
  ``int``, ``float``, ``item``, ``tolist``, ``get``, ``asnumpy`` of device arrays, the two inside
  ``cupy.bincount``, boolean-mask indexing and the other data-dependent output shapes
  (``nonzero``, ``flatnonzero``, ``unique``, ``argwhere``, ``compress``);
* **host <-> device bytes**: ``asarray`` / ``array`` of host data (and host arrays passed to a
  device operation, which CuPy would refuse) up; ``get`` / ``asnumpy`` / scalar reads down;
* **device allocations**: count, bytes and the peak of live bytes allocated inside the block;
* **device bytes moved**: each array operation reads its array operands and writes its results;
  a raw kernel is charged each array argument once (read or written, an upper bound for kernels
  that read a plane once and a lower one for kernels that read it twice: those are named in the
  kernel's comment).

:func:`Tally.modelled_us` turns a tally into time with the model of issue 19: 4 us per launch,
10 us per synchronisation, 3.0 TB/s of device memory, and 25 GB/s over PCIe for transfers.
Nothing here measures a GPU.
"""

import contextlib
import os
import sys
import weakref
from dataclasses import dataclass, field

import numpy as np

from . import fake_cupy

#: The model: seconds per launch, per synchronisation, device and PCIe bandwidth (bytes/s).
LAUNCH_S = 4e-6
SYNC_S = 10e-6
DEVICE_BANDWIDTH = 3.0e12
PCIE_BANDWIDTH = 25e9

#: Functions that return a data-dependent shape: the host waits for the device.
SHAPE_SYNCS = {"nonzero", "flatnonzero", "unique", "argwhere", "compress"}
#: Functions that allocate without launching anything.
NO_LAUNCH = {"empty", "empty_like"}
#: ndarray methods that may launch (reductions and ufunc-based ones go through __array_ufunc__).
METHODS = ("astype", "copy", "fill", "take", "cumsum", "repeat", "ravel", "flatten", "sort",
           "argsort", "nonzero", "round", "dot", "__setitem__", "__getitem__")
SYNC_METHODS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__")

_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_NUMPY = os.path.dirname(os.path.abspath(np.__file__)) + os.sep


@dataclass
class Tally:
    """Everything counted over one ``with counting()`` block."""

    kernels: dict = field(default_factory=dict)
    operations: dict = field(default_factory=dict)
    syncs: list = field(default_factory=list)
    h2d_bytes: int = 0
    d2h_bytes: int = 0
    uploads: list = field(default_factory=list)
    allocations: int = 0
    allocated_bytes: int = 0
    live_bytes: int = 0
    peak_bytes: int = 0
    device_bytes: int = 0

    @property
    def kernel_launches(self):
        return sum(self.kernels.values())

    @property
    def operation_launches(self):
        return sum(self.operations.values())

    @property
    def launches(self):
        return self.kernel_launches + self.operation_launches

    def modelled_us(self):
        """Modelled GPU time in microseconds (launches, syncs, device bytes, PCIe bytes)."""
        seconds = (self.launches * LAUNCH_S + len(self.syncs) * SYNC_S
                   + self.device_bytes / DEVICE_BANDWIDTH
                   + (self.h2d_bytes + self.d2h_bytes) / PCIE_BANDWIDTH)
        return seconds * 1e6

    def sync_sites(self):
        """``{file:line: count}`` of the synchronisations."""
        sites = {}
        for site in self.syncs:
            sites[site] = sites.get(site, 0) + 1
        return sites


_state = {"tally": None, "depth": 0, "capture": False}


def _site():
    """``gpu_histeq/<file>:<line>`` of the innermost frame in the gpu_histeq package (wherever
    it is installed), else ``<file>:<line>`` of the innermost frame outside here and NumPy."""
    import gpu_histeq
    package = os.path.dirname(os.path.abspath(gpu_histeq.__file__)) + os.sep
    frame = sys._getframe(2)
    fallback = None
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if path.startswith(package):
            return f"{os.path.relpath(path, os.path.dirname(package[:-1]))}:{frame.f_lineno}"
        if fallback is None and not path.startswith((_HERE, _NUMPY)):
            fallback = f"{os.path.basename(path)}:{frame.f_lineno}"
        frame = frame.f_back
    return fallback or "?"


def _arrays(values):
    """Every stand-in device array in a (nested) argument structure."""
    found = []
    stack = [values]
    while stack:
        value = stack.pop()
        if isinstance(value, fake_cupy.ndarray):
            found.append(value)
        elif isinstance(value, (tuple, list)):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
    return found


def _host_arrays(values):
    """Plain NumPy arrays (host data) of more than one element among the arguments."""
    found = []
    for value in values:
        if isinstance(value, np.ndarray) and not isinstance(value, fake_cupy.ndarray) \
                and value.size > 1:
            found.append(value)
        elif isinstance(value, (tuple, list)):
            found.extend(_host_arrays(value))
    return found


def _root(array):
    while isinstance(array, np.ndarray) and array.base is not None:
        array = array.base
    return array


def _allocated(tally, array):
    """Record a new device buffer (its bytes live until the buffer is freed)."""
    nbytes = array.nbytes
    tally.allocations += 1
    tally.allocated_bytes += nbytes
    tally.live_bytes += nbytes
    tally.peak_bytes = max(tally.peak_bytes, tally.live_bytes)
    root = _root(array)
    try:
        weakref.finalize(root, _freed, tally, nbytes)
    except TypeError:
        pass


def _freed(tally, nbytes):
    tally.live_bytes -= nbytes


def _shares(result, inputs):
    return any(np.may_share_memory(result, a) for a in inputs)


class CaptureError(RuntimeError):
    """What CUDA stream capture refuses (:func:`capturing`): a host synchronisation or a copy
    from host memory, which would invalidate the capture (CuPy raises on them then)."""


def _sync(tally, nbytes=8, site=None):
    site = site or _site()
    if _state["capture"]:
        raise CaptureError(f"a host synchronisation at {site} during stream capture")
    tally.syncs.append(site)
    tally.d2h_bytes += nbytes


def _uploaded(tally, nbytes):
    site = _site()
    if _state["capture"]:
        raise CaptureError(f"a host-to-device copy of {nbytes} bytes at {site} during stream "
                           "capture")
    tally.h2d_bytes += nbytes
    tally.uploads.append((site, nbytes))


def _record(name, args, kwargs, result, launches=1):
    """Count one operation's launch, bytes and allocations, if it made or wrote an array."""
    tally = _state["tally"]
    inputs = _arrays((args, kwargs))
    outputs = _arrays(result if isinstance(result, (tuple, list)) else (result,))
    written = _arrays(kwargs.get("out", ()))
    new = [r for r in outputs if not _shares(r, inputs)]
    for array in new:
        _allocated(tally, array)
    if not new and not written and name not in ("__setitem__", "fill"):
        return  # a view, or an input handed back
    if name in NO_LAUNCH:
        return
    tally.operations[name] = tally.operations.get(name, 0) + launches
    moved = sum(a.nbytes for a in inputs) + sum(r.nbytes for r in new)
    if name in ("zeros", "zeros_like", "full", "full_like", "ones", "fill"):
        moved = sum(r.nbytes for r in outputs) or moved
    tally.device_bytes += moved
    for host in _host_arrays(args):
        _uploaded(tally, host.nbytes)


def _counted(name, function):
    """`function` counted as one operation when called outside another counted one."""
    def call(*args, **kwargs):
        tally = _state["tally"]
        if tally is None or _state["depth"]:
            return function(*args, **kwargs)
        _state["depth"] += 1
        try:
            result = function(*args, **kwargs)
        finally:
            _state["depth"] -= 1
        if name == "__getitem__" and isinstance(result, np.generic):
            return fake_cupy._wrap(np.asarray(result))  # CuPy: a 0-d device array, read later
        _after(name, args, kwargs, result)
        return result
    call.__name__ = getattr(function, "__name__", name)
    return call


def _after(name, args, kwargs, result):
    tally = _state["tally"]
    if name in ("asarray", "array", "ascontiguousarray") and args and \
            not isinstance(args[0], fake_cupy.ndarray):
        nbytes = result.nbytes if isinstance(result, np.ndarray) else 0
        if nbytes > 8 or (isinstance(args[0], np.ndarray) and args[0].ndim):
            _uploaded(tally, nbytes)
        _allocated(tally, result)
        return
    if name == "asnumpy":
        if isinstance(args[0], fake_cupy.ndarray):
            _sync(tally, args[0].nbytes)
        return
    if name == "bincount":  # CuPy reads the input's min and max on the host
        site = _site()
        _sync(tally, 8, site)
        _sync(tally, 8, site)
    if name in SHAPE_SYNCS:
        _sync(tally)
    if name == "__getitem__":
        key = args[1] if len(args) > 1 else None
        keys = key if isinstance(key, tuple) else (key,)
        advanced = [k for k in keys if isinstance(k, (np.ndarray, list))]
        if not advanced:
            return  # basic indexing: a view (or a scalar read, counted by its conversion)
        if any(np.asarray(k).dtype == bool for k in advanced):
            _sync(tally)
    _record(name, args, kwargs, result)


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """The ufunc on plain views of the stand-in arrays, counted, results as stand-in arrays."""
    plain = [x.view(np.ndarray) if isinstance(x, fake_cupy.ndarray) else x for x in inputs]
    out = kwargs.get("out")
    if out is not None:
        kwargs["out"] = tuple(x.view(np.ndarray) if isinstance(x, fake_cupy.ndarray) else x
                              for x in out)
    tally = _state["tally"]
    outer = tally is not None and not _state["depth"]
    _state["depth"] += 1
    try:
        result = getattr(ufunc, method)(*plain, **kwargs)
    finally:
        _state["depth"] -= 1
    if out is not None:
        result = out[0] if len(out) == 1 else tuple(out)
    elif isinstance(result, np.generic):  # CuPy returns 0-d device arrays, never scalars
        result = fake_cupy._wrap(np.asarray(result))
    else:
        result = fake_cupy._wrap(result)
    if outer:
        name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        _record(name, inputs, {} if out is None else {"out": out}, result)
    return result


def _sync_method(name, original):
    def call(self, *args, **kwargs):
        tally = _state["tally"]
        if tally is not None and not _state["depth"]:
            _sync(tally, self.nbytes if name in ("tolist", "get") else self.itemsize)
        _state["depth"] += 1
        try:
            return original(self, *args, **kwargs)
        finally:
            _state["depth"] -= 1
    return call


def _kernel_call(original):
    def call(self, grid, block, args, **kwargs):
        tally = _state["tally"]
        if tally is None or _state["depth"]:
            return original(self, grid, block, args, **kwargs)
        _state["depth"] += 1
        try:
            result = original(self, grid, block, args, **kwargs)
        finally:
            _state["depth"] -= 1
        tally.kernels[self.name] = tally.kernels.get(self.name, 0) + 1
        tally.device_bytes += sum(a.nbytes for a in _arrays(tuple(args)))
        return result
    return call


@contextlib.contextmanager
def counting():
    """Count everything the stand-in cupy does inside the block into the yielded :class:`Tally`.

    The stand-in must be the ``cupy`` module (:func:`fake_cupy.install`). Not reentrant.
    """
    if _state["tally"] is not None:
        raise RuntimeError("counting() blocks do not nest")
    tally = Tally()
    module = vars(fake_cupy)
    saved_module = {}
    saved_class = {}

    def patch_module(name, value):
        saved_module[name] = module.get(name, _MISSING)
        module[name] = value

    def patch_class(name, value):
        saved_class[name] = fake_cupy.ndarray.__dict__.get(name, _MISSING)
        setattr(fake_cupy.ndarray, name, value)

    original_getattr = module["__getattr__"]

    def counted_getattr(name):
        value = original_getattr(name)
        if callable(value) and not isinstance(value, type) and not name.startswith("_"):
            return _counted(name, value)
        return value

    patch_module("__getattr__", counted_getattr)
    for name in ("empty", "zeros", "ones", "full", "empty_like", "zeros_like", "full_like",
                 "array", "asarray", "ascontiguousarray", "asnumpy"):
        patch_module(name, _counted(name, module[name]))
    patch_class("__array_ufunc__", _array_ufunc)
    for name in METHODS:
        patch_class(name, _counted(name, getattr(np.ndarray, name)))
    for name in SYNC_METHODS:
        patch_class(name, _sync_method(name, getattr(np.ndarray, name)))
    patch_class("get", _sync_method("get", fake_cupy.ndarray.get))
    saved_kernel = fake_cupy.RawKernel.__call__
    fake_cupy.RawKernel.__call__ = _kernel_call(saved_kernel)
    _state["tally"] = tally
    try:
        yield tally
    finally:
        _state["tally"] = None
        fake_cupy.RawKernel.__call__ = saved_kernel
        for name, value in saved_class.items():
            if value is _MISSING:
                delattr(fake_cupy.ndarray, name)
            else:
                setattr(fake_cupy.ndarray, name, value)
        for name, value in saved_module.items():
            if value is _MISSING:
                del module[name]
            else:
                module[name] = value


_MISSING = object()


@contextlib.contextmanager
def capturing():
    """:func:`counting`, as under CUDA stream capture (``cupy.cuda.Stream.begin_capture``): a
    host synchronisation (a read of device data: ``int``, ``bool``, ``.get()``, ``bincount``,
    boolean-mask indexing, ...) or a host-to-device copy raises :class:`CaptureError` where it
    happens. Kernel launches, array operations and allocations are allowed (CuPy's pool serves
    them; a captured graph replays into the same buffers). Yields the :class:`Tally`."""
    with counting() as tally:
        _state["capture"] = True
        try:
            yield tally
        finally:
            _state["capture"] = False
