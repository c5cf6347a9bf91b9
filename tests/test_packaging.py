"""Packaging: one version, the license and ``py.typed`` shipped, extras without CUDA wheels,
``setup.py``'s compiler flags and its notice when the extension cannot be built.

The tests that read the source tree (``setup.py``, ``docs/``, ``README.md``) skip when the suite
runs against an installed wheel from a copy of ``tests/`` (as ``.ci/run`` does); the others
check the installed distribution, whichever it is.
"""

import importlib.metadata
import importlib.resources
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import gpu_histeq
from gpu_histeq import _cpu

ROOT = Path(__file__).resolve().parents[1]
needs_source = pytest.mark.skipif(not (ROOT / "setup.py").is_file(),
                                  reason="needs the source tree (setup.py, docs/, README.md)")
GCC_FLAGS = ["-O3", "-ffp-contract=off", "-fno-trapping-math"]
CUDA_WHEELS = ("nvidia-", "cuda-", "cupy")


def _requirements(extra, **environment):
    """Names of the distribution's requirements that apply with `extra` in `environment`."""
    requirements = [Requirement(text) for text in importlib.metadata.requires("gpu_histeq")]
    return sorted(r.name for r in requirements if r.marker is not None
                  and r.marker.evaluate({"extra": extra, **environment}))


def test_one_version():
    assert importlib.metadata.version("gpu_histeq") == gpu_histeq.__version__


def test_license_ships_and_is_declared():
    distribution = importlib.metadata.distribution("gpu_histeq")
    assert distribution.metadata["License-Expression"] == "BSD-3-Clause"
    licenses = [path for path in distribution.files or () if path.name == "LICENSE"]
    assert licenses, "no LICENSE among the installed distribution's files"
    text = licenses[0].read_text()
    assert text.startswith("BSD 3-Clause License") and "gpu_histeq developers" in text


def test_py_typed_ships():
    assert importlib.resources.files("gpu_histeq").joinpath("py.typed").is_file()


def test_core_dependencies():
    requirements = [Requirement(text) for text in importlib.metadata.requires("gpu_histeq")]
    assert sorted(r.name for r in requirements if r.marker is None) == ["numpy"]


def test_progress_bar_comes_with_the_cli_extra():
    assert "tqdm" in _requirements("cli")
    assert "tqdm" in _requirements("test")  # so its tests run under the README's command


@pytest.mark.parametrize("platform, machine", [
    ("linux", "x86_64"), ("linux", "aarch64"), ("darwin", "arm64"), ("darwin", "x86_64"),
    ("win32", "AMD64")])
def test_test_extra_has_no_cuda_wheels(platform, machine):
    names = _requirements("test", sys_platform=platform, platform_machine=machine)
    assert "pytest" in names and "matplotlib" in names
    assert [name for name in names if name.startswith(CUDA_WHEELS)] == []


@pytest.mark.parametrize("platform, machine, expected", [
    ("linux", "x86_64", 3), ("win32", "AMD64", 3),
    ("linux", "aarch64", 0), ("darwin", "arm64", 0), ("darwin", "x86_64", 0)])
def test_nvrtc_extra_only_where_its_wheels_exist(platform, machine, expected):
    names = _requirements("nvrtc", sys_platform=platform, platform_machine=machine)
    assert len(names) == expected
    assert all(name.startswith(CUDA_WHEELS) for name in names)


def test_plot_extra_brings_matplotlib():
    assert _requirements("plot") == ["matplotlib"]


def test_compiled_path_when_required():
    """``.ci/run`` sets GPU_HISTEQ_REQUIRE_COMPILED=1: there the C path must be built and on."""
    if os.environ.get("GPU_HISTEQ_REQUIRE_COMPILED") != "1":
        pytest.skip("GPU_HISTEQ_REQUIRE_COMPILED=1 is not set (set by .ci/run)")
    assert _cpu.BUILT
    assert gpu_histeq.show_config(mode="dicts")["compiled CPU path"]["active"] is True


def test_suite_imports_the_expected_installation():
    """``.ci/run`` sets GPU_HISTEQ_EXPECT_PREFIX to the wheel's virtual environment."""
    prefix = os.environ.get("GPU_HISTEQ_EXPECT_PREFIX")
    if not prefix:
        pytest.skip("GPU_HISTEQ_EXPECT_PREFIX is not set (set by .ci/run for the wheel)")
    assert Path(gpu_histeq.__file__).resolve().is_relative_to(Path(prefix).resolve())


@needs_source
def test_setup_chooses_flags_per_compiler(monkeypatch):
    import setuptools

    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    namespace = runpy.run_path(str(ROOT / "setup.py"))
    assert namespace["compile_args"]("msvc") == ["/O2", "/fp:precise"]
    assert namespace["compile_args"]("unix") == GCC_FLAGS
    assert namespace["compile_args"]("mingw32") == GCC_FLAGS
    [extension] = captured["ext_modules"]
    assert extension.name == "gpu_histeq._cpu_kernels"
    assert {"gpu_histeq/_levels.c", "gpu_histeq/_clahe.c"} <= set(extension.sources)
    assert all((ROOT / source).is_file() and source.endswith(".c") for source in extension.sources)
    assert captured["cmdclass"]["build_ext"] is namespace["OptionalBuildExt"]


@needs_source
@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for the compiler")
def test_a_failing_compiler_gives_a_notice_not_an_error(tmp_path):
    log = tmp_path / "cc.log"
    compiler = tmp_path / "cc"
    compiler.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\necho "cc: no such compiler" >&2\n'
                        "exit 1\n")
    compiler.chmod(0o755)
    result = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path / "lib"),
         "--build-temp", str(tmp_path / "temp")],
        cwd=ROOT, env={**os.environ, "CC": str(compiler)}, capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stderr
    assert "compiled CPU fast path (gpu_histeq._cpu_kernels) was NOT" in result.stderr
    assert "CompileError" in result.stderr
    assert GCC_FLAGS == log.read_text().split()[-len(GCC_FLAGS):]  # the flags reached the compiler
    assert list(tmp_path.rglob("_cpu_kernels*")) == []


@needs_source
def test_api_reference_documents_every_public_function():
    text = (ROOT / "docs" / "api.rst").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. autofunction:: (\S+)$", text, re.MULTILINE))
    assert set(gpu_histeq.__all__) <= documented


@needs_source
def test_readme_starts_with_the_main_job_and_the_tests():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", text, re.DOTALL).group(1).splitlines()
    assert first_block[0].startswith('pip install -e ".[plot]" && gpu-histeq ')
    assert first_block[1].startswith('pip install -e ".[test]" && python -m pytest ')


@needs_source
def test_exhaustive_tests_name_tests_that_exist():
    """The root conftest.py's EXHAUSTIVE prefixes each name a test file (and function) that is
    there: a renamed file would otherwise put its minutes back into the README's command."""
    namespace = runpy.run_path(str(ROOT / "conftest.py"))
    assert namespace["EXHAUSTIVE"]
    for prefix in namespace["EXHAUSTIVE"]:
        path, _, function = prefix.partition("::")
        assert (ROOT / path).is_file(), prefix
        assert not function or f"def {function.split('[')[0]}" in (ROOT / path).read_text()


def test_the_transforms_stub_matches_the_classes():
    """gpu_histeq/transforms/__init__.pyi (what type checkers see of the classes made on first
    use) has each constructor's parameters: names, kinds and defaults."""
    import ast
    import inspect

    pytest.importorskip("torchvision")
    from gpu_histeq import transforms

    stub = ast.parse(importlib.resources.files("gpu_histeq").joinpath(
        "transforms").joinpath("__init__.pyi").read_text(encoding="utf-8"))
    classes = {node.name: node for node in stub.body if isinstance(node, ast.ClassDef)}
    assert set(transforms.__all__) <= set(classes)
    for name in transforms.__all__:
        [init] = [node for node in classes[name].body
                  if isinstance(node, ast.FunctionDef) and node.name == "__init__"]
        arguments = init.args
        stubbed = [(a.arg, "POSITIONAL_OR_KEYWORD") for a in arguments.args[1:]] + [
            (a.arg, "KEYWORD_ONLY") for a in arguments.kwonlyargs]
        defaults = [ast.literal_eval(d) for d in arguments.defaults] + [
            ast.literal_eval(d) for d in arguments.kw_defaults if d is not None]
        parameters = inspect.signature(getattr(transforms, name).__init__).parameters.values()
        real = [p for p in parameters if p.name != "self"]
        assert stubbed == [(p.name, p.kind.name) for p in real], name
        assert defaults == [p.default for p in real if p.default is not p.empty], name


@needs_source
def test_docs_show_every_cli_command_and_open_with_user_installs():
    from gpu_histeq.cli.commands import operations
    from gpu_histeq.cli.parser import build_parser

    text = (ROOT / "docs" / "cli.rst").read_text(encoding="utf-8")
    shown = re.findall(r"^\.\. cli-help::[ \t]*(\S*)$", text, re.MULTILINE)
    [commands] = [a for a in build_parser(operations())._actions if a.dest == "command"]
    assert sorted(shown) == sorted(["", *commands.choices])  # the top level and each command
    index = (ROOT / "docs" / "index.rst").read_text(encoding="utf-8")
    first_block = re.search(r"code-block:: bash\n\n(.*?)\n\n", index, re.DOTALL).group(1)
    assert first_block.split()[:3] == ["pip", "install", "gpu_histeq"]
    assert "-e" not in first_block.split()
    toctree = index[index.index(".. toctree::"):].split()
    assert {"ragged", "dask", "transforms", "cli", "gpu", "api"} <= set(toctree)
