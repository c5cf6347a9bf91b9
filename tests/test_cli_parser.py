"""``gpu-histeq``: the forms people type (positional output, several inputs, image files,
negative axes, ``8x8`` grids, ``-q``), and argument errors that name their option.

Each test checks the exit status, the one-line message, that every input is byte-identical
afterwards and that no temporary file remains.
"""

import os
import re
from pathlib import Path

import numpy as np
import pytest

import gpu_histeq as gh
from cli_support import run_cli as _run

RNG = np.random.default_rng(11)
STACK = RNG.integers(40, 150, (5, 2, 12, 10), dtype=np.uint8)
GRAY = RNG.integers(20, 120, (24, 20), dtype=np.uint8)
RGB = RNG.integers(30, 160, (4, 12, 10, 3), dtype=np.uint8)


def _files(folder):
    """Every file under `folder` with its bytes."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = Path(path).read_bytes()
    return found


def _one_line_error(err, pattern):
    assert err.count("\n") == 1 and err.startswith("gpu-histeq"), err
    assert re.search(pattern, err), err


@pytest.fixture
def pil():
    return pytest.importorskip("PIL.Image")


@pytest.mark.parametrize("order", ["in out", "options first", "options between"])
def test_positional_output(tmp_path, capsys, order):
    source, target = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(source, STACK)
    argv = {"in out": ["equalize", source, target, "--chunk-size", 2],
            "options first": ["equalize", "--chunk-size", 2, source, target],
            "options between": ["equalize", source, "--chunk-size", 2, target]}[order]
    status, out, err = _run(capsys, *argv, inputs=[source], folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(np.load(target), gh.equalize_hist(STACK))
    assert str(target) in out and err == ""


def test_several_inputs_into_a_folder(tmp_path, capsys, pil):
    tifffile = pytest.importorskip("tifffile")
    pil.fromarray(GRAY).save(tmp_path / "a.png")
    pil.fromarray(GRAY[::-1]).save(tmp_path / "b.png")
    tifffile.imwrite(tmp_path / "c.tif", STACK[:, 0])
    np.save(tmp_path / "d.npy", STACK)
    inputs = [tmp_path / name for name in ("a.png", "b.png", "c.tif", "d.npy")]
    status, out, err = _run(capsys, "equalize", *inputs, "-o", f"{tmp_path / 'outdir'}/",
                            inputs=inputs, folder=tmp_path)
    assert status == 0, err
    written = tmp_path / "outdir"
    assert sorted(os.listdir(written)) == ["a.png", "b.png", "c.tif", "d.npy"]
    np.testing.assert_array_equal(np.asarray(pil.open(written / "a.png")), gh.equalize_hist(GRAY))
    np.testing.assert_array_equal(np.asarray(pil.open(written / "b.png")),
                                  gh.equalize_hist(GRAY[::-1]))
    np.testing.assert_array_equal(tifffile.imread(written / "c.tif"),
                                  gh.equalize_hist(STACK[:, 0]))
    np.testing.assert_array_equal(np.load(written / "d.npy"), gh.equalize_hist(STACK))
    assert out.count("\n") == 4
    # the folder given last, like cp: an empty existing folder is fine
    (tmp_path / "again").mkdir()
    status, _, err = _run(capsys, "equalize", *inputs[:2], tmp_path / "again", inputs=inputs,
                          folder=tmp_path)
    assert status == 0, err
    assert sorted(os.listdir(tmp_path / "again")) == ["a.png", "b.png"]


def test_several_inputs_with_out_dir(tmp_path, capsys):
    """``--out-dir`` names no output: every positional is an input, each gets its own name."""
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    for name in ("x/a.npy", "x/b.npy", "y/a.npy"):
        np.save(tmp_path / name, STACK)
    inputs = [tmp_path / "x" / "a.npy", tmp_path / "x" / "b.npy"]
    (tmp_path / "eq").mkdir()
    status, out, err = _run(capsys, "equalize", *inputs, "--out-dir", tmp_path / "eq",
                            inputs=inputs, folder=tmp_path)
    assert status == 0, err
    assert sorted(os.listdir(tmp_path / "eq")) == ["a_equalize.npy", "b_equalize.npy"]
    np.testing.assert_array_equal(np.load(tmp_path / "eq" / "b_equalize.npy"),
                                  gh.equalize_hist(STACK))
    status, out, err = _run(capsys, "equalize", inputs[0], tmp_path / "y" / "a.npy",
                            "--out-dir", tmp_path, inputs=inputs, folder=tmp_path)
    assert status == 1
    _one_line_error(err, r"two inputs would both write .*a_equalize\.npy: rename one")


def test_several_inputs_need_a_folder_output(tmp_path, capsys):
    for name in ("a.npy", "b.npy"):
        np.save(tmp_path / name, STACK)
    (tmp_path / "c.npy").write_bytes(b"mine")
    inputs = [tmp_path / name for name in ("a.npy", "b.npy", "c.npy")]
    status, _, err = _run(capsys, "equalize", *inputs, inputs=inputs, folder=tmp_path)
    assert status == 1
    _one_line_error(err, r"c\.npy exists and is not a folder")


def test_one_image_file_gives_the_same_format(tmp_path, capsys, pil):
    pil.fromarray(GRAY).save(tmp_path / "cam.png")
    status, out, err = _run(capsys, "equalize", tmp_path / "cam.png",
                            inputs=[tmp_path / "cam.png"], folder=tmp_path)
    assert status == 0, err
    with pil.open(tmp_path / "cam_equalize.png") as image:
        assert image.format == "PNG"
        np.testing.assert_array_equal(np.asarray(image), gh.equalize_hist(GRAY))
    pil.fromarray(RGB[0]).save(tmp_path / "photo.jpg", quality=95)
    status, _, err = _run(capsys, "equalize", tmp_path / "photo.jpg", tmp_path / "eq.jpg",
                          "--luminance", inputs=[tmp_path / "photo.jpg"], folder=tmp_path)
    assert status == 0, err
    with pil.open(tmp_path / "photo.jpg") as image:
        photo = np.asarray(image)
    with pil.open(tmp_path / "eq.jpg") as image:
        assert image.format == "JPEG" and image.size == (10, 12)
        expected = gh.equalize_hist(photo, axes=(0, 1), channel_axis=2, luminance=True)
        assert np.abs(np.asarray(image).astype(int) - expected).mean() < 12  # JPEG is lossy
    status, _, err = _run(capsys, "equalize", tmp_path / "cam.png", tmp_path / "f.png",
                          "--method", "skimage", inputs=[tmp_path / "cam.png"], folder=tmp_path)
    assert status == 1
    _one_line_error(err, r"holds uint8/uint16, but this method gives float64")
    assert not (tmp_path / "f.png").exists()


def test_reference_may_be_one_image_file(tmp_path, capsys, pil):
    if not hasattr(gh, "match_histograms"):
        pytest.skip("no gpu_histeq.match_histograms")
    np.save(tmp_path / "in.npy", STACK[:, 0])
    pil.fromarray(GRAY[:12, :10]).save(tmp_path / "moon.png")
    inputs = [tmp_path / "in.npy", tmp_path / "moon.png"]
    status, _, err = _run(capsys, "match", tmp_path / "in.npy", tmp_path / "out.npy",
                          "--reference", tmp_path / "moon.png", inputs=inputs, folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"),
                                  gh.match_histograms(STACK[:, 0], GRAY[:12, :10]))
    # one image in, one image out: the float result rounded to the 8-bit reference's levels
    pil.fromarray(GRAY).save(tmp_path / "cam.png")
    pil.fromarray(GRAY[::-1, ::-1] // 2).save(tmp_path / "ref.png")
    inputs = [tmp_path / "cam.png", tmp_path / "ref.png"]
    status, _, err = _run(capsys, "match", tmp_path / "cam.png", "--reference",
                          tmp_path / "ref.png", inputs=inputs, folder=tmp_path)
    assert status == 0, err
    expected = gh.match_histograms(GRAY, GRAY[::-1, ::-1] // 2)
    with pil.open(tmp_path / "cam_match.png") as image:
        np.testing.assert_array_equal(np.asarray(image),
                                      np.clip(np.rint(expected), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("axes", [["--axes", "-2,-1"], ["--axes", "-1,-2"], ["--axes=-2,-1"]])
def test_negative_axes(tmp_path, capsys, axes):
    np.save(tmp_path / "in.npy", STACK)
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.npy", *axes,
                          inputs=[tmp_path / "in.npy"], folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), gh.equalize_hist(STACK))


@pytest.mark.parametrize("axes", [[], ["--axes", "1,2"], ["--layout", "NHWC"]])
def test_negative_channel_axis(tmp_path, capsys, axes):
    """``--channel-axis -1`` on an NHWC stack: the image axes are H, W unless given."""
    np.save(tmp_path / "in.npy", RGB)
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.npy",
                          "--luminance", "--channel-axis", "-1", *axes,
                          inputs=[tmp_path / "in.npy"], folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), gh.equalize_hist(
        RGB, axes=(1, 2), channel_axis=3, luminance=True))


@pytest.mark.skipif(not hasattr(gh, "clahe"), reason="gpu_histeq.clahe is not installed")
@pytest.mark.parametrize("grid, expected", [("8x8", (8, 8)), ("8,8", (8, 8)), ("2x3", (2, 3)),
                                            ("3,2", (3, 2)), ("4", (4, 4))])
def test_tile_grid_forms(tmp_path, capsys, grid, expected):
    images = RNG.integers(0, 256, (3, 32, 24), dtype=np.uint8)
    np.save(tmp_path / "in.npy", images)
    status, _, err = _run(capsys, "clahe", tmp_path / "in.npy", tmp_path / "out.npy",
                          "--tile-grid", grid, "--clip-limit", 3,
                          inputs=[tmp_path / "in.npy"], folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"),
                                  gh.clahe(images, 3.0, expected))


def test_quiet_prints_nothing(tmp_path, capsys):
    np.save(tmp_path / "in.npy", STACK)
    status, out, err = _run(capsys, "equalize", "-q", tmp_path / "in.npy", tmp_path / "out.npy",
                            "--progress", inputs=[tmp_path / "in.npy"], folder=tmp_path)
    assert (status, out, err) == (0, "", "")
    status, out, err = _run(capsys, "--quiet", "equalize", tmp_path / "in.npy",
                            tmp_path / "o2.npy", inputs=[tmp_path / "in.npy"], folder=tmp_path)
    assert (status, out, err) == (0, "", "")
    np.testing.assert_array_equal(np.load(tmp_path / "o2.npy"), gh.equalize_hist(STACK))
    status, out, err = _run(capsys, "equalize", "-q", tmp_path / "missing.npy")
    assert status == 1 and out == ""
    _one_line_error(err, "missing.npy does not exist")


BAD = [  # (argv after the command's input and output, exit status, pattern naming the option)
    (["--chunk-size", "x"], 2, r"argument --chunk-size: invalid int value: 'x'"),
    (["--chunk-size", "0"], 1, r"--chunk-size must be a positive number"),
    (["--nbins", "0"], 2, r"argument --nbins: expected a positive integer, got '0'"),
    (["--device", "tpu"], 2, r"argument --device: invalid choice: 'tpu'"),
    (["--method", "cv"], 2, r"argument --method: invalid choice: 'cv'"),
    (["--axes", "1,x"], 1, r"--axes must be comma-separated integers or 'all', got '1,x'"),
    (["--axes", "-9,-1"], 1, r"--axes '-9,-1' is out of range"),
    (["--axes", "1,2", "--layout", "NCHW"], 1, r"give --axes or --layout, not both"),
    (["--layout", "NHW"], 1, r"--layout 'NHW' must name each of the 4 axes"),
    (["--channel-axis", "x"], 2, r"argument --channel-axis: invalid int value: 'x'"),
    (["--key", "nope"], 1, r"--key 'nope': .* has no such array"),
    (["--mask", "{tmp}/float.npy"], 1, r"--mask .*float\.npy must be a boolean array"),
    (["--mask", "{tmp}/wide.npy"], 1, r"--mask .*wide\.npy of shape \(3, 3\) does not broadcast"),
    (["--bogus"], 2, r"unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("extra, status, pattern", BAD)
def test_argument_errors_name_their_option(tmp_path, capsys, extra, status, pattern):
    np.save(tmp_path / "in.npy", STACK)
    np.save(tmp_path / "float.npy", np.zeros((12, 10)))
    np.save(tmp_path / "wide.npy", np.ones((3, 3), bool))
    inputs = [tmp_path / name for name in ("in.npy", "float.npy", "wide.npy")]
    if "--key" in extra:
        np.savez(tmp_path / "in.npz", images=STACK)
        source = tmp_path / "in.npz"
    else:
        source = tmp_path / "in.npy"
    code, out, err = _run(capsys, "equalize", source, tmp_path / "out.npy",
                          *[e.format(tmp=tmp_path) for e in extra], inputs=inputs,
                          folder=tmp_path)
    assert code == status and out == ""
    _one_line_error(err, pattern)
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.skipif(not hasattr(gh, "clahe"), reason="gpu_histeq.clahe is not installed")
@pytest.mark.parametrize("grid", ["8y8", "0x8", "8x8x8", ""])
def test_bad_tile_grid_names_the_option(tmp_path, capsys, grid):
    np.save(tmp_path / "in.npy", STACK)
    code, _, err = _run(capsys, "clahe", tmp_path / "in.npy", "--tile-grid", grid,
                        inputs=[tmp_path / "in.npy"], folder=tmp_path)
    assert code == 2
    _one_line_error(err, r"argument --tile-grid: expected two positive integers such as 8x8")
    assert sorted(os.listdir(tmp_path)) == ["in.npy"]
