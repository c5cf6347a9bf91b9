"""CUDA fast paths for CuPy input. Imported only when a CuPy array is seen."""


def equalize(planes, mask_planes, method, nbins, result):
    """Fused kernels: not written yet, the portable path runs."""
    return False
