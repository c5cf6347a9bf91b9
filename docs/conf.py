"""Sphinx configuration of the gpu_histeq API reference (built in CI with ``-W``).

Build from the repository root, with the package installed (``pip install -e ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m sphinx -W --keep-going -b doctest docs docs/_build/doctest

Links to NumPy, CuPy, scikit-image and torchvision (intersphinx) need their inventories from the
network: set ``GPU_HISTEQ_INTERSPHINX=1`` to fetch them. Without it (CI has no network) the build
fetches nothing and those cross-references stay plain text, so ``-W`` passes offline.

The ``cli-help`` directive of ``cli.rst`` prints ``gpu-histeq [COMMAND] --help`` from the parser
itself, so every option is documented with its current help and default.
"""

import contextlib
import os

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

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

# No network in CI: the inventories are fetched only when asked for.
intersphinx_mapping = {}
if os.environ.get("GPU_HISTEQ_INTERSPHINX") == "1":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "cupy": ("https://docs.cupy.dev/en/stable", None),
        "skimage": ("https://scikit-image.org/docs/stable", None),
        "torchvision": ("https://pytorch.org/vision/stable", None),
    }

exclude_patterns = ["_build", "make_figures.py"]
html_theme = "alabaster"
html_static_path = []
html_title = f"gpu_histeq {release}"
html_theme_options = {"description": "Histogram equalization of image stacks, NumPy and CuPy",
                      "fixed_sidebar": True}


@contextlib.contextmanager
def _columns(width):
    """argparse wraps its help at $COLUMNS: a fixed width, whatever terminal builds the docs."""
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


class CliHelp(SphinxDirective):
    """``.. cli-help:: [COMMAND]``: the ``--help`` text of ``gpu-histeq [COMMAND]``."""

    optional_arguments = 1

    def run(self):
        from gpu_histeq.cli.commands import operations
        from gpu_histeq.cli.parser import build_parser

        with _columns(96):
            parser = build_parser(operations())
            if self.arguments:
                [commands] = [a for a in parser._actions if a.dest == "command"]
                name = self.arguments[0]
                if name not in commands.choices:
                    raise self.error(f"gpu-histeq has no command {name!r}")
                parser = commands.choices[name]
            text = parser.format_help()
        title = f"gpu-histeq {self.arguments[0] if self.arguments else ''} --help".replace(
            "  ", " ")
        block = nodes.literal_block(text, text, language="text")
        return [nodes.rubric(title, title), block]


def setup(app):
    app.add_directive("cli-help", CliHelp)
    return {"parallel_read_safe": True}
