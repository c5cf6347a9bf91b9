# What type checkers see of gpu_histeq.transforms (a stub beside the module, and inside the
# package it may become), whose classes are made on first use (so that
# importing the module imports neither torch nor torchvision): their constructors, their
# attributes and calling one. tests/test_packaging.py checks these signatures against the
# classes.
from collections.abc import Sequence
from typing import Any

from .._typing import Method

__all__ = ["EqualizeHist", "CLAHE", "MatchHistograms"]

class _PlaneTransform:
    def __call__(self, *inputs: Any) -> Any: ...
    def transform(self, inpt: Any, params: dict[str, Any]) -> Any: ...

class EqualizeHist(_PlaneTransform):
    nbins: int
    method: Method | None
    luminance: bool
    def __init__(self, nbins: int = 256, *, method: Method | None = None, mask: Any = None,
                 luminance: bool = False) -> None: ...

class CLAHE(_PlaneTransform):
    clip_limit: float
    tile_grid: tuple[int, int]
    def __init__(self, clip_limit: float = 40.0,
                 tile_grid: Sequence[int] = (8, 8)) -> None: ...

class MatchHistograms(_PlaneTransform):
    def __init__(self, reference: Any) -> None: ...
