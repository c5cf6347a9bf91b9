"""One small image per call (issue 24): the common call -- uint8 / uint16 NumPy images, every
other argument at its default -- goes straight to one compiled call, gives the peers' bits, and
keeps every check, warning and error of the general path."""

import types
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

import gpu_histeq
from gpu_histeq import _cpu, _engine, clahe, equalize_hist

pytestmark = pytest.mark.skipif(not _cpu.BUILT, reason="the compiled extension is not built")


@pytest.fixture
def entry_calls(monkeypatch):
    """Record the compiled entry points' calls: (name, (planes, pixels per plane))."""
    calls = []
    module = _cpu._MODULE

    def recorded(name):
        def call(values, *args):
            if name == "equalize_levels":  # (values, selected, nplanes, npixels, ...)
                calls.append((name, (args[1], args[2])))
            else:  # clahe(values, nplanes, height, width, ...)
                calls.append((name, (args[0], args[1] * args[2])))
            return getattr(module, name)(values, *args)
        return call

    monkeypatch.setattr(_cpu, "_MODULE", types.SimpleNamespace(
        equalize_levels=recorded("equalize_levels"), clahe=recorded("clahe")))
    return calls


SHAPES = [(8, 8), (1, 1), (96, 96), (3, 17, 5), (1, 96, 96), (2, 3, 40, 30)]


@pytest.mark.parametrize("shape", SHAPES)
def test_one_call_gives_opencv_and_pil_bits(shape, entry_calls):
    rng = np.random.default_rng(sum(shape))
    images = rng.integers(40, 90, shape, dtype=np.uint8)
    planes = images.reshape(-1, *shape[-2:])
    opencv = equalize_hist(images)
    pil = equalize_hist(images, method="pil")
    assert entry_calls == [("equalize_levels", (planes.shape[0], shape[-2] * shape[-1]))] * 2
    np.testing.assert_array_equal(opencv.reshape(planes.shape),
                                  np.stack([cv2.equalizeHist(p) for p in planes]))
    np.testing.assert_array_equal(pil.reshape(planes.shape), np.stack(
        [np.asarray(ImageOps.equalize(Image.fromarray(p))) for p in planes]))
    assert opencv.shape == pil.shape == shape and opencv.dtype == pil.dtype == np.uint8


def test_uint16_and_the_axes_a_transform_passes(entry_calls):
    images = np.random.default_rng(1).integers(0, 65536, (2, 30, 20), dtype=np.uint16)
    got = equalize_hist(images, axes=(-2, -1))
    assert entry_calls == [("equalize_levels", (2, 600))]
    with _engine.portable():
        np.testing.assert_array_equal(got, equalize_hist(images))


def test_the_same_numbers_as_the_general_path(monkeypatch):
    rng = np.random.default_rng(2)
    cases = [rng.integers(0, 256, (5, 33, 31), dtype=np.uint8),
             np.full((2, 9, 9), 7, np.uint8),  # constant planes stay as they are
             rng.integers(0, 2, (3, 12, 12), dtype=np.uint8) * 255]
    for images in cases:
        for method in (None, "pil"):
            fast = equalize_hist(images, method=method)
            general = equalize_hist(images, method=method, out=np.empty_like(images))
            np.testing.assert_array_equal(fast, general)


@pytest.mark.parametrize("images, kwargs", [
    (np.zeros((16, 16, 3), np.uint8), {}),  # the colour warning still warns
    (np.zeros((8, 8), np.uint8)[:, ::2], {}),  # not C-contiguous
    (np.zeros((8, 8), ">u2"), {}),  # big-endian
    (np.zeros((0, 8, 8), np.uint8), {}),  # empty
    (np.zeros((8, 8), np.uint8), {"axes": (0, 1)}),
    (np.zeros((8, 8), np.uint16), {"nbins": 65536}),
    (np.zeros((8, 8), np.float32), {}),
])
def test_other_calls_take_the_general_path(images, kwargs, monkeypatch):
    one_call = []
    monkeypatch.setattr(_engine, "equalize_small", lambda *args: one_call.append(args))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = equalize_hist(images, **kwargs)
    assert result.shape == images.shape
    if images.shape == (16, 16, 3):
        assert any("might be colour images" in str(w.message) for w in caught)
    else:
        assert not caught
    assert one_call == []  # straight to the general path
    with _engine.portable(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(result, equalize_hist(images, **kwargs))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"nbins": 256.0}, ValueError, "`nbins` must be a positive integer"),
    ({"nbins": True}, ValueError, "`nbins` must be a positive integer"),
    ({"method": "opencvv"}, ValueError, "`method` must be one of"),
    ({"method": ["pil"]}, ValueError, "`method` must be one of"),
    ({"luminance": 1}, TypeError, "`luminance` must be a bool"),
])
def test_bad_arguments_raise_as_before(kwargs, error, match):
    with pytest.raises(error, match=match):
        equalize_hist(np.zeros((8, 8), np.uint8), **kwargs)


def test_a_masked_array_and_a_list_are_not_taken_for_arrays():
    with pytest.raises(TypeError, match="must not be a numpy.ma.MaskedArray"):
        equalize_hist(np.ma.zeros((8, 8), np.uint8))
    assert isinstance(gpu_histeq.equalize_hist([np.zeros((8, 8), np.uint8)]), list)


def test_the_portable_switch_is_read_at_every_call(monkeypatch, entry_calls):
    images = np.random.default_rng(4).integers(0, 256, (8, 8), dtype=np.uint8)
    monkeypatch.setenv("GPU_HISTEQ_PORTABLE", "1")
    portable = equalize_hist(images)
    assert entry_calls == []
    monkeypatch.delenv("GPU_HISTEQ_PORTABLE")
    np.testing.assert_array_equal(equalize_hist(images), portable)
    assert len(entry_calls) == 1


def test_one_clahe_call_per_block(entry_calls):
    rng = np.random.default_rng(5)
    for shape, grid in [((96, 96), (8, 8)), ((37, 50), (3, 5)), ((4, 1, 64, 48), (2, 4))]:
        images = rng.integers(0, 256, shape, dtype=np.uint8)
        entry_calls.clear()
        got = clahe(images, 2.0, grid)
        assert entry_calls == [("clahe", (int(np.prod(shape[:-2])), shape[-2] * shape[-1]))]
        cv = cv2.createCLAHE(2.0, grid)
        np.testing.assert_array_equal(got.reshape(-1, *shape[-2:]), np.stack(
            [cv.apply(p) for p in images.reshape(-1, *shape[-2:])]))


def test_the_entry_points_check_their_buffers():
    values = np.zeros((2, 64), np.uint8)
    out = np.empty_like(values)
    with pytest.raises(ValueError, match="internal error: `values`"):
        _cpu._MODULE.equalize_levels(values, None, 3, 64, None, 0, out)
    with pytest.raises(ValueError, match="internal error: `out`"):
        _cpu._MODULE.equalize_levels(values, None, 2, 64, None, 0, out[:1])
    with pytest.raises(ValueError, match="internal error: `values`"):
        _cpu._MODULE.equalize_levels(values.astype(np.int32), None, 2, 64, None, 0, out)
    with pytest.raises(TypeError):
        _cpu._MODULE.equalize_levels(values, None, 2, 64, None, 0)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _cpu._MODULE.equalize_levels(values, None, 2, 64, None, 0, out)
