"""``gpu_histeq.show_config()``: what it reports matches the switches, and it never fails."""

import importlib.machinery
import importlib.util
import sys
import types

import numpy as np
import pytest

import gpu_histeq
from gpu_histeq import _config, _cpu, _engine, _planes


def test_show_config_reports_versions_path_and_threads(capsys):
    assert gpu_histeq.show_config() is None
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"gpu_histeq {gpu_histeq.__version__} (")
    assert f"numpy {np.__version__}: CPU backend" in lines
    assert f"  threads: {_planes.thread_count()}" in lines
    compiled = "active (" if _cpu.BUILT else "not built (no C compiler at install time)"
    assert f"  compiled CPU path: {compiled}" in out


def test_dicts_follow_the_portable_switch():
    info = gpu_histeq.show_config(mode="dicts")
    assert info["gpu_histeq"]["version"] == gpu_histeq.__version__
    assert info["compiled CPU path"]["built"] is _cpu.BUILT
    assert info["compiled CPU path"]["active"] is (_cpu.BUILT and _engine.compiled_enabled())
    with _engine.portable():
        inside = gpu_histeq.show_config(mode="dicts")
    assert inside["compiled CPU path"]["active"] is False
    assert inside["compiled CPU path"]["switched off"] is True
    assert inside["compiled CPU path"]["built"] is _cpu.BUILT
    assert inside["CUDA path"]["enabled"] is False


@pytest.mark.skipif(not _cpu.BUILT, reason="the compiled CPU path is not built here")
def test_environment_switch_is_reported(monkeypatch, capsys):
    monkeypatch.setenv("GPU_HISTEQ_PORTABLE", "1")
    gpu_histeq.show_config()
    out = capsys.readouterr().out
    assert "  compiled CPU path: built, switched off" in out
    assert "GPU_HISTEQ_PORTABLE=1" in out.splitlines()


def test_a_bad_thread_setting_is_reported_not_raised(monkeypatch):
    monkeypatch.setenv("GPU_HISTEQ_NUM_THREADS", "many")
    info = gpu_histeq.show_config(mode="dicts")
    assert info["threads"]["count"] is None
    assert "GPU_HISTEQ_NUM_THREADS" in info["threads"]["error"] and "'many'" in info["threads"]["error"]
    assert info["environment"]["GPU_HISTEQ_NUM_THREADS"] == "many"


def test_without_cupy_nothing_is_imported(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "cupy" else real_find_spec(name, *a))
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    info = _config.config()
    assert info["CUDA path"]["cupy"] is None
    assert info["CUDA path"]["error"] == "CuPy is not installed"
    assert "cupy" not in sys.modules
    assert "cupy: unavailable (CuPy is not installed)" in _config.format_config(info)


def _fake_cupy(monkeypatch, runtime):
    module = types.ModuleType("cupy")
    module.__spec__ = importlib.machinery.ModuleSpec("cupy", None)
    module.__version__ = "99.0.0"
    module.cuda = types.SimpleNamespace(runtime=runtime)
    monkeypatch.setitem(sys.modules, "cupy", module)


def test_a_cupy_that_sees_devices(monkeypatch):
    props = {"name": b"Fake H100", "totalGlobalMem": 80 * 2**30, "major": 9, "minor": 0}
    _fake_cupy(monkeypatch, types.SimpleNamespace(getDeviceCount=lambda: 2,
                                                  getDeviceProperties=lambda index: props))
    text = _config.format_config(_config.config())
    assert "cupy 99.0.0: GPU backend, CUDA kernels on" in text
    assert "  gpu 1: Fake H100, 80.0 GiB, compute capability 9.0" in text


def test_a_cupy_without_a_driver_is_reported_not_raised(monkeypatch):
    def no_driver():
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")

    _fake_cupy(monkeypatch, types.SimpleNamespace(getDeviceCount=no_driver))
    info = _config.config()
    assert info["CUDA path"]["cupy"] == "99.0.0"
    assert info["CUDA path"]["error"] == ("RuntimeError: cudaErrorInsufficientDriver: CUDA "
                                          "driver version is insufficient")
    assert "  devices: none usable (RuntimeError: cudaErrorInsufficientDriver" in (
        _config.format_config(info))


def test_bad_mode():
    with pytest.raises(ValueError, match=r"`mode` must be \"stdout\" or \"dicts\", got 'json'"):
        gpu_histeq.show_config(mode="json")


def test_show_config_is_public():
    assert "show_config" in gpu_histeq.__all__
