"""The ``gpu-histeq`` command: outputs equal to the in-memory API bit for bit, clean failures.

Most tests call :func:`gpu_histeq.cli.main` in-process (fast); one runs the console script in a
subprocess, as users do.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import gpu_histeq as gh
from gpu_histeq import _sample
from cli_support import leftovers as _leftovers, run_cli as _run

RNG = np.random.default_rng(3)
STACK = RNG.integers(50, 140, (7, 2, 12, 10), dtype=np.uint8)
FLOATS = RNG.normal(size=(7, 2, 12, 10)).astype(np.float32)
INT16 = RNG.integers(-500, 500, (7, 2, 12, 10)).astype(np.int16)
UINT16 = RNG.integers(100, 3000, (7, 12, 10), dtype=np.uint16)


def test_no_arguments_writes_the_demo_into_its_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    demo = tmp_path / "gpu_histeq_demo"
    status, out, err = _run(capsys)
    assert status == 0, err
    assert os.listdir(tmp_path) == ["gpu_histeq_demo"]  # nothing else in the current directory
    figure, array = demo / "before_after.png", demo / "synthetic_equalized.npy"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(np.load(array), gh.equalize_hist(_sample.synthetic()))
    assert "before_after.png" in out and "synthetic_equalized.npy" in out
    assert _leftovers(demo) == []


def test_demo_again_changes_nothing_and_keeps_other_files(tmp_path, monkeypatch, capsys):
    """Running the README's command twice works; a different file of the same name is kept."""
    monkeypatch.chdir(tmp_path)
    demo = tmp_path / "gpu_histeq_demo"
    assert _run(capsys)[0] == 0
    figure = (demo / "before_after.png").read_bytes()
    status, _, err = _run(capsys)
    assert status == 0, err
    assert (demo / "before_after.png").read_bytes() == figure
    (demo / "before_after.png").write_bytes(b"my own figure")
    status, out, err = _run(capsys)
    assert status == 1 and out == "" and err.count("\n") == 1
    assert "before_after.png exists and differs from this run's result: use --force" in err
    assert (demo / "before_after.png").read_bytes() == b"my own figure"
    assert _leftovers(demo) == []
    status, out, err = _run(capsys, "--force", "-q")
    assert (status, out, err) == (0, "", "")
    assert (demo / "before_after.png").read_bytes() == figure
    assert sorted(os.listdir(demo)) == ["before_after.png", "synthetic_equalized.npy"]


def test_out_dir_and_a_scikit_image_sample(tmp_path, capsys):
    pytest.importorskip("skimage")
    status, out, err = _run(capsys, "demo", "--sample", "moon", "--out-dir", tmp_path)
    assert status == 0, err
    from skimage import data
    np.testing.assert_array_equal(np.load(tmp_path / "moon_equalized.npy"),
                                  gh.equalize_hist(data.moon()[None]))
    assert (tmp_path / "before_after.png").stat().st_size > 1000


@pytest.mark.parametrize("images, options", [
    (STACK, []),
    (STACK, ["--method", "pil"]),
    (STACK, ["--method", "skimage"]),
    (FLOATS, []),
    (INT16, ["--layout", "NCHW"]),
    (UINT16, []),
    (STACK, ["--axes=1,2"]),
])
def test_equalize_npy_in_chunks_equals_in_memory(tmp_path, capsys, images, options):
    source, target = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(source, images)
    status, out, err = _run(capsys, "equalize", source, "-o", target, "--chunk-size", 2, *options)
    assert status == 0, err
    method = options[1] if options[:1] == ["--method"] else None
    axes = (1, 2) if "--axes=1,2" in options else (-2, -1)
    expected = gh.equalize_hist(images, axes=axes, method=method)
    result = np.load(target)
    assert result.dtype == expected.dtype
    np.testing.assert_array_equal(result, expected)
    assert str(target) in out and _leftovers(tmp_path) == []


@pytest.mark.parametrize("images, axes, method", [
    (STACK, "all", None),
    (STACK, "0,2,3", "pil"),
    (FLOATS, "all", None),
    (INT16, "0,1,3", None),
    (UINT16, "0,1", None),
])
@pytest.mark.parametrize("masked", [False, True])
def test_dataset_wide_streams_in_passes(tmp_path, capsys, images, axes, method, masked):
    """Image axes that include the first axis: histogram pass(es), then the remap pass."""
    np.save(tmp_path / "in.npy", images)
    argv = ["equalize", tmp_path / "in.npy", "-o", tmp_path / "out.npy", "--chunk-size", 2,
            f"--axes={axes}"] + (["--method", method] if method else [])
    mask = None
    if masked:
        mask = RNG.random(images.shape[-2:]) > 0.3
        np.save(tmp_path / "mask.npy", mask)
        argv += ["--mask", tmp_path / "mask.npy"]
    status, _, err = _run(capsys, *argv)
    assert status == 0, err
    axes = tuple(range(images.ndim)) if axes == "all" else tuple(int(a) for a in axes.split(","))
    expected = gh.equalize_hist(images, axes=axes, method=method, mask=mask)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


def test_npz_tiff_and_zarr_round_trips(tmp_path, capsys):
    expected = gh.equalize_hist(STACK)
    np.savez(tmp_path / "pair.npz", images=STACK, other=STACK[:1])
    status, _, err = _run(capsys, "equalize", tmp_path / "pair.npz", "--key", "images",
                          "-o", tmp_path / "out.npz")
    assert status == 0, err
    with np.load(tmp_path / "out.npz") as archive:
        np.testing.assert_array_equal(archive["images"], expected)
    status, _, err = _run(capsys, "equalize", tmp_path / "pair.npz")
    assert status == 1 and "--key" in err

    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "stack.tif", STACK[:, 0])
    status, _, err = _run(capsys, "equalize", tmp_path / "stack.tif", "-o", tmp_path / "out.tif",
                          "--chunk-size", 3)
    assert status == 0, err
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), expected[:, 0])

    zarr = pytest.importorskip("zarr")
    stored = zarr.open_array(str(tmp_path / "stack.zarr"), mode="w", shape=STACK.shape,
                             chunks=(2, 2, 12, 10), dtype=STACK.dtype)
    stored[...] = STACK
    status, _, err = _run(capsys, "equalize", tmp_path / "stack.zarr", "-o",
                          tmp_path / "out.zarr", "--chunk-size", 3)
    assert status == 0, err
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...],
                                  expected)
    assert _leftovers(tmp_path) == []


def test_folder_of_images(tmp_path, capsys):
    image_module = pytest.importorskip("PIL.Image")
    folder = tmp_path / "faces"
    folder.mkdir()
    for i, image in enumerate(STACK[:, 0]):
        image_module.fromarray(image).save(folder / f"face{i:02d}.png")
    status, out, err = _run(capsys, "equalize", folder, "--out-dir", tmp_path)
    assert status == 0, err
    written = sorted((tmp_path / "faces_equalize").iterdir())
    assert [p.name for p in written] == [f"face{i:02d}.png" for i in range(len(STACK))]
    result = np.stack([np.asarray(image_module.open(p)) for p in written])
    np.testing.assert_array_equal(result, gh.equalize_hist(STACK[:, 0]))
    status, _, err = _run(capsys, "equalize", folder, "-o", tmp_path / "faces.npy",
                          "--method", "skimage")
    assert status == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "faces.npy"),
                                  gh.equalize_hist(STACK[:, 0], method="skimage"))


RGB = RNG.integers(30, 160, (5, 12, 10, 3), dtype=np.uint8)


@pytest.mark.parametrize("images, options, channel_axis", [
    (RGB, ["--layout", "NHWC"], 3),
    (RGB, ["--axes=1,2"], 3),  # a last axis of 3 outside the image axes
    (np.moveaxis(RGB, 3, 1).copy(), ["--channel-axis", 1], 1),
    (RGB.astype(np.float32) / 255, ["--layout", "NHWC"], 3),
])
def test_luminance_equals_in_memory(tmp_path, capsys, images, options, channel_axis):
    np.save(tmp_path / "in.npy", images)
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", "-o", tmp_path / "out.npy",
                          "--chunk-size", 2, "--luminance", *options)
    assert status == 0, err
    axes = (1, 2) if channel_axis == 3 else (-2, -1)
    expected = gh.equalize_hist(images, axes=axes, channel_axis=channel_axis, luminance=True)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


def test_luminance_of_a_folder_of_colour_images(tmp_path, capsys):
    image_module = pytest.importorskip("PIL.Image")
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(RGB):
        image_module.fromarray(image).save(folder / f"photo{i}.png")
    status, _, err = _run(capsys, "equalize", folder, "-o", tmp_path / "out.npy", "--luminance")
    assert status == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), gh.equalize_hist(
        RGB, axes=(1, 2), channel_axis=3, luminance=True))


@pytest.mark.parametrize("options, message", [
    (["--luminance"], r"--luminance needs the RGB axis of the input \(shape \(7, 2, 12, 10\)\)"),
    (["--luminance", "--channel-axis", 4], r"--channel-axis 4 is out of range"),
    (["--luminance", "--channel-axis", 1], r"needs 3 \(R, G, B\) channels along `channel_axis` 1, got 2"),
    (["--channel-axis", 1, "--axes=1,2"],
     r"the channel axis 1 is one of the image axes \(1, 2\): leave --axes out or give --axes 2,3"),
    (["--channel-axis", 3, "--axes=-2,-1"], r"the channel axis 3 is one of the image axes"),
])
def test_luminance_without_an_rgb_axis_fails_in_one_line(tmp_path, capsys, options, message):
    np.save(tmp_path / "in.npy", STACK)
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", "-o", tmp_path / "out.npy",
                          *options)
    assert status == 1 and err.count("\n") == 1
    assert re.search(message, err), err
    assert not (tmp_path / "out.npy").exists() and _leftovers(tmp_path) == []


def test_truncated_input_fails_in_one_line_without_output(tmp_path, capsys):
    np.save(tmp_path / "in.npy", STACK)
    data = (tmp_path / "in.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) // 2])
    status, out, err = _run(capsys, "equalize", tmp_path / "cut.npy", "-o", tmp_path / "out.npy")
    assert status == 1
    assert err.startswith("gpu-histeq: error: cannot read") and err.count("\n") == 1
    assert not (tmp_path / "out.npy").exists() and _leftovers(tmp_path) == []
    (tmp_path / "junk.tif").write_bytes(b"not a tiff at all")
    status, _, err = _run(capsys, "equalize", tmp_path / "junk.tif")
    assert status == 1 and err.count("\n") == 1
    assert not (tmp_path / "junk_equalize.npy").exists()


def test_a_failing_run_leaves_the_previous_output(tmp_path, capsys):
    bad = FLOATS.copy()
    bad[5, 1, 3, 3] = np.nan  # found in the last chunk, after earlier chunks were written
    np.save(tmp_path / "in.npy", bad)
    (tmp_path / "out.npy").write_bytes(b"previous result")
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", "-o", tmp_path / "out.npy",
                          "--chunk-size", 2, "--force")
    assert status == 1 and "NaN" in err
    assert (tmp_path / "out.npy").read_bytes() == b"previous result"
    assert _leftovers(tmp_path) == []


def test_refuses_to_overwrite_its_input(tmp_path, capsys):
    np.save(tmp_path / "in.npy", STACK)
    before = (tmp_path / "in.npy").read_bytes()
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", "-o", tmp_path / "in.npy")
    assert status == 1 and "refusing to overwrite the input" in err
    assert (tmp_path / "in.npy").read_bytes() == before


@pytest.mark.parametrize("argv, message", [
    (["equalize", "{tmp}/missing.npy"], "does not exist"),
    (["equalize", "{tmp}/in.npy", "-o", "{tmp}/out.bmp"], "unsupported output"),
    (["equalize", "{tmp}/in.npy", "--method", "pil", "-o", "{tmp}/o.npy"], "`method='pil'`"),
    (["equalize", "{tmp}/in.npy", "--axes=0,9"], "out of range"),
    (["equalize", "{tmp}/in.npy", "--layout", "NHW"], "--layout"),
    (["equalize", "{tmp}/in.npy", "--chunk-size", "0"], "--chunk-size"),
    (["equalize", "{tmp}/in.npy", "--mask", "{tmp}/in.npy"], "boolean"),
])
def test_bad_requests(tmp_path, capsys, argv, message):
    np.save(tmp_path / "in.npy", FLOATS)
    status, _, err = _run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert status == 1 and message in err and err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["in.npy"]


def test_gpu_without_a_gpu_is_a_clear_error(tmp_path, capsys, monkeypatch):
    from gpu_histeq.cli import commands as cli

    monkeypatch.setattr(cli, "cupy_or_reason", lambda: (None, "CuPy is not importable"))
    np.save(tmp_path / "in.npy", STACK)
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", "--device", "gpu")
    assert status == 1 and "--device gpu needs CuPy and a CUDA GPU" in err
    assert sorted(os.listdir(tmp_path)) == ["in.npy"]
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", "--device", "auto")
    assert status == 0, err  # auto falls back to the CPU


def test_missing_optional_package_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tifffile", None)  # import fails as if not installed
    (tmp_path / "in.tif").write_bytes(b"II*\x00")
    status, _, err = _run(capsys, "equalize", tmp_path / "in.tif")
    assert status == 1 and "gpu_histeq[cli]" in err and "tifffile" in err


def test_progress_bar_on_stderr(tmp_path, capsys):
    pytest.importorskip("tqdm")
    np.save(tmp_path / "in.npy", STACK)
    status, out, err = _run(capsys, "equalize", tmp_path / "in.npy", "--progress",
                            "--chunk-size", 1, "--axes=all")
    assert status == 0
    assert "3 passes" not in err and "2 passes" in err and "img" in err
    assert "img" not in out


def test_info_lists_backends(capsys):
    status, out, _ = _run(capsys, "info")
    assert status == 0
    assert "numpy" in out and "cupy" in out and "operations: equalize" in out


@pytest.mark.skipif(not hasattr(gh, "clahe"), reason="gpu_histeq.clahe is not installed")
def test_clahe_command(tmp_path, capsys):
    np.save(tmp_path / "in.npy", STACK)
    status, _, err = _run(capsys, "clahe", tmp_path / "in.npy", "-o", tmp_path / "out.npy",
                          "--chunk-size", 3, "--clip-limit", 2, "--tile-grid", "2,3")
    assert status == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), gh.clahe(STACK, 2.0, (2, 3)))


@pytest.mark.skipif(not hasattr(gh, "match_histograms"), reason="no gpu_histeq.match_histograms")
def test_match_command(tmp_path, capsys):
    np.save(tmp_path / "in.npy", STACK)
    np.save(tmp_path / "ref.npy", STACK[0, 0])
    status, _, err = _run(capsys, "match", tmp_path / "in.npy", "--reference",
                          tmp_path / "ref.npy", "-o", tmp_path / "out.npy", "--chunk-size", 3)
    assert status == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"),
                                  gh.match_histograms(STACK, STACK[0, 0]))


def test_console_script_in_a_subprocess(tmp_path):
    np.save(tmp_path / "in.npy", STACK)
    done = subprocess.run([sys.executable, "-m", "gpu_histeq.cli", "equalize", "in.npy"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "in_equalize.npy"), gh.equalize_hist(STACK))
    failed = subprocess.run([sys.executable, "-m", "gpu_histeq.cli", "equalize", "nothing.npy"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1
