"""torch tensors and JAX arrays in, the same type out, on the same device.

Tensors cross into the pipeline without copies: CPU tensors as NumPy views, CUDA tensors as CuPy
arrays through DLPack (same memory, same device, the producer's stream synchronised by the
protocol). The result goes back the same way. Neither torch nor JAX is imported here: a tensor
can only exist if its library was imported by the caller, so ``sys.modules`` is enough.
"""

import contextlib
import sys

import numpy as np

from .._backend import is_tensor, tensor_kind

__all__ = ["call"]


def _torch():
    return sys.modules.get("torch")


def _jax():
    return sys.modules.get("jax")


_kind = tensor_kind


def _cupy(param, where):
    try:
        import cupy
    except ImportError as error:
        raise TypeError(
            f"`{param}` is on {where}: gpu_histeq needs CuPy for device tensors "
            f"(pip install 'gpu_histeq[cuda12]' or '[cuda13]'); CuPy failed to import: {error}"
        ) from None
    return cupy


def _device(array):
    """``("cpu", None)`` or ``("cuda", index)`` for a tensor; TypeError for other devices."""
    if _kind(array) == "torch":
        device = array.device
        kind, index = device.type, device.index
    else:
        (device,) = array.devices()
        kind, index = device.platform, device.id
    if kind == "cpu":
        return "cpu", None
    if kind in ("cuda", "gpu"):
        return "cuda", index or 0
    raise TypeError(f"tensors on {kind!r} devices are not supported; "
                    "move them to the CPU or a CUDA GPU")


def to_array(tensor, param="images"):
    """A NumPy (CPU) or CuPy (CUDA) view of `tensor`, sharing its memory."""
    kind = _kind(tensor)
    device, _ = _device(tensor)
    if kind == "torch":
        tensor = tensor.detach()
        if tensor.dtype == _torch().bfloat16:
            raise TypeError(f"`{param}` must have an integer or real floating dtype NumPy "
                            "understands, got torch.bfloat16")
        if tensor.is_conj() or tensor.is_neg():
            tensor = tensor.resolve_conj().resolve_neg()
    if device == "cpu":
        return tensor.numpy() if kind == "torch" else np.asarray(tensor)
    return _cupy(param, "a CUDA device").from_dlpack(tensor)


def from_array(result, like):
    """`result` (NumPy or CuPy) as the tensor type of `like`, on `like`'s device."""
    if isinstance(result, tuple):
        return tuple(from_array(part, like) for part in result)
    if _kind(like) == "torch":
        torch = _torch()
        if isinstance(result, np.ndarray):
            return torch.from_numpy(result)  # shares the memory
        return torch.from_dlpack(result)
    jax = _jax()
    if isinstance(result, np.ndarray):
        (device,) = like.devices()
        return jax.device_put(result, device)
    return jax.dlpack.from_dlpack(result)


def _convert(value, param, device):
    """A tensor argument as an array (same device as `images`), anything else unchanged."""
    if not is_tensor(value):
        return value
    if _device(value)[0] != device:
        raise TypeError(f"`{param}` is on {_device(value)[0]} but `images` is on {device}; "
                        "move it explicitly, gpu_histeq never copies between host and device")
    return to_array(value, param)


def call(function, images, *args, **kwargs):
    """Run the in-memory public `function` on the arrays behind the tensors; return tensors.

    A tensor passed as ``out=`` receives the result in place (torch only: JAX arrays are
    immutable) and is returned itself.
    """
    name = function.__name__
    device, index = _device(images)
    out = kwargs.get("out")
    if out is not None and _kind(out) == "jax":
        raise TypeError("`out` cannot be a JAX array (JAX arrays are immutable)")
    arrays = [_convert(arg, "lut" if name == "apply_lut" else "reference", device) for arg in args]
    converted = {key: _convert(value, key, device) for key, value in kwargs.items()}
    context = contextlib.nullcontext()
    if device == "cuda":
        context = _cupy("images", "a CUDA device").cuda.Device(index)
    with context:
        result = function(to_array(images), *arrays, **converted)
    if is_tensor(out):
        return out
    return from_array(result, images)
