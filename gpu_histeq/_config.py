"""What this installation of gpu_histeq can use: versions, engines, devices, threads.

:func:`show_config` is the ``numpy.show_config`` of gpu_histeq, and ``gpu-histeq info`` prints
the same text. It never fails and never imports an optional library that is not installed:
CuPy is imported (to count the devices) only when it is installed, and any error it raises
is reported as text.
"""

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import sys
from typing import Any, Literal, overload

import numpy as np

from ._version import __version__

__all__ = ["config", "format_config", "show_config"]

#: Optional libraries reported by version: distribution name -> label.
OPTIONAL = {"dask": "dask", "distributed": "distributed", "dask-cuda": "dask-cuda",
            "torch": "torch", "jax": "jax", "matplotlib": "matplotlib", "tifffile": "tifffile",
            "zarr": "zarr", "pillow": "Pillow", "tqdm": "tqdm"}
#: Environment variables that switch the engines or the threads.
SWITCHES = ("GPU_HISTEQ_PORTABLE", "GPU_HISTEQ_CUDA", "GPU_HISTEQ_NUM_THREADS")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}".rstrip(": ")


def _compiled() -> dict[str, Any]:
    from . import _cpu, _engine

    spec = importlib.util.find_spec("gpu_histeq._cpu_kernels")
    built = bool(_cpu.BUILT)
    enabled = _engine.compiled_enabled()
    return {"built": built, "active": built and enabled,
            "library": spec.origin if built and spec is not None else None,
            "switched off": not enabled}


def _devices(cupy: Any) -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = []
    for index in range(cupy.cuda.runtime.getDeviceCount()):
        props = cupy.cuda.runtime.getDeviceProperties(index)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        devices.append({"index": index, "name": str(name),
                        "memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
                        "compute_capability": f"{props['major']}.{props['minor']}"})
    return devices


def _cuda() -> dict[str, Any]:
    from . import _engine

    info: dict[str, Any] = {"cupy": None, "devices": [], "error": None, "enabled": _engine.cuda_enabled()}
    try:
        found = importlib.util.find_spec("cupy") is not None
    except (ImportError, ValueError) as error:  # a broken or half-imported cupy
        info["error"] = _one_line(error)
        return info
    if not found:
        info["error"] = "CuPy is not installed"
        return info
    try:
        cupy = importlib.import_module("cupy")
        info["cupy"] = str(cupy.__version__)
        info["devices"] = _devices(cupy)
    except Exception as error:  # no driver, no device, a CUDA mismatch: reported, never raised
        info["error"] = _one_line(error)
    return info


def _threads() -> dict[str, Any]:
    from . import _planes

    try:
        return {"count": _planes.thread_count(), "error": None}
    except ValueError as error:  # a bad GPU_HISTEQ_NUM_THREADS
        return {"count": None, "error": str(error)}


def config() -> dict[str, dict[str, Any]]:
    """The configuration as a dict (what :func:`show_config` prints).

    Returns
    -------
    dict
        ``"gpu_histeq"`` (version, path), ``"python"``, ``"numpy"``, ``"compiled CPU path"``
        (``built``, ``active``, ``library``, ``switched off``), ``"CUDA path"`` (``cupy``
        version or None, ``devices``, ``enabled``, ``error``), ``"threads"`` (``count``,
        ``error``), ``"environment"`` (the switches that are set) and ``"optional"`` (version
        or None of each optional library).

    Examples
    --------
    >>> from gpu_histeq._config import config
    >>> info = config()
    >>> sorted(info["compiled CPU path"])
    ['active', 'built', 'library', 'switched off']
    """
    return {
        "gpu_histeq": {"version": __version__,
                       "path": os.path.dirname(os.path.abspath(__file__))},
        "python": {"version": platform.python_version(), "implementation":
                   platform.python_implementation(), "platform": platform.platform(),
                   "executable": sys.executable},
        "numpy": {"version": np.__version__},
        "compiled CPU path": _compiled(),
        "CUDA path": _cuda(),
        "threads": _threads(),
        "environment": {name: os.environ[name] for name in SWITCHES if name in os.environ},
        "optional": {label: _version(name) for name, label in OPTIONAL.items()},
    }


def format_config(info: dict[str, dict[str, Any]]) -> str:
    """The text of :func:`show_config` for a dict from :func:`config`."""
    compiled, cuda, threads = info["compiled CPU path"], info["CUDA path"], info["threads"]
    if compiled["active"]:
        cpu = f"active ({compiled['library']})"
    elif compiled["built"]:
        cpu = "built, switched off (GPU_HISTEQ_PORTABLE=1 or _engine.portable()): portable path"
    else:
        cpu = "not built (no C compiler at install time): portable NumPy path, 4-11x slower"
    lines = [
        f"gpu_histeq {info['gpu_histeq']['version']} ({info['gpu_histeq']['path']})",
        f"python {info['python']['version']} ({info['python']['implementation']}, "
        f"{info['python']['platform']})",
        f"numpy {info['numpy']['version']}: CPU backend",
        f"  compiled CPU path: {cpu}",
        "  threads: " + (str(threads["count"]) if threads["error"] is None
                         else f"unusable setting ({threads['error']})"),
    ]
    if cuda["cupy"] is None:
        lines.append(f"cupy: unavailable ({cuda['error']})")
    else:
        lines.append(f"cupy {cuda['cupy']}: GPU backend, CUDA kernels "
                     + ("on" if cuda["enabled"] else "switched off (GPU_HISTEQ_CUDA=0 or "
                        "GPU_HISTEQ_PORTABLE=1): portable path"))
        if cuda["error"] is not None:
            lines.append(f"  devices: none usable ({cuda['error']})")
        elif not cuda["devices"]:
            lines.append("  devices: none")
        for device in cuda["devices"]:
            lines.append(f"  gpu {device['index']}: {device['name']}, {device['memory_gib']} GiB, "
                         f"compute capability {device['compute_capability']}")
    for name, value in info["environment"].items():
        lines.append(f"{name}={value}")
    for label, version in info["optional"].items():
        lines.append(f"{label} {version}" if version else f"{label}: not installed")
    return "\n".join(lines)


@overload
def show_config(mode: Literal["stdout"] = ...) -> None: ...


@overload
def show_config(mode: Literal["dicts"]) -> dict[str, dict[str, Any]]: ...


def show_config(mode: str = "stdout") -> dict[str, dict[str, Any]] | None:
    """Show the versions, engines, devices and threads gpu_histeq uses here.

    Like ``numpy.show_config``. Never raises because of the environment: an unusable CuPy or a
    bad ``GPU_HISTEQ_NUM_THREADS`` is reported, not raised. CuPy is imported only when it is
    installed.

    Parameters
    ----------
    mode : {"stdout", "dicts"}
        Print the report (default), or return it as a dict.

    Returns
    -------
    None or dict
        The dict of :func:`gpu_histeq._config.config` for ``mode="dicts"``.

    Raises
    ------
    ValueError
        If `mode` is neither ``"stdout"`` nor ``"dicts"``.

    See Also
    --------
    numpy.show_config

    Examples
    --------
    >>> import gpu_histeq
    >>> info = gpu_histeq.show_config(mode="dicts")
    >>> info["compiled CPU path"]["built"] in (True, False)
    True
    """
    if mode not in ("stdout", "dicts"):
        raise ValueError(f'`mode` must be "stdout" or "dicts", got {mode!r}')
    info = config()
    if mode == "dicts":
        return info
    print(format_config(info))
    return None
