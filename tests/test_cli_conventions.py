"""The CLI's Unix conventions (issue 22): ``-`` for a .npy stream on stdin/stdout, defaults in
the help, usage lines that do not read as pairs, option errors under the option's name,
``--bgr`` for OpenCV's channel order."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest

import gpu_histeq as gh
from cli_support import leftovers, run_cli
from gpu_histeq.cli import stdio
from gpu_histeq.cli.commands import operations, run_file_command
from gpu_histeq.cli.parser import parse

STACK = np.random.default_rng(3).integers(40, 120, (5, 24, 20), dtype=np.uint8)


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_dash_filters_stdin_to_stdout_in_a_pipe(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        os.path.dirname(os.path.dirname(gh.__file__)), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-m", "gpu_histeq.cli", "equalize", "-"],
                         input=_npy(STACK), capture_output=True, env=env, cwd=tmp_path,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(np.load(io.BytesIO(run.stdout)), gh.equalize_hist(STACK))
    assert run.stderr == b"" and os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv, expected", [
    (["clahe", "-", "{out}", "--clip-limit", "2"], lambda: gh.clahe(STACK, 2.0)),
    (["equalize", "{inp}", "-o", "-", "--method", "pil"],
     lambda: gh.equalize_hist(STACK, method="pil")),
    (["match", "-", "-", "--reference", "{inp}"], lambda: gh.match_histograms(STACK, STACK)),
])
def test_dash_as_input_or_output(tmp_path, argv, expected):
    np.save(tmp_path / "in.npy", STACK)
    to_file = "{out}" in argv
    args = parse([a.format(out=tmp_path / "out.npy", inp=tmp_path / "in.npy") for a in argv],
                 operations())
    stdout = io.BytesIO()
    with stdio.standard_streams(args, stdin=io.BytesIO(_npy(STACK)), stdout=stdout):
        spooled = [path for path in args.inputs if path.endswith("stdin.npy")]
        assert run_file_command(args, operations(), print) == 0
    result = np.load(tmp_path / "out.npy") if to_file else np.load(io.BytesIO(stdout.getvalue()))
    want = expected()
    assert result.dtype == want.dtype  # the library's dtype, as for a file
    np.testing.assert_array_equal(result, want)
    if to_file:
        assert stdout.getvalue() == b""
    assert leftovers(tmp_path) == []
    assert all(not os.path.exists(path) for path in spooled)  # the spooled stdin is gone
    assert sorted(os.listdir(tmp_path)) == sorted(["in.npy"] + ["out.npy"] * to_file)


def test_dash_refuses_what_is_not_npy_and_leaves_nothing(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"P5 not an npy")))
    status, out, err = run_cli(capsys, "equalize", "-")
    assert status == 1 and out == ""
    assert err == ("gpu-histeq: error: -: standard input must be a .npy stream (as numpy.save "
                   "writes), got b'P5 not'\n")


def test_dash_twice_or_several_inputs_to_stdout(tmp_path, capsys):
    np.save(tmp_path / "a.npy", STACK)
    status, _, err = run_cli(capsys, "equalize", "-", "-", "-o", tmp_path / "b.npy")
    assert status == 1 and "standard input can be read once only" in err
    status, _, err = run_cli(capsys, "equalize", tmp_path / "a.npy", tmp_path / "a.npy", "-o", "-")
    assert status == 1 and "standard output takes one result, got 2 inputs" in err


def test_usage_lines_and_defaults_in_the_help(capsys):
    status, text, _ = run_cli(capsys, "clahe", "--help")
    assert status == 0
    lines = text.splitlines()
    assert lines[:3] == [
        "usage: gpu-histeq clahe [options] INPUT [OUTPUT]",
        "       gpu-histeq clahe [options] INPUT... FOLDER/",
        "       gpu-histeq clahe [options] INPUT... (-o OUTPUT | --out-dir FOLDER)"]
    flat = " ".join(text.split())
    assert "0 disables clipping, 2 to 4 is usual for photographs (default: 40.0)" in flat
    assert "tiles across and down: 8x8 or 8,8 (default: 8x8)" in flat
    assert "(default: auto)" in flat and "(default: None)" not in flat
    equalize = " ".join(run_cli(capsys, "equalize", "--help")[1].split())
    assert "--nbins N bins for float input (skimage) (default: 256)" in equalize
    assert "[INPUT [OUTPUT] ...]" not in equalize


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "abc"])
def test_bad_clip_limit_names_the_option(tmp_path, capsys, value):
    np.save(tmp_path / "in.npy", STACK)
    status, out, err = run_cli(capsys, "clahe", tmp_path / "in.npy", "--clip-limit", value,
                               folder=tmp_path)
    assert status == 2 and out == ""
    assert err.startswith("gpu-histeq clahe: error: argument --clip-limit: expected a finite "
                          f"number >= 0 such as 2 or 40 (0: no clipping), got '{value}'")
    assert "clip_limit" not in err and os.listdir(tmp_path) == ["in.npy"]


def test_bgr_luminance_from_the_command_line(tmp_path, capsys):
    bgr = np.random.default_rng(4).integers(30, 140, (2, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "bgr.npy", bgr)
    status, _, err = run_cli(capsys, "equalize", tmp_path / "bgr.npy", tmp_path / "out.npy",
                             "--luminance", "--bgr", "--channel-axis", "-1",
                             inputs=[tmp_path / "bgr.npy"], folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"),
                                  gh.equalize_hist(bgr, channel_axis=-1, luminance="bgr"))
    status, _, err = run_cli(capsys, "equalize", tmp_path / "bgr.npy", "--bgr")
    assert status == 2 and "--bgr gives the channel order for --luminance: pass both" in err
