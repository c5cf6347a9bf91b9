"""The version of gpu_histeq: the one source (pyproject.toml reads it; imports nothing)."""

__version__ = "0.1.0"
