"""Root pytest configuration: what the README's ``python -m pytest`` runs, and what it leaves to
``python -m pytest -m exhaustive`` (which ``.ci/run`` also runs, so CI drops no check).

* Doctests run over the package; the CUDA loaders are only importable where CuPy is.
* :data:`EXHAUSTIVE` is the one list of the tests marked ``exhaustive``: pyproject.toml's
  ``addopts`` deselects them by default (``-m "not exhaustive"``), so the README's command stays
  within a few minutes on two cores. ``-m exhaustive`` runs only them, ``-m "exhaustive or not
  exhaustive"`` everything.
* With ``GPU_HISTEQ_SKIPPED_LOG=FILE`` the node ids of the skipped tests and modules are written
  to FILE, one a line: ``.ci/run`` runs them again once torch and the NVRTC wheels are installed.
"""

import importlib.util
import os

import pytest

collect_ignore_glob = [] if importlib.util.find_spec("cupy") else ["gpu_histeq/_cuda/*"]

#: Node-id prefixes (relative to the repository root) of the ``exhaustive`` tests, each with what
#: it costs: measured with ``python -m pytest --durations=0`` on the shared 2-core machine, where
#: the whole suite took 352 s of which these about 250 s.
EXHAUSTIVE = (
    # Every kernel under ThreadSanitizer and under ASan + UBSan, and the planted bugs each
    # detector must report: three more builds of the CUDA emulator with a sanitizer runtime,
    # then the case set run under each (216 s).
    "tests/test_cuda_sanitizers.py::",
    # Stress tests: several CLI processes racing for one output (7 cases, 13-45 s with the
    # machine's load), a dask.distributed cluster of worker processes (9-15 s), and matching
    # that falls back to sorting when the level tables do not fit (3-9 s).
    "tests/test_cli_safety.py::test_concurrent_writers",
    "tests/test_dask.py::test_on_a_cluster",
    "tests/test_extremes.py::test_matching_falls_back_to_sorting_when_level_tables_do_not_fit",
)


#: Node-id prefixes of the doctests whose examples use torch tensors.
NEEDS_TORCH = ("gpu_histeq/transforms/",)


@pytest.hookimpl(tryfirst=True)  # before the -m selection reads the markers
def pytest_collection_modifyitems(config, items):
    """Mark the tests of :data:`EXHAUSTIVE` ``exhaustive``; skip the doctests of the modules
    that work on torch tensors (:data:`NEEDS_TORCH`) where torch is not installed (the README's
    bare test environment: ``.ci/run`` runs them again once it has installed torch)."""
    torch_missing = importlib.util.find_spec("torch") is None
    for item in items:
        if item.nodeid.startswith(EXHAUSTIVE):
            item.add_marker(pytest.mark.exhaustive)
        if torch_missing and item.nodeid.startswith(NEEDS_TORCH):
            item.add_marker(pytest.mark.skip(reason="torch is not installed (its examples use "
                                                    "tensors)"))


_SKIPPED: dict[str, None] = {}  # node ids in order, once each


def pytest_collectreport(report):
    if report.skipped:  # a module that skips as a whole (pytest.importorskip at its top)
        _SKIPPED[report.nodeid] = None


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPPED[report.nodeid] = None


def pytest_sessionfinish(session):
    path = os.environ.get("GPU_HISTEQ_SKIPPED_LOG")
    if path:
        with open(path, "w", encoding="utf-8") as file:
            file.writelines(f"{nodeid}\n" for nodeid in _SKIPPED)
