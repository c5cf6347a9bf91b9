"""What a user's type checker sees: ``mypy`` runs on this file in CI (``.ci/run``).

It is checked, never run (pytest imports it for doctests only: the body is a function). Each
``assert_type`` states the type of a public call, from the overloads of the public functions: an
ndarray in gives an ndarray out (``NDArray[Any]``: the result dtype follows the method and the
input's dtype, which the overloads do not spell out), a list or tuple of ndarrays (a ragged
batch) gives a list, ``histogram`` and ``cumulative_distribution`` give a pair of arrays, and
anything else (CuPy, Dask, tensors: untyped here) is ``Any``.
"""

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # typing.assert_type is Python >= 3.11
    from typing_extensions import assert_type

import gpu_histeq
from gpu_histeq.figure import before_after, to_display


Pair = tuple[npt.NDArray[Any], npt.NDArray[Any]]


def usage(faces: npt.NDArray[np.uint8], reference: npt.NDArray[np.uint8],
          sizes: list[npt.NDArray[np.uint8]], gpu: Any) -> None:
    """The README's calls, with the types a checker infers for them.

    `sizes` is a ragged batch (images of different sizes); `gpu` stands for a CuPy or Dask
    array or a tensor, whose types are not known here.
    """
    assert_type(gpu_histeq.__version__, str)
    assert_type(gpu_histeq.show_config(), None)
    assert_type(gpu_histeq.show_config(mode="dicts"), dict[str, dict[str, Any]])

    assert_type(gpu_histeq.equalize_hist(faces), npt.NDArray[Any])
    assert_type(gpu_histeq.equalize_hist(faces, method="pil"), npt.NDArray[Any])
    assert_type(gpu_histeq.equalize_hist(faces, axes=(-2, -1), mask=faces > 0, out=None),
                npt.NDArray[Any])
    assert_type(gpu_histeq.histogram(faces), Pair)
    counts, centers = gpu_histeq.histogram(faces, nbins=64, channel_axis=-1)
    assert_type(counts, npt.NDArray[Any])
    assert_type(gpu_histeq.cumulative_distribution(faces), Pair)
    assert_type(gpu_histeq.apply_lut(faces, reference), npt.NDArray[Any])
    assert_type(gpu_histeq.clahe(faces, clip_limit=40.0, tile_grid=(8, 8)), npt.NDArray[Any])
    assert_type(gpu_histeq.equalize_adapthist(faces, clip_limit=0.01), npt.NDArray[Any])
    assert_type(gpu_histeq.equalize_adapthist(faces, kernel_size=(8, 8)), npt.NDArray[Any])
    assert_type(gpu_histeq.match_histograms(faces, reference), npt.NDArray[Any])

    # Ragged batches: a list (or tuple) of arrays in, a list out.
    assert_type(gpu_histeq.equalize_hist(sizes), list[npt.NDArray[Any]])
    assert_type(gpu_histeq.equalize_hist((faces, reference)), list[npt.NDArray[Any]])
    assert_type(gpu_histeq.histogram(sizes), list[Pair])
    assert_type(gpu_histeq.cumulative_distribution(sizes), list[Pair])
    assert_type(gpu_histeq.apply_lut(sizes, reference), list[npt.NDArray[Any]])
    assert_type(gpu_histeq.match_histograms(sizes, reference), list[npt.NDArray[Any]])

    # CuPy, Dask, tensors: the same call, the result's type is the input's (Any to a checker).
    assert_type(gpu_histeq.equalize_hist(gpu), Any)
    assert_type(gpu_histeq.histogram(gpu), Any)
    assert_type(gpu_histeq.clahe(gpu), Any)
    assert_type(gpu_histeq.match_histograms(gpu, gpu), Any)

    # Wrong arguments are caught before anything runs.
    gpu_histeq.equalize_hist(faces, nbins="256")  # type: ignore[call-overload]
    gpu_histeq.clahe(faces, 40.0, (8, 8), (0, 1))  # type: ignore[call-overload]
    assert_type(to_display(faces), Any)
    assert_type(before_after("figure.png", faces, {}), Any)
