"""Doctests run over the package; the CUDA loaders are only importable where CuPy is."""

import importlib.util

collect_ignore_glob = [] if importlib.util.find_spec("cupy") else ["gpu_histeq/_cuda/*"]
