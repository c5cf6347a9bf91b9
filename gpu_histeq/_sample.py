"""Built-in sample images: deterministic, nothing downloaded.

``synthetic`` needs NumPy only; the scikit-image names are the images shipped inside
``skimage.data`` (no network), available when scikit-image is installed.
"""

import numpy as np

__all__ = ["SAMPLES", "load", "synthetic"]

#: Grayscale images shipped with scikit-image (read from its package data, never downloaded).
SKIMAGE_SAMPLES = ("moon", "camera", "coins", "page", "text", "brick", "grass", "gravel")
SAMPLES = ("synthetic", "skimage") + SKIMAGE_SAMPLES


def synthetic(count=8, size=96, seed=0):
    """A stack of low-contrast grayscale images, the same on every machine.

    Each image is a few soft blobs and a gradient squeezed into a narrow band of levels, like
    under-exposed photographs: what histogram equalization is for.

    Parameters
    ----------
    count, size : int
        Number of images and their side in pixels.
    seed : int
        Seed of the generator; the result depends on nothing else.

    Returns
    -------
    (count, size, size) uint8 ndarray

    Examples
    --------
    >>> from gpu_histeq._sample import synthetic
    >>> stack = synthetic(4, 32)
    >>> stack.shape, stack.dtype, int(stack.max()) - int(stack.min()) < 80
    ((4, 32, 32), dtype('uint8'), True)
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    images = np.empty((count, size, size), np.float64)
    for i in range(count):
        angle = rng.uniform(0, 2 * np.pi)
        field = 0.6 * (np.cos(angle) * x + np.sin(angle) * y)
        for _ in range(6):
            cy, cx = rng.uniform(0, 1, 2)
            radius = rng.uniform(0.06, 0.25)
            field += rng.uniform(-1, 1) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius**2))
        field += 0.015 * rng.standard_normal((size, size))
        field -= field.min()
        images[i] = field / max(field.max(), 1e-12)
    low = rng.uniform(70, 100, (count, 1, 1))
    width = rng.uniform(35, 60, (count, 1, 1))
    return np.round(low + width * images).astype(np.uint8)


def _skimage_data():
    try:
        from skimage import data
    except ImportError:
        raise ValueError("the scikit-image samples need scikit-image "
                         "(pip install scikit-image); `synthetic` needs nothing") from None
    return data


def skimage_image(name):
    """One grayscale uint8 image from ``skimage.data`` as a ``(1, H, W)`` stack."""
    if name not in SKIMAGE_SAMPLES:
        raise ValueError(f"unknown scikit-image sample {name!r}; choose from {SKIMAGE_SAMPLES}")
    image = np.asarray(getattr(_skimage_data(), name)())
    if image.ndim == 3:  # ITU-R 601 luma, as skimage.color.rgb2gray
        image = np.round(image[..., :3] @ np.array([0.2125, 0.7154, 0.0721])).astype(np.uint8)
    return image[None].astype(np.uint8)


def load(name="synthetic"):
    """A sample stack by name.

    Parameters
    ----------
    name : str
        ``"synthetic"`` (NumPy only), ``"skimage"`` (moon and camera, both 512 x 512) or one
        scikit-image image name from ``SKIMAGE_SAMPLES``.

    Returns
    -------
    (N, H, W) uint8 ndarray

    Raises
    ------
    ValueError
        For an unknown name, or a scikit-image sample without scikit-image.
    """
    if name == "synthetic":
        return synthetic()
    if name == "skimage":
        return np.concatenate([skimage_image("moon"), skimage_image("camera")])
    if name in SKIMAGE_SAMPLES:
        return skimage_image(name)
    raise ValueError(f"`sample` must be one of {SAMPLES}, got {name!r}")
