"""What a user's type checker sees: ``mypy`` runs on this file in CI (``.ci/run``).

It is checked, never run (pytest imports it for doctests only: the body is a function). Each
``assert_type`` states the type mypy infers today; the public functions are not annotated yet,
so their results are ``Any``. When they gain annotations, these lines change to the real types
(``npt.NDArray[np.uint8]`` for uint8 input, and so on) and mypy holds the package to them.
"""

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # typing.assert_type is Python >= 3.11
    from typing_extensions import assert_type

import gpu_histeq
from gpu_histeq.figure import before_after, to_display


def usage(faces: npt.NDArray[np.uint8], reference: npt.NDArray[np.uint8]) -> None:
    """The README's calls, with the types a checker infers for them."""
    assert_type(gpu_histeq.__version__, str)
    assert_type(gpu_histeq.show_config(), None)
    assert_type(gpu_histeq.show_config(mode="dicts"), dict[str, dict[str, Any]])

    assert_type(gpu_histeq.equalize_hist(faces), Any)
    assert_type(gpu_histeq.equalize_hist(faces, method="pil"), Any)
    assert_type(gpu_histeq.histogram(faces), Any)
    assert_type(gpu_histeq.cumulative_distribution(faces), Any)
    assert_type(gpu_histeq.clahe(faces, clip_limit=40.0, tile_grid=(8, 8)), Any)
    assert_type(gpu_histeq.equalize_adapthist(faces, clip_limit=0.01), Any)
    assert_type(gpu_histeq.match_histograms(faces, reference), Any)
    assert_type(to_display(faces), Any)
    assert_type(before_after("figure.png", faces, {}), Any)
