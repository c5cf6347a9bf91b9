"""``out=`` that shares memory with the input (issue 21, item 3), and non-numeric ``apply_lut``
tables (item 9).

``out`` may be `images` itself (in place); an ``out`` that partly overlaps `images` or `mask`
gets the right result (computed aside, then copied); the entries of a list ``out`` must not
share memory. One test body on NumPy and on CuPy (emulated without a GPU).
"""

import re

import cv2
import numpy as np
import pytest

import gpu_histeq as gh
from conftest import assert_backend

RNG = np.random.default_rng(21)
IMAGES = RNG.integers(0, 256, (3, 16, 16), dtype=np.uint8)


def _buffer(xp, images, spare, at=0):
    """One flat buffer of ``images.size + spare`` elements holding `images` at `at`."""
    flat = np.zeros(images.size + spare, images.dtype)
    flat[at:at + images.size] = images.ravel()
    return xp.asarray(flat)


def _cv2(images):
    return np.stack([cv2.equalizeHist(plane) for plane in images.reshape(-1, *images.shape[-2:])]
                    ).reshape(images.shape)


@pytest.mark.parametrize("shift", [16, -16, 1, 255])
def test_out_partly_over_the_images(xp, shift):
    """The issue's case (``shift=16``: 750 of 768 pixels were wrong) and its mirror image."""
    n = IMAGES.size
    at = max(0, -shift)
    buffer = _buffer(xp, IMAGES, abs(shift), at)
    images = buffer[at:at + n].reshape(IMAGES.shape)
    out = buffer[at + shift:at + shift + n].reshape(IMAGES.shape)
    result = gh.equalize_hist(images, out=out)
    assert result is out
    assert_backend(out, xp)
    np.testing.assert_array_equal(_host(out), _cv2(IMAGES))


def _host(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)


def test_out_is_the_images_in_place(xp):
    images = xp.asarray(IMAGES.copy())
    result = gh.equalize_hist(images, out=images)
    assert result is images
    np.testing.assert_array_equal(_host(images), _cv2(IMAGES))


@pytest.mark.parametrize("shape, dtype, options", [
    ((4, 24, 24), np.float32, {}),
    ((4, 24, 24), np.uint8, {"axes": (0, 1, 2)}),
    ((4, 24, 24), np.uint8, {"mask": RNG.random((24, 24)) < 0.5}),
    ((3, 24, 24, 3), np.uint8, {"channel_axis": -1, "luminance": True}),
    ((24, 24, 4), np.uint8, {"axes": (0, 1)}),
    ((1, 1200, 1100), np.uint16, {}),  # one plane larger than a block: counted, then remapped
], ids=["float", "dataset-wide", "mask", "luminance", "channels-last", "large-plane"])
def test_in_place_equals_a_new_result(xp, shape, dtype, options):
    """`out` that is `images` itself is not an overlap: it stays on the in-place path."""
    values = RNG.random(shape) if dtype == np.float32 else RNG.integers(
        0, np.iinfo(dtype).max, shape, endpoint=True)
    host = values.astype(dtype)
    options = {k: xp.asarray(v) if k == "mask" else v for k, v in options.items()}
    expected = _host(gh.equalize_hist(xp.asarray(host), **options))
    images = xp.asarray(host.copy())
    assert gh.equalize_hist(images, out=images, **options) is images
    np.testing.assert_array_equal(_host(images), expected)


def test_out_interleaved_with_the_images(xp):
    """Every other element: disjoint but within one range, computed aside (like
    ``numpy.may_share_memory``), and right."""
    pairs = xp.asarray(np.stack([IMAGES, np.zeros_like(IMAGES)], axis=-1))
    images, out = pairs[..., 0], pairs[..., 1]
    gh.equalize_hist(images, out=out)
    np.testing.assert_array_equal(_host(out), _cv2(IMAGES))
    np.testing.assert_array_equal(_host(images), IMAGES)  # the input is not written


def test_out_over_the_mask(xp):
    mask = RNG.random(IMAGES.shape) < 0.5
    mask[:, 0, 0] = True
    expected = gh.equalize_hist(IMAGES, mask=mask)
    buffer = xp.asarray(np.concatenate([mask.ravel().view(np.uint8),
                                        np.zeros(40, np.uint8)]))
    shared_mask = buffer[:IMAGES.size].view(bool).reshape(IMAGES.shape)
    out = buffer[40:40 + IMAGES.size].reshape(IMAGES.shape)
    gh.equalize_hist(xp.asarray(IMAGES), mask=shared_mask, out=out)
    np.testing.assert_array_equal(_host(out), expected)
    assert (expected != _cv2(IMAGES)).any()  # the mask mattered


@pytest.mark.parametrize("shift", [5, -7])
def test_luminance_out_partly_over_the_images(xp, shift):
    rgb = RNG.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    ycrcb = [cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb) for image in rgb]
    for image in ycrcb:
        image[..., 0] = cv2.equalizeHist(image[..., 0])
    expected = np.stack([cv2.cvtColor(image, cv2.COLOR_YCrCb2RGB) for image in ycrcb])
    n = rgb.size
    at = max(0, -shift)
    buffer = _buffer(xp, rgb, abs(shift), at)
    images = buffer[at:at + n].reshape(rgb.shape)
    out = buffer[at + shift:at + shift + n].reshape(rgb.shape)
    gh.equalize_hist(images, channel_axis=-1, luminance=True, out=out)
    np.testing.assert_array_equal(_host(out), expected)


def test_float_out_partly_over_the_images(xp):
    skimage_exposure = pytest.importorskip("skimage.exposure")
    images = RNG.random((3, 12, 12)).astype(np.float32)
    expected = np.stack([skimage_exposure.equalize_hist(plane) for plane in images])
    reference = gh.equalize_hist(images)
    buffer = _buffer(xp, images, 12)
    shared = buffer[:images.size].reshape(images.shape)
    out = buffer[12:12 + images.size].reshape(images.shape)
    gh.equalize_hist(shared, out=out)
    np.testing.assert_array_equal(_host(out), reference)
    np.testing.assert_allclose(_host(out), expected, rtol=1e-6, atol=1e-6)


def test_list_out_entries_sharing_memory_are_refused(xp):
    images = [xp.asarray(IMAGES[0]), xp.asarray(IMAGES[1:])]
    buffer = xp.zeros(IMAGES.size, np.uint8)
    outs = [buffer[:256].reshape(16, 16), buffer[128:128 + 512].reshape(2, 16, 16)]
    with pytest.raises(ValueError, match=r"`out` entries 0 and 1 share memory"):
        gh.equalize_hist(images, out=outs)
    assert not _host(buffer).any()  # refused before anything was written
    same = xp.zeros((16, 16), np.uint8)
    with pytest.raises(ValueError, match=r"`out` entries 0 and 2 share memory"):
        gh.equalize_hist([images[0], images[0], images[0]],
                         out=[same, xp.zeros((16, 16), np.uint8), same])


def test_list_out_over_other_entries_images(xp):
    """Each entry's out lies over the next entry's images: every result is still its own."""
    buffer = _buffer(xp, IMAGES, 256)
    images = [buffer[k * 256:(k + 1) * 256].reshape(16, 16) for k in range(3)]
    outs = [buffer[(k + 1) * 256:(k + 2) * 256].reshape(16, 16) for k in range(3)]
    results = gh.equalize_hist(images, out=outs)
    assert all(r is o for r, o in zip(results, outs))
    expected = _cv2(IMAGES)
    for k in range(3):
        np.testing.assert_array_equal(_host(outs[k]), expected[k])


# ------------------------------------------------------------------------ apply_lut tables

@pytest.mark.parametrize("table", [np.array([None] * 256, dtype=object),
                                   np.array([str(v) for v in range(256)]),
                                   np.arange(256).astype("datetime64[s]")],
                         ids=["object", "str", "datetime64"])
def test_apply_lut_refuses_non_numeric_tables(table):
    with pytest.raises(TypeError, match=rf"`lut` must hold numbers .* got {re.escape(str(table.dtype))}"):
        gh.apply_lut(IMAGES, table)
    with pytest.raises(TypeError, match=r"`lut` must hold numbers"):
        gh.apply_lut([IMAGES[0], IMAGES[1:]], [table, table])


def test_apply_lut_takes_bool_and_complex_tables(xp):
    images = xp.asarray(IMAGES)
    even = np.arange(256) % 2 == 0
    np.testing.assert_array_equal(_host(gh.apply_lut(images, xp.asarray(even))), even[IMAGES])
    waves = np.exp(1j * np.arange(256) / 40)
    np.testing.assert_array_equal(_host(gh.apply_lut(images, xp.asarray(waves))),
                                  waves[IMAGES])
