"""Functionals of the transforms, as ``torchvision.transforms.v2.functional`` writes them.

:func:`equalize` behaves like ``torchvision.transforms.v2.functional.equalize``: the same
inputs (tensors, ``tv_tensors.Image`` / ``tv_tensors.Video``, PIL images), the same output type,
dtype and values (bit for bit), on the CPU and on CUDA devices, with gpu_histeq's batched
pipeline underneath (one call for every ``(H, W)`` plane of a batch). :func:`equalize_hist`,
:func:`clahe` and :func:`match_histograms` are the functionals of
:class:`~gpu_histeq.transforms.EqualizeHist`, :class:`~gpu_histeq.transforms.CLAHE` and
:class:`~gpu_histeq.transforms.MatchHistograms`.

Importing this module imports neither torch nor torchvision; calling a functional needs both.
"""

from .. import clahe as _clahe
from .. import equalize_hist as _equalize_hist
from .. import match_histograms as _match_histograms

__all__ = ["equalize", "equalize_hist", "clahe", "match_histograms"]

#: The image axes of (..., C, H, W) tensors: every (H, W) plane is one image.
PLANE = (-2, -1)


def _libraries():
    try:
        import torch
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional
    except ImportError as error:
        raise ImportError("gpu_histeq.transforms.functional needs torch and torchvision (pip "
                          f"install torch torchvision); importing them failed: {error}") from None
    return torch, tv_tensors, functional


def _is_pil(inpt):
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - torchvision depends on Pillow
        return False
    return isinstance(inpt, Image.Image)


def on_planes(inpt, run, name, error=ValueError):
    """``run(tensor)`` on the ``(..., H, W)`` planes behind `inpt`, returned as `inpt`'s type.

    Parameters
    ----------
    inpt : torch.Tensor, tv_tensors.Image, tv_tensors.Video or PIL.Image.Image
        A PIL image becomes a ``(C, H, W)`` tensor and, when `run` keeps its dtype, a PIL image
        of the same mode again.
    run : callable
        ``(..., H, W)`` plain tensor -> tensor of the same shape.
    name : str
        The functional, for messages.

    Raises
    ------
    TypeError
        Another type (``tv_tensors.Mask``, boxes, NumPy arrays ...), as torchvision's
        functionals refuse them; a PIL image whose result is not of its dtype.
    ValueError
        A tensor of fewer than 2 dimensions (or `error`: ``equalize`` raises IndexError there,
        as torchvision).
    """
    torch, tv_tensors, functional = _libraries()
    if _is_pil(inpt):
        tensor = functional.pil_to_tensor(inpt)
        output = run(tensor)
        if output.dtype != tensor.dtype:
            raise TypeError(f"{name} of a PIL image gives {output.dtype}, which a PIL image of "
                            f"mode {inpt.mode!r} cannot hold: convert to a tensor first "
                            "(torchvision.transforms.v2.PILToImage())")
        return functional.to_pil_image(output, mode=inpt.mode)
    plain = isinstance(inpt, torch.Tensor) and not isinstance(inpt, tv_tensors.TVTensor)
    if not (plain or isinstance(inpt, (tv_tensors.Image, tv_tensors.Video))):
        raise TypeError(f"{name} takes a torch.Tensor, tv_tensors.Image, tv_tensors.Video or a "
                        f"PIL image, got {type(inpt).__module__}.{type(inpt).__qualname__}")
    if inpt.ndim < 2:
        raise error(f"{name} needs images of shape (..., H, W), got a tensor of shape "
                         f"{tuple(inpt.shape)}")
    output = run(inpt.as_subclass(torch.Tensor))
    return output if plain else tv_tensors.wrap(output, like=inpt)


def equalize(inpt):
    """Equalize every ``(H, W)`` plane as ``torchvision.transforms.v2.functional.equalize``.

    Parameters
    ----------
    inpt : (..., C, H, W) torch.Tensor, tv_tensors.Image, tv_tensors.Video or PIL.Image.Image
        Any integer or floating dtype, on the CPU or a CUDA device.

    Returns
    -------
    out : same type, shape, dtype and device as `inpt`
        PIL's equalization of each plane (``PIL.ImageOps.equalize``'s table, a plane whose
        table would be degenerate left unchanged). An empty tensor is returned as is.

    Raises
    ------
    TypeError
        Other input types, bool tensors (as torchvision).
    IndexError
        Tensors of fewer than 2 dimensions.
    OSError
        PIL images of modes other than ``"L"``, ``"RGB"`` and ``"P"`` (PIL's own error).

    See Also
    --------
    torchvision.transforms.v2.functional.equalize : equal bit for bit (tested on uint8, other
        integer and floating dtypes, PIL images, images and videos).
    gpu_histeq.equalize_hist : ``method="pil"``, which does the work.

    Notes
    -----
    Tensors that are not uint8 go through ``torchvision.transforms.v2.functional.to_dtype``
    (``scale=True``) to uint8 and back, exactly as torchvision does. uint8 tensors are equalized
    in one batched call (NumPy views on the CPU, CuPy through DLPack on CUDA devices). PIL images
    of mode ``"L"`` and ``"RGB"`` take the same path; other modes are handed to
    ``PIL.ImageOps.equalize`` itself, as torchvision does.

    Examples
    --------
    >>> import torch
    >>> from gpu_histeq.transforms.functional import equalize
    >>> image = (torch.arange(1024) % 64).reshape(1, 32, 32).to(torch.uint8)  # levels 0..63
    >>> equalize(image)[0, 0, :4]
    tensor([ 0,  5, 11, 16], dtype=torch.uint8)
    """
    torch, tv_tensors, functional = _libraries()
    if type(inpt) is torch.Tensor and inpt.numel() == 0:
        return inpt  # torchvision returns an empty tensor itself
    if _is_pil(inpt) and inpt.mode not in ("L", "RGB"):
        from PIL import ImageOps
        return ImageOps.equalize(inpt)

    def run(images):
        if images.numel() == 0:
            return images
        as_uint8 = functional.to_dtype(images, torch.uint8, scale=True)
        output = _equalize_hist(as_uint8, axes=PLANE, method="pil")
        return functional.to_dtype(output, images.dtype, scale=True)

    return on_planes(inpt, run, "equalize", IndexError)


def equalize_hist(inpt, nbins=256, method=None, mask=None, luminance=False):
    """:func:`gpu_histeq.equalize_hist` of every ``(H, W)`` plane of a tensor, image, video or
    PIL image (the functional of :class:`~gpu_histeq.transforms.EqualizeHist`).

    Parameters
    ----------
    inpt : (..., C, H, W) torch.Tensor, tv_tensors.Image, tv_tensors.Video or PIL.Image.Image
    nbins, method
        As :func:`gpu_histeq.equalize_hist`.
    mask : (H, W) or broadcastable bool tensor, optional
        On the device of `inpt`.
    luminance : bool, optional
        Equalize the luma of ``(..., 3, H, W)`` RGB and keep the chroma.

    Returns
    -------
    out : the type of `inpt`
        :func:`gpu_histeq.equalize_hist`'s dtype; a PIL image only when that is the image's
        dtype (``"opencv"`` and ``"pil"``; TypeError otherwise).

    Examples
    --------
    >>> import torch
    >>> from gpu_histeq.transforms.functional import equalize_hist
    >>> equalize_hist(torch.tensor([[[0, 0], [1, 2]]], dtype=torch.uint8))
    tensor([[[  0,   0],
             [128, 255]]], dtype=torch.uint8)
    """
    return on_planes(inpt, lambda images: _equalize_hist(
        images, nbins, axes=PLANE, method=method, mask=mask,
        channel_axis=-3 if luminance else None, luminance=luminance), "equalize_hist")


def clahe(inpt, clip_limit=40.0, tile_grid=(8, 8)):
    """OpenCV's CLAHE (:func:`gpu_histeq.clahe`) of every ``(H, W)`` plane of a uint8/uint16
    tensor, image, video or PIL image (the functional of :class:`~gpu_histeq.transforms.CLAHE`);
    the type, dtype and device of `inpt` come back.

    Examples
    --------
    >>> import torch
    >>> from gpu_histeq.transforms.functional import clahe
    >>> clahe(torch.zeros((1, 16, 16), dtype=torch.uint8), 2.0, (2, 2)).shape
    torch.Size([1, 16, 16])
    """
    return on_planes(inpt, lambda images: _clahe(images, clip_limit, tile_grid, axes=PLANE),
                     "clahe")


def match_histograms(inpt, reference):
    """:func:`gpu_histeq.match_histograms` of every ``(H, W)`` plane (the functional of
    :class:`~gpu_histeq.transforms.MatchHistograms`).

    Parameters
    ----------
    inpt : (..., C, H, W) torch.Tensor, tv_tensors.Image, tv_tensors.Video or PIL.Image.Image
    reference : (H', W') or (C, H', W') tensor
        On the device of `inpt`. ``(H', W')``: one reference for every plane (float64 result,
        float32 for float16/32 input); ``(C, H', W')``: channel ``c`` matched to
        ``reference[c]`` (the input's dtype, so PIL images stay PIL images).

    Raises
    ------
    ValueError
        A ``(C, H', W')`` reference whose channels differ from the images'.

    Examples
    --------
    >>> import torch
    >>> from gpu_histeq.transforms.functional import match_histograms
    >>> match_histograms(torch.tensor([[0, 1], [2, 3]], dtype=torch.uint8),
    ...                  torch.tensor([[10, 10], [20, 30]], dtype=torch.uint8))
    tensor([[10., 10.],
            [20., 30.]], dtype=torch.float64)
    """
    def run(images):
        if reference.ndim == 3:
            if images.ndim < 3 or images.shape[-3] != reference.shape[0]:
                raise ValueError(f"`reference` has {reference.shape[0]} channels but the images "
                                 f"have shape {tuple(images.shape)} (channels at -3)")
            return _match_histograms(images, reference, axes=PLANE, channel_axis=-3)
        return _match_histograms(images, reference, axes=PLANE)

    return on_planes(inpt, run, "match_histograms")
