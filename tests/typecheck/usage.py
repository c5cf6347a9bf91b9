"""What a user's type checker sees: ``mypy`` runs on this file in CI (``.ci/run``).

It is checked, never run (pytest imports it for doctests only: the body is a function). Each
``assert_type`` states the type of a public call, from the overloads of the public functions: an
ndarray in gives an ndarray out (``NDArray[Any]``: the result dtype follows the method and the
input's dtype, which the overloads do not spell out), a list or tuple of ndarrays (a ragged
batch) gives a list, ``histogram`` and ``cumulative_distribution`` give a pair of arrays, and
anything else (CuPy, Dask, tensors: untyped here) is ``Any``. Where the arguments fix the
result's dtype (uint8 in -> uint8 out for ``method="opencv"``/``"pil"`` and ``clahe``, float32
for float16/float32 with ``"skimage"``, a table's dtype for ``apply_lut``) the overloads say so;
an ndarray whose dtype the checker does not know gives ``Any`` there (several overloads fit).
``method`` is a ``Literal``: a misspelt method is an error. ``.ci/run`` also checks this file as a
user's script, outside the source tree after ``pip install -e .``.
"""

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # typing.assert_type is Python >= 3.11
    from typing_extensions import assert_type

import gpu_histeq
from gpu_histeq.figure import before_after, to_display
from gpu_histeq.transforms import CLAHE, EqualizeHist, MatchHistograms


Pair = tuple[npt.NDArray[Any], npt.NDArray[Any]]


def usage(faces: npt.NDArray[np.uint8], reference: npt.NDArray[np.uint8],
          sizes: list[npt.NDArray[np.uint8]], gpu: Any, wide: npt.NDArray[np.uint16],
          half: npt.NDArray[np.float16], single: npt.NDArray[np.float32],
          double: npt.NDArray[np.float64]) -> None:
    """The README's calls, with the types a checker infers for them.

    `sizes` is a ragged batch (images of different sizes); `gpu` stands for a CuPy or Dask
    array or a tensor, whose types are not known here; `wide`, `half`, `single` and `double`
    are uint16, float16, float32 and float64 stacks.
    """
    assert_type(gpu_histeq.__version__, str)
    assert_type(gpu_histeq.show_config(), None)
    assert_type(gpu_histeq.show_config(mode="dicts"), dict[str, dict[str, Any]])

    assert_type(gpu_histeq.equalize_hist(faces), npt.NDArray[np.uint8])
    assert_type(gpu_histeq.equalize_hist(faces, method="pil"), npt.NDArray[np.uint8])
    assert_type(gpu_histeq.equalize_hist(faces, axes=(-2, -1), mask=faces > 0, out=None),
                npt.NDArray[np.uint8])
    assert_type(gpu_histeq.equalize_hist(faces, method="skimage"), npt.NDArray[Any])
    assert_type(gpu_histeq.equalize_hist(wide), npt.NDArray[np.uint16])
    assert_type(gpu_histeq.equalize_hist(single), npt.NDArray[np.float32])
    assert_type(gpu_histeq.equalize_hist(half, method="skimage"),
                npt.NDArray[np.float32])
    assert_type(gpu_histeq.equalize_hist(double), npt.NDArray[np.float64])
    assert_type(gpu_histeq.equalize_hist(faces, channel_axis=-1, luminance="bgr"),
                npt.NDArray[np.uint8])
    assert_type(gpu_histeq.histogram(faces), Pair)
    counts, centers = gpu_histeq.histogram(faces, nbins=64, channel_axis=-1)
    assert_type(counts, npt.NDArray[Any])
    assert_type(gpu_histeq.cumulative_distribution(faces), Pair)
    assert_type(gpu_histeq.apply_lut(faces, reference), npt.NDArray[np.uint8])
    assert_type(gpu_histeq.apply_lut(faces, np.linspace(0, 1, 256)), npt.NDArray[np.float64])
    assert_type(gpu_histeq.clahe(faces, clip_limit=40.0, tile_grid=(8, 8)), npt.NDArray[np.uint8])
    assert_type(gpu_histeq.clahe(wide), npt.NDArray[np.uint16])
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
    gpu_histeq.equalize_hist(faces, method="opencvv")  # type: ignore[call-overload]
    gpu_histeq.equalize_hist(faces, channel_axis=-1, luminance="brg")  # type: ignore[call-overload]

    # torchvision transforms: their own types, the same Literal options.
    assert_type(EqualizeHist(method="pil"), EqualizeHist)
    assert_type(EqualizeHist(method="pil").method, Literal["opencv", "pil", "skimage"] | None)
    assert_type(CLAHE(2.0, (8, 8)).tile_grid, tuple[int, int])
    assert_type(MatchHistograms(reference), MatchHistograms)
    assert_type(EqualizeHist()(gpu), Any)
    EqualizeHist(method="opencvv")  # type: ignore[arg-type]
    assert_type(to_display(faces), Any)
    assert_type(before_after("figure.png", faces, {}), Any)
