"""torchvision ``transforms.v2`` transforms: equalize inside a training pipeline.

:class:`EqualizeHist`, :class:`CLAHE` and :class:`MatchHistograms` take the public functions'
parameters as constructor arguments (checked there) and work inside
``torchvision.transforms.v2.Compose`` on torch tensors, ``tv_tensors.Image`` and
``tv_tensors.Video`` of shape ``(..., C, H, W)`` and PIL images: every ``(H, W)`` plane -- each
channel of each image of a batch -- is equalized on its own, as
``torchvision.transforms.v2.functional.equalize`` does. Each calls its functional in
:mod:`gpu_histeq.transforms.functional` (which also holds ``equalize``, torchvision's
``equalize`` bit for bit). CPU tensors are processed through NumPy views, CUDA tensors through
DLPack and CuPy, on their device and without a host copy (the public functions do this).
Everything else in a sample
(labels, bounding boxes, masks, and pure tensors next to an explicit image) passes through
unchanged, by torchvision's rules.

Importing this module imports neither torch nor torchvision: the classes are made (subclassing
``torchvision.transforms.v2.Transform``) the first time one of them is looked up. Without
torchvision, the names still import, and constructing one raises an ImportError that names what
to install.
"""

import numbers

__all__ = ["EqualizeHist", "CLAHE", "MatchHistograms"]

_METHODS = (None, "opencv", "pil", "skimage")
_CLASSES = {}


def __getattr__(name):
    """The transform classes, made on first use (PEP 562)."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if not _CLASSES:
        _CLASSES.update(_make_classes())
    return _CLASSES[name]


def __dir__():
    return sorted(list(globals()) + __all__)


# ---------------------------------------------------------------------------------------------
# argument checks (no torch needed)

def _check_nbins(nbins):
    if isinstance(nbins, bool) or not isinstance(nbins, numbers.Integral):
        raise TypeError(f"`nbins` must be a positive integer, got {nbins!r}")
    if nbins < 1:
        raise ValueError(f"`nbins` must be a positive integer, got {nbins!r}")
    return int(nbins)


def _check_method(method):
    if method is not None and not isinstance(method, str):
        raise TypeError(f"`method` must be None or one of 'opencv', 'pil', 'skimage', got {method!r}")
    if method not in _METHODS:
        raise ValueError(f"`method` must be None or one of 'opencv', 'pil', 'skimage', got {method!r}")
    return method


def _check_bool(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool, got {value!r}")
    return value


def _check_clip_limit(clip_limit):
    if isinstance(clip_limit, bool) or not isinstance(clip_limit, numbers.Real):
        raise TypeError(f"`clip_limit` must be a real number >= 0, got {clip_limit!r}")
    if not clip_limit >= 0 or clip_limit == float("inf"):
        raise ValueError(f"`clip_limit` must be a finite number >= 0, got {clip_limit!r}")
    return float(clip_limit)


def _check_tile_grid(tile_grid):
    if not isinstance(tile_grid, (tuple, list)) or len(tile_grid) != 2:
        raise ValueError(f"`tile_grid` must be two positive integers (tiles_x, tiles_y), got {tile_grid!r}")
    for entry in tile_grid:
        if isinstance(entry, bool) or not isinstance(entry, numbers.Integral):
            raise TypeError(f"`tile_grid` entries must be integers, got {tile_grid!r}")
        if entry < 1:
            raise ValueError(f"`tile_grid` entries must be >= 1, got {tile_grid!r}")
    return (int(tile_grid[0]), int(tile_grid[1]))


def _check_array(value, name, ndims, torch, boolean=False):
    """A torch tensor or a NumPy array with one of `ndims` dimensions (non-empty)."""
    import numpy as np

    if isinstance(value, torch.Tensor):
        value = value.detach().as_subclass(torch.Tensor)
        dtype_ok = value.dtype == torch.bool if boolean else not (
            value.is_complex() or value.dtype in (torch.bool, torch.bfloat16))
    elif isinstance(value, np.ndarray):
        dtype_ok = value.dtype == np.bool_ if boolean else value.dtype.kind in "uif"
    else:
        raise TypeError(f"`{name}` must be a torch.Tensor or a numpy.ndarray, got {type(value).__name__}")
    if not dtype_ok:
        wanted = "bool" if boolean else "an integer or real floating"
        raise TypeError(f"`{name}` must have {wanted} dtype, got {value.dtype}")
    if value.ndim not in ndims:
        raise ValueError(f"`{name}` must have {' or '.join(map(str, ndims))} dimensions, got shape "
                         f"{tuple(value.shape)}")
    if not boolean and 0 in tuple(value.shape):
        raise ValueError(f"`{name}` must not be empty, got shape {tuple(value.shape)}")
    return value


# ---------------------------------------------------------------------------------------------
# the classes

def _missing(name, error):
    """A stand-in for transform `name` when torchvision cannot be imported."""
    def __init__(self, *args, **kwargs):
        raise ImportError(
            f"gpu_histeq.transforms.{name} needs torch and torchvision (pip install torch "
            f"torchvision); importing them failed: {error}")

    return type(name, (), {"__init__": __init__, "__module__": __name__,
                           "__doc__": f"Needs torch and torchvision ({error})."})


def _make_classes():
    try:
        import torch
        from torchvision import tv_tensors
        from torchvision.transforms import v2
    except ImportError as error:
        return {name: _missing(name, error) for name in __all__}
    from . import functional

    try:
        from PIL import Image as _pil
        pil_type = (_pil.Image,)
    except ImportError:  # pragma: no cover - torchvision depends on Pillow
        pil_type = ()

    def is_pure_tensor(value):
        return isinstance(value, torch.Tensor) and not isinstance(value, tv_tensors.TVTensor)

    class _PlaneTransform(v2.Transform):
        """Shared by the three: what is transformed (tensors, images, videos, PIL images)."""

        _transformed_types = (tv_tensors.Image, tv_tensors.Video, is_pure_tensor) + pil_type

        def __init__(self):
            super().__init__()
            self._per_device = {}

        def transform(self, inpt, params):
            return self._apply(inpt)

        def _on_device(self, name, value, like):
            """`value` (tensor or ndarray) as a tensor on `like`'s device, copied once each."""
            if value is None:
                return None
            device = getattr(like, "device", "cpu")  # PIL images are on the CPU
            key = (name, str(device))
            if key not in self._per_device:
                self._per_device[key] = torch.as_tensor(value, device=device)
            return self._per_device[key]

    class EqualizeHist(_PlaneTransform):
        """Histogram equalization of every ``(H, W)`` plane, as a ``transforms.v2`` transform.

        Parameters
        ----------
        nbins : int, optional
            As :func:`gpu_histeq.equalize_hist`: bins for ``method="skimage"`` on floating images.
        method : {None, "opencv", "pil", "skimage"}, optional
            Whose numbers to reproduce; None picks ``"opencv"`` for uint8/uint16 tensors and
            ``"skimage"`` otherwise. ``"pil"`` on uint8 equals
            ``torchvision.transforms.v2.functional.equalize`` bit for bit.
        mask : (H, W) or broadcastable bool tensor or ndarray, optional
            Histograms count the selected pixels only; every pixel is remapped.
        luminance : bool, optional
            For ``(..., 3, H, W)`` RGB tensors: equalize the luma and keep the chroma (OpenCV's
            YCrCb round trip) instead of each channel on its own.

        Notes
        -----
        Input: tensors, ``tv_tensors.Image`` or ``tv_tensors.Video`` of shape ``(..., C, H, W)``
        (any batch shape), on the CPU or a CUDA device, or PIL images; the output keeps the type,
        shape and device, with :func:`gpu_histeq.equalize_hist`'s dtype (the input's for
        ``"opencv"`` and ``"pil"``; float32/float64 for ``"skimage"``). torchvision's ``equalize`` turns floating
        images into uint8 first; this transform does not (use ``method="skimage"`` results,
        convert with ``v2.ToDtype(torch.uint8, scale=True)`` before it, or call
        :func:`gpu_histeq.transforms.functional.equalize`, which does as torchvision).

        Examples
        --------
        >>> import torch
        >>> from torchvision.transforms import v2
        >>> from gpu_histeq.transforms import EqualizeHist
        >>> pipeline = v2.Compose([v2.RandomHorizontalFlip(), EqualizeHist(method="pil")])
        >>> batch = torch.randint(60, 120, (8, 3, 96, 96), dtype=torch.uint8)
        >>> pipeline(batch).shape
        torch.Size([8, 3, 96, 96])
        """

        def __init__(self, nbins=256, *, method=None, mask=None, luminance=False):
            super().__init__()
            self.nbins = _check_nbins(nbins)
            self.method = _check_method(method)
            self.luminance = _check_bool(luminance, "luminance")
            self._mask = None if mask is None else _check_array(mask, "mask", (2, 3, 4, 5), torch,
                                                                 boolean=True)

        def _apply(self, inpt):
            return functional.equalize_hist(inpt, self.nbins, self.method,
                                            self._on_device("mask", self._mask, inpt),
                                            self.luminance)

    class CLAHE(_PlaneTransform):
        """OpenCV's CLAHE of every ``(H, W)`` plane, as a ``transforms.v2`` transform.

        Parameters
        ----------
        clip_limit : float, optional
            ``cv2.createCLAHE``'s ``clipLimit`` (0: no clipping).
        tile_grid : (int, int), optional
            ``cv2.createCLAHE``'s ``tileGridSize``: tiles along the width, then the height.

        Notes
        -----
        uint8 and uint16 tensors of shape ``(..., C, H, W)`` (or PIL images); each channel of
        each image is one plane, equal to ``cv2.createCLAHE(clip_limit, tile_grid).apply`` on it
        (see :func:`gpu_histeq.clahe`). The output keeps type, shape, dtype and device.
        """

        def __init__(self, clip_limit=40.0, tile_grid=(8, 8)):
            super().__init__()
            self.clip_limit = _check_clip_limit(clip_limit)
            self.tile_grid = _check_tile_grid(tile_grid)

        def _apply(self, inpt):
            return functional.clahe(inpt, self.clip_limit, self.tile_grid)

    class MatchHistograms(_PlaneTransform):
        """Match every plane's histogram to a reference, as a ``transforms.v2`` transform.

        Parameters
        ----------
        reference : (H', W') or (C, H', W') tensor or ndarray
            ``(H', W')``: one reference for every plane. ``(C, H', W')``: channel ``c`` of every
            image is matched to ``reference[c]`` (:func:`gpu_histeq.match_histograms` with
            ``channel_axis``). Any size; copied once to each device the transform meets.

        Notes
        -----
        Equal to ``skimage.exposure.match_histograms`` per plane (see
        :func:`gpu_histeq.match_histograms`): float64 (float32 for float16/32 input) with a
        2-D reference, the input's dtype with a per-channel reference, as scikit-image.
        """

        def __init__(self, reference):
            super().__init__()
            self._reference = _check_array(reference, "reference", (2, 3), torch)

        def _apply(self, inpt):
            return functional.match_histograms(
                inpt, self._on_device("reference", self._reference, inpt))

    classes = {"EqualizeHist": EqualizeHist, "CLAHE": CLAHE, "MatchHistograms": MatchHistograms}
    for name, cls in classes.items():
        cls.__module__, cls.__qualname__ = __name__, name
    return classes

