"""Sphinx configuration of the gpu_histeq API reference (built in CI with ``-W``).

Build from the repository root, with the package installed (``pip install -e ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m sphinx -W --keep-going -b doctest docs docs/_build/doctest
"""

import gpu_histeq

project = "gpu_histeq"
author = "gpu_histeq developers"
copyright = "2026, gpu_histeq developers"
release = version = gpu_histeq.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "numpydoc",
]

# numpydoc: the public functions' docstrings, rendered as they are written.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
autodoc_typehints = "none"  # types are in the numpydoc "Parameters" sections

# Only the ``.. doctest::`` blocks of these pages run under ``-b doctest``; the docstrings'
# examples run under pytest (``--doctest-modules``), so they are not run twice.
doctest_test_doctest_blocks = ""
doctest_global_setup = "import numpy as np\nimport gpu_histeq"

# No network in CI: cross-references to other projects stay plain text.
intersphinx_mapping = {}

exclude_patterns = ["_build", "make_figures.py"]
html_theme = "alabaster"
html_static_path = []
html_title = f"gpu_histeq {release}"
html_theme_options = {"description": "Histogram equalization of image stacks, NumPy and CuPy",
                      "fixed_sidebar": True}
