"""``equalize_hist(..., luminance=True)`` of channels-last uint8 RGB on CUDA
(``gpu_histeq_equalize_luma_small_u8`` in ``gpu_histeq/_cuda/levels.cu``: Y, its histogram, the
table and the YCrCb round trip in one launch) equals the portable path bit for bit, and OpenCV.

The ``cp`` fixture fails a case in which a CUDA step fell back; each case asserts the luma step
answered True and, on the emulated CuPy, that the kernel ran.
"""

import numpy as np
import pytest

from conftest import is_emulated
from gpu_histeq import _engine, equalize_hist

cv2 = pytest.importorskip("cv2")

KERNEL = "gpu_histeq_equalize_luma_small_u8"


def launches(cp):
    if not is_emulated(cp):
        return None
    return sum(n for name, n in cp.LAUNCHES.items() if name.startswith(KERNEL))


def run_both(cp, images, **kwargs):
    images = cp.asarray(images)
    before = launches(cp)
    with _engine.recording() as steps:
        result = equalize_hist(images, channel_axis=-1, luminance=True, **kwargs)
    assert [s.outcome for s in steps if s.name == "equalize_luma"] == [True], steps
    assert [s.name for s in steps] == ["equalize_luma"], steps  # nothing else ran
    if before is not None:
        assert launches(cp) == before + 1
    with _engine.portable():
        expected = equalize_hist(images, channel_axis=-1, luminance=True, **kwargs)
    return result.get(), expected.get()


def make(kind, shape, seed=0):
    rng = np.random.default_rng(seed)
    values = {"random": lambda: rng.integers(0, 256, shape),
              "narrow": lambda: rng.integers(90, 110, shape),
              "constant": lambda: np.full(shape, 77),
              "extremes": lambda: rng.choice([0, 255], shape),
              "grey": lambda: np.repeat(rng.integers(0, 256, shape[:-1])[..., None], 3, -1)}[kind]()
    return np.ascontiguousarray(values, dtype=np.uint8)


@pytest.mark.parametrize("method", ["opencv", "pil"])
@pytest.mark.parametrize("kind", ["random", "narrow", "constant", "extremes", "grey"])
@pytest.mark.parametrize("shape", [(3, 1, 1, 3), (2, 17, 23, 3), (4, 64, 64, 3), (19, 5, 3)],
                         ids=str)
def test_equal_to_the_portable_path(cp, method, kind, shape):
    result, expected = run_both(cp, make(kind, shape, seed=shape[0]), method=method)
    assert result.dtype == np.uint8 and result.shape == shape
    np.testing.assert_array_equal(result, expected)


def test_equal_to_opencv_round_trip(cp):
    images = make("random", (3, 40, 31, 3), seed=5)
    result = equalize_hist(cp.asarray(images), channel_axis=-1, luminance=True).get()
    for image, got in zip(images, result):
        ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
        ycrcb[..., 0] = cv2.equalizeHist(np.ascontiguousarray(ycrcb[..., 0]))
        np.testing.assert_array_equal(got, cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB))


def test_large_planes_and_skimage_are_declined_before_any_launch(cp, monkeypatch):
    from gpu_histeq._cuda import _kernels
    monkeypatch.setattr(_kernels, "SMALL_PIXELS", 100)  # 11 x 10 planes are "large" now
    images = cp.asarray(make("random", (2, 11, 10, 3)))
    for method in ("opencv", "skimage"):
        before = launches(cp)
        with _engine.recording() as steps:
            result = equalize_hist(images, channel_axis=-1, luminance=True, method=method)
        luma = [s for s in steps if s.name == "equalize_luma"]
        assert [s.outcome.reason for s in luma] == ["uncovered"], steps
        if before is not None:
            assert launches(cp) == before
        with _engine.portable():
            expected = equalize_hist(images, channel_axis=-1, luminance=True, method=method)
        np.testing.assert_array_equal(result.get(), expected.get())


def test_one_launch_no_synchronisation(cp):
    if not is_emulated(cp):
        pytest.skip("counted on the emulated CuPy")
    from emulation.counting import counting
    images = cp.asarray(make("random", (16, 32, 32, 3)))
    equalize_hist(images, channel_axis=-1, luminance=True)  # compiled and cached
    with counting() as tally:
        equalize_hist(images, channel_axis=-1, luminance=True)
    assert tally.kernels == {f"{KERNEL}<0>": 1}, tally.kernels
    assert tally.syncs == [] and tally.h2d_bytes == 0 and tally.operation_launches == 0
