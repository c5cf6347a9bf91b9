"""``gpu-histeq`` never loses a user's data: no overwrite without ``--force``, no input as an
output (any spelling or link), one winner among concurrent writers, clean failures on a full
disk, a damaged TIFF or an input truncated while it is read.

Each test checks the exit status, the one-line message, that every input is byte-identical
(where the test does not damage it on purpose) and that no temporary file remains.
"""

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gpu_histeq as gh
from cli_support import leftovers as _leftovers, run_cli as _run

RNG = np.random.default_rng(5)
STACK = RNG.integers(40, 150, (6, 2, 12, 10), dtype=np.uint8)
IMAGES = RNG.integers(30, 140, (4, 12, 10), dtype=np.uint8)


def _one_line(err, text):
    assert err.count("\n") == 1 and err.startswith("gpu-histeq: error: "), err
    assert text in err, err


def _cli(*argv, cwd=None, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "gpu_histeq.cli", *map(str, argv)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.fixture
def pil():
    return pytest.importorskip("PIL.Image")


def _image_folder(pil, folder, images=IMAGES):
    folder.mkdir()
    for i, image in enumerate(images):
        pil.fromarray(image).save(folder / f"img{i}.png")
    return sorted(folder.iterdir())


# ------------------------------------------------------------------ no overwrite without --force

@pytest.mark.parametrize("flag", ["--force", "--overwrite", "-f"])
def test_existing_output_file_needs_force(tmp_path, capsys, flag):
    np.save(tmp_path / "in.npy", STACK)
    (tmp_path / "out.npy").write_bytes(b"precious")
    inputs = [tmp_path / "in.npy"]
    status, out, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.npy",
                            inputs=inputs + [tmp_path / "out.npy"], folder=tmp_path)
    assert status == 1 and out == ""
    _one_line(err, f"{tmp_path / 'out.npy'} exists: use --force to replace it")
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.npy", flag,
                          inputs=inputs, folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), gh.equalize_hist(STACK))


def test_the_issue_scenario_a_folder_with_notes(tmp_path, capsys, pil):
    """``gpu-histeq equalize gray -o important`` used to delete important/notes.txt."""
    inputs = _image_folder(pil, tmp_path / "gray")
    important = tmp_path / "important"
    important.mkdir()
    (important / "notes.txt").write_text("keep")
    (important / "img0.png").write_bytes(b"old result")
    status, _, err = _run(capsys, "equalize", tmp_path / "gray", "-o", important,
                          inputs=inputs, folder=tmp_path)
    assert status == 1
    _one_line(err, f"the output folder {important} is not empty: use --force")
    assert sorted(os.listdir(important)) == ["img0.png", "notes.txt"]
    assert (important / "img0.png").read_bytes() == b"old result"
    status, _, err = _run(capsys, "equalize", tmp_path / "gray", "-o", important, "--force",
                          inputs=inputs, folder=tmp_path)
    assert status == 0, err
    assert (important / "notes.txt").read_text() == "keep"
    assert sorted(os.listdir(important)) == ["img0.png", "img1.png", "img2.png", "img3.png",
                                             "notes.txt"]
    result = np.stack([np.asarray(pil.open(important / f"img{i}.png")) for i in range(4)])
    np.testing.assert_array_equal(result, gh.equalize_hist(IMAGES))


def test_empty_output_folder_is_used(tmp_path, capsys, pil):
    inputs = _image_folder(pil, tmp_path / "gray")
    (tmp_path / "empty").mkdir()
    status, _, err = _run(capsys, "equalize", tmp_path / "gray", tmp_path / "empty",
                          inputs=inputs, folder=tmp_path)
    assert status == 0, err
    assert len(os.listdir(tmp_path / "empty")) == 4


def test_zarr_output_needs_force(tmp_path, capsys):
    zarr = pytest.importorskip("zarr")
    np.save(tmp_path / "in.npy", STACK)
    inputs = [tmp_path / "in.npy"]
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.zarr",
                          inputs=inputs, folder=tmp_path)
    assert status == 0, err
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.zarr",
                          "--method", "pil", inputs=inputs, folder=tmp_path)
    assert status == 1
    _one_line(err, "out.zarr exists: use --force")
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.zarr",
                          "--method", "pil", "--force", inputs=inputs, folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...],
                                  gh.equalize_hist(STACK, method="pil"))
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("keep")
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "plain.zarr",
                          inputs=inputs, folder=tmp_path)
    assert status == 0, err
    (tmp_path / "plain.zarr").rename(tmp_path / "x.zarr")
    (tmp_path / "plain").rename(tmp_path / "plain.zarr")
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "plain.zarr",
                          "--force", inputs=inputs, folder=tmp_path)
    assert status == 1
    _one_line(err, "is a folder that is not a zarr array: refusing to replace it")
    assert (tmp_path / "plain.zarr" / "notes.txt").read_text() == "keep"


def _zarr_array(zarr, path, data, **options):
    array = zarr.open_array(str(path), mode="w", shape=data.shape, dtype=data.dtype,
                            chunks=(1,) + data.shape[1:], **options)
    array[...] = data
    return array


def test_zarr_force_replaces_only_the_arrays_own_files(tmp_path, capsys):
    """Issue 21, item 1: ``--force`` onto an existing zarr array deleted a user's NOTES.txt."""
    zarr = pytest.importorskip("zarr")
    data = RNG.integers(0, 200, (3, 24, 20), dtype=np.uint8)
    _zarr_array(zarr, tmp_path / "in.zarr", data)
    _zarr_array(zarr, tmp_path / "out.zarr", RNG.integers(0, 9, (5, 24, 20), dtype=np.uint8))
    (tmp_path / "out.zarr" / "NOTES.txt").write_text("notes")
    (tmp_path / "out.zarr" / "docs").mkdir()
    (tmp_path / "out.zarr" / "docs" / "0").write_text("mine")
    inputs = sorted(p for p in (tmp_path / "in.zarr").rglob("*") if p.is_file())
    status, _, err = _run(capsys, "equalize", tmp_path / "in.zarr", tmp_path / "out.zarr",
                          "--force", "-q", inputs=inputs, folder=tmp_path)
    assert status == 0 and err == ""
    assert sorted(os.listdir(tmp_path / "out.zarr")) == ["NOTES.txt", "c", "docs", "zarr.json"]
    assert (tmp_path / "out.zarr" / "NOTES.txt").read_text() == "notes"
    assert (tmp_path / "out.zarr" / "docs" / "0").read_text() == "mine"
    result = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    assert result.shape == data.shape  # the old array's rows 3 and 4 are gone with it
    np.testing.assert_array_equal(result[...], gh.equalize_hist(data))
    # the input's chunks (one row each) kept; the old array's chunks 3 and 4 gone
    assert sorted(os.listdir(tmp_path / "out.zarr" / "c")) == ["0", "1", "2"]


def test_zarr_force_over_a_version_2_array(tmp_path, capsys):
    """Its .zarray, .zattrs and ``0.0.0`` chunk files go; the user's file stays."""
    zarr = pytest.importorskip("zarr")
    data = RNG.integers(0, 200, (4, 8, 6), dtype=np.uint8)
    np.save(tmp_path / "in.npy", data)
    old = _zarr_array(zarr, tmp_path / "out.zarr", data[:2], zarr_format=2)
    old.attrs["note"] = "old"
    (tmp_path / "out.zarr" / "README").write_text("keep")
    assert {".zarray", ".zattrs", "0.0.0", "1.0.0"} <= set(os.listdir(tmp_path / "out.zarr"))
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.zarr", "-f",
                          inputs=[tmp_path / "in.npy"], folder=tmp_path)
    assert status == 0, err
    assert sorted(os.listdir(tmp_path / "out.zarr")) == ["README", "c", "zarr.json"]
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"))[...],
                                  gh.equalize_hist(data))


def test_zarr_force_never_replaces_a_groups_member(tmp_path, capsys):
    """A group holding an array named ``c`` (the new array's chunk folder): refused, whole."""
    zarr = pytest.importorskip("zarr")
    np.save(tmp_path / "in.npy", STACK[:, 0])
    group = zarr.open_group(str(tmp_path / "out.zarr"), mode="w")
    group.create_array("c", shape=(2, 3), dtype="u1")[...] = 7
    before = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "out.zarr").rglob("*"))
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.zarr", "-f",
                          inputs=[tmp_path / "in.npy"], folder=tmp_path)
    assert status == 1
    _one_line(err, f"refusing to replace {tmp_path / 'out.zarr' / 'c'}: it is not part of the "
              "zarr array; nothing was replaced")
    assert sorted(str(p.relative_to(tmp_path))
                  for p in (tmp_path / "out.zarr").rglob("*")) == before
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "out.zarr"))["c"][...],
                                  np.full((2, 3), 7, np.uint8))


@pytest.mark.parametrize("fill", [False, True])
def test_a_zarr_input_missing_a_chunk(tmp_path, capsys, fill):
    """Issue 21, item 8: a missing chunk file was read as zeros, exit 0."""
    zarr = pytest.importorskip("zarr")
    data = RNG.integers(1, 200, (4, 6, 5), dtype=np.uint8)
    _zarr_array(zarr, tmp_path / "in.zarr", data)
    os.remove(tmp_path / "in.zarr" / "c" / "2" / "0" / "0")
    inputs = sorted(p for p in (tmp_path / "in.zarr").rglob("*") if p.is_file())
    flags = ["--fill-missing-chunks"] if fill else []
    status, _, err = _run(capsys, "equalize", tmp_path / "in.zarr", tmp_path / "out.npy", *flags,
                          inputs=inputs, folder=tmp_path)
    if not fill:
        assert status == 1 and not (tmp_path / "out.npy").exists()
        _one_line(err, f"cannot read {tmp_path / 'in.zarr'}: its chunk "
                  f"{tmp_path / 'in.zarr' / 'c' / '2' / '0' / '0'} is missing (zarr would read "
                  "it as the fill value 0); give --fill-missing-chunks to accept that")
        return
    assert status == 0, err
    filled = data.copy()
    filled[2] = 0
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), gh.equalize_hist(filled))


def test_a_sharded_zarr_input_missing_a_shard(tmp_path, capsys):
    """One file per shard: a missing shard is named, and so is a chunk missing inside a shard
    (zarr leaves out a chunk equal to the fill value; issue: it was read as zeros, exit 0)."""
    zarr = pytest.importorskip("zarr")
    if not hasattr(zarr, "create_array"):
        pytest.skip("zarr 2 has no shards")
    data = RNG.integers(1, 200, (8, 6, 5), dtype=np.uint8)
    data[5] = 0  # a chunk equal to the fill value: not stored inside its shard
    array = zarr.create_array(str(tmp_path / "in.zarr"), shape=data.shape, dtype=data.dtype,
                              chunks=(1, 6, 5), shards=(4, 6, 5))
    array[...] = data
    status, _, err = _run(capsys, "equalize", tmp_path / "in.zarr", tmp_path / "a.npy",
                          folder=tmp_path)
    assert status == 1 and not (tmp_path / "a.npy").exists()
    _one_line(err, f"its chunk (5, 0, 0) is missing from the shard "
              f"{tmp_path / 'in.zarr' / 'c' / '1' / '0' / '0'} (zarr would read it as the fill "
              "value 0); give --fill-missing-chunks to accept that")
    status, _, err = _run(capsys, "equalize", tmp_path / "in.zarr", tmp_path / "a.npy",
                          "--fill-missing-chunks", folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), gh.equalize_hist(data))
    os.remove(tmp_path / "in.zarr" / "c" / "1" / "0" / "0")
    status, _, err = _run(capsys, "equalize", tmp_path / "in.zarr", tmp_path / "b.npy",
                          folder=tmp_path)
    assert status == 1 and not (tmp_path / "b.npy").exists()
    _one_line(err, f"its chunk {tmp_path / 'in.zarr' / 'c' / '1' / '0' / '0'} is missing")


def test_a_zarr_output_holds_every_chunk_and_reads_back(tmp_path, capsys):
    """Chunks equal to the fill value are written too, so an output is a complete input."""
    zarr = pytest.importorskip("zarr")
    data = np.zeros((3, 6, 5), np.uint8)  # every result chunk equals the fill value 0
    np.save(tmp_path / "in.npy", data)
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "mid.zarr",
                          "--chunk-size", 1, inputs=[tmp_path / "in.npy"], folder=tmp_path)
    assert status == 0, err
    assert sorted(os.listdir(tmp_path / "mid.zarr" / "c")) == ["0", "1", "2"]
    assert zarr.open_array(str(tmp_path / "mid.zarr")).nchunks_initialized == 3
    status, _, err = _run(capsys, "equalize", tmp_path / "mid.zarr", tmp_path / "out.npy",
                          folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"),
                                  gh.equalize_hist(gh.equalize_hist(data)))


def test_a_damaged_zarr_chunk_is_one_line(tmp_path):
    """Issue 21, item 7: asyncio's "Task was destroyed but it is pending" lines followed."""
    zarr = pytest.importorskip("zarr")
    _zarr_array(zarr, tmp_path / "in.zarr", RNG.integers(1, 200, (40, 24, 20), dtype=np.uint8))
    (tmp_path / "in.zarr" / "c" / "5" / "0" / "0").write_bytes(b"garbage")
    run = _cli("equalize", "in.zarr", "out.npy", cwd=tmp_path)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("gpu-histeq: error: "), err
    assert sorted(os.listdir(tmp_path)) == ["in.zarr"]


# ----------------------------------------------------------------------- inputs are never outputs

def _spellings(tmp_path, target):
    """Other names of `target`: relative, with .., a symlink, a hard link."""
    os.symlink(target, tmp_path / "link.npy")
    os.link(target, tmp_path / "hard.npy")
    (tmp_path / "sub").mkdir(exist_ok=True)
    return {"same path": target, "relative": Path(os.path.relpath(target)),
            "dotdot": tmp_path / "sub" / ".." / target.name, "symlink": tmp_path / "link.npy",
            "hard link": tmp_path / "hard.npy"}


@pytest.mark.parametrize("spelling", ["same path", "relative", "dotdot", "symlink", "hard link"])
@pytest.mark.parametrize("role", ["input", "mask", "reference", "second input"])
def test_no_input_is_ever_an_output(tmp_path, capsys, monkeypatch, spelling, role):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "in.npy", STACK)
    np.save(tmp_path / "other.npy", STACK[:3])
    np.save(tmp_path / "mask.npy", RNG.random(STACK.shape[-2:]) > 0.2)
    np.save(tmp_path / "ref.npy", STACK[0, 0])
    target = {"input": "in.npy", "mask": "mask.npy", "reference": "ref.npy",
              "second input": "other.npy"}[role]
    output = _spellings(tmp_path, tmp_path / target)[spelling]
    inputs = [tmp_path / name for name in ("in.npy", "other.npy", "mask.npy", "ref.npy")]
    if role == "mask":
        argv = ["equalize", "in.npy", "--mask", "mask.npy", "-o", output]
    elif role == "reference":
        if not hasattr(gh, "match_histograms"):
            pytest.skip("no gpu_histeq.match_histograms")
        argv = ["match", "in.npy", "--reference", "ref.npy", "-o", output]
    elif role == "second input":
        argv = ["equalize", "in.npy", "other.npy", "-o", output]
    else:
        argv = ["equalize", "in.npy", "-o", output]
    for force in ([], ["--force"]):
        status, out, err = _run(capsys, *argv, *force, inputs=inputs, folder=tmp_path)
        assert status == 1 and out == "", err
        if role == "second input":  # a file where a folder is needed, or an input folder
            assert "not a folder" in err or "refusing" in err, err
            assert err.count("\n") == 1
        else:
            _one_line(err, f"refusing to overwrite the input {target}")


def test_an_output_folder_that_holds_an_input_is_refused(tmp_path, capsys, monkeypatch, pil):
    monkeypatch.chdir(tmp_path)
    pil.fromarray(IMAGES[0]).save(tmp_path / "a.png")
    pil.fromarray(IMAGES[1]).save(tmp_path / "b.png")
    faces = _image_folder(pil, tmp_path / "faces")
    inputs = [tmp_path / "a.png", tmp_path / "b.png", *faces]
    for argv in (["equalize", "a.png", "b.png", "-o", "."],
                 ["equalize", "a.png", "b.png", "-o", tmp_path],
                 ["equalize", "faces", "faces", "--force"],
                 ["equalize", "faces", "-o", "./faces/../faces/", "--force"],
                 ["equalize", "faces/img0.png", tmp_path / "faces", "--force"]):
        status, _, err = _run(capsys, *argv, inputs=inputs, folder=tmp_path)
        assert status == 1
        assert err.count("\n") == 1, err
        assert "refusing to write the folder" in err or "refusing to overwrite the input" in err
    # a hard link of an input inside the output folder is not replaced either
    (tmp_path / "out").mkdir()
    os.link(tmp_path / "a.png", tmp_path / "out" / "a.png")
    status, _, err = _run(capsys, "equalize", "a.png", "b.png", "-o", "out", "--force",
                          inputs=inputs, folder=tmp_path)
    assert status == 1
    _one_line(err, f"refusing to overwrite the input {Path('a.png')}")
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png"]


@pytest.mark.parametrize("output", ["in.zarr/x.npy", "in.zarr/c/x.npy", "in.zarr/sub/x.zarr",
                                    "faces/out.npy", "faces/eq/"])
def test_an_output_inside_an_input_folder_is_refused(tmp_path, capsys, monkeypatch, pil,
                                                     output):
    """Issue 21, item 2: ``equalize in.zarr in.zarr/x.npy`` wrote into the input store."""
    zarr = pytest.importorskip("zarr")
    monkeypatch.chdir(tmp_path)
    _zarr_array(zarr, tmp_path / "in.zarr", STACK[:, 0])
    (tmp_path / "in.zarr" / "sub").mkdir()
    faces = _image_folder(pil, tmp_path / "faces")
    (tmp_path / "faces" / "eq").mkdir()
    source = output.split("/")[0]
    inputs = sorted(p for p in (tmp_path / source).rglob("*") if p.is_file())
    before = sorted((tmp_path / source).rglob("*"))
    for force in ([], ["--force"]):
        status, out, err = _run(capsys, "equalize", source, output, *force, inputs=inputs,
                                folder=tmp_path)
        assert status == 1 and out == ""
        _one_line(err, f"refusing to write {Path(output)} inside the input folder "
                  f"{Path(source)}: choose an output outside it")
    assert sorted((tmp_path / source).rglob("*")) == before and len(faces) == 4


# ------------------------------------------------------------------------- concurrent writers

@pytest.mark.parametrize("output", ["out.npy", "out.tif", "out.zarr", "outdir/"])
def test_concurrent_writers_one_wins(tmp_path, output):
    if output.endswith(".tif"):
        pytest.importorskip("tifffile")
    if output.endswith(".zarr"):
        pytest.importorskip("zarr")
    if output.endswith("/"):
        pytest.importorskip("PIL.Image")
    np.save(tmp_path / "in.npy", STACK)
    before = (tmp_path / "in.npy").read_bytes()
    runs = [_cli("equalize", "in.npy", output, "--chunk-size", 1, cwd=tmp_path) for _ in range(6)]
    results = [(run.wait(timeout=120), run.communicate()) for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0] + [1] * 5, results
    for code, (out, err) in results:
        if code == 1:
            assert err.count("\n") == 1 and "exists" in err or "not empty" in err, err
    assert (tmp_path / "in.npy").read_bytes() == before and _leftovers(tmp_path) == []


@pytest.mark.parametrize("output", ["out.npy", "out.zarr", "outdir/"])
def test_concurrent_writers_with_force_leave_one_complete_output(tmp_path, output):
    if output.endswith(".zarr"):
        zarr = pytest.importorskip("zarr")
    if output.endswith("/"):
        pil = pytest.importorskip("PIL.Image")
    np.save(tmp_path / "in.npy", STACK[:, 0])
    runs = [_cli("equalize", "in.npy", output, "--force", cwd=tmp_path) for _ in range(6)]
    results = [(run.wait(timeout=120), run.communicate()) for run in runs]
    assert [code for code, _ in results] == [0] * 6, results
    expected = gh.equalize_hist(STACK[:, 0])
    if output.endswith(".npy"):
        np.testing.assert_array_equal(np.load(tmp_path / output), expected)
    elif output.endswith(".zarr"):
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / output))[...], expected)
    assert _leftovers(tmp_path) == []
    if output.endswith("/"):
        assert sorted(os.listdir(tmp_path / "outdir")) == ["in.npy"]
        np.testing.assert_array_equal(np.load(tmp_path / "outdir" / "in.npy"), expected)
        del pil


# ---------------------------------------------------------------- read and write errors

def _tmpfs(path, size="64k"):
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    return path


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs, unmounted afterwards."""
    mounted = _tmpfs(tmp_path / "small")
    yield mounted
    subprocess.run(["umount", "-l", str(mounted)], check=False)


@pytest.mark.parametrize("suffix", [".npy", ".tif", ".zarr", ".npz", "/"])
def test_full_disk_is_a_clean_error(tmp_path, capsys, full_disk, suffix):
    """A real full file system (tmpfs): no SIGBUS, one line, nothing left on it."""
    for module in {".tif": "tifffile", ".zarr": "zarr", "/": "PIL.Image"}.get(suffix, "numpy"),:
        pytest.importorskip(module)
    images = RNG.integers(0, 256, (40, 64, 64), dtype=np.uint8)  # 160 KiB: does not fit
    np.save(tmp_path / "in.npy", images)
    output = full_disk / ("out" + suffix if suffix != "/" else "out/")
    if suffix == "/":
        (tmp_path / "pngs").mkdir()
        pil = pytest.importorskip("PIL.Image")
        for i, image in enumerate(RNG.integers(0, 256, (40, 64, 64), dtype=np.uint8)):
            pil.fromarray(image).save(tmp_path / "pngs" / f"{i}.png")
        source = tmp_path / "pngs"
    else:
        source = tmp_path / "in.npy"
    inputs = [tmp_path / "in.npy"] + sorted((tmp_path / "pngs").glob("*.png")) \
        if suffix == "/" else [tmp_path / "in.npy"]
    status, out, err = _run(capsys, "equalize", source, output, "--chunk-size", 4,
                            inputs=inputs, folder=tmp_path)
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "No space left on device" in err, err
    assert os.listdir(full_disk) == []


@pytest.mark.parametrize("where", ["npy", "tif"])
def test_injected_write_failure_cleans_up(tmp_path, capsys, monkeypatch, where):
    """The same with the failure injected (where no tmpfs can be mounted)."""
    if where == "tif":
        pytest.importorskip("tifffile")
    from gpu_histeq.cli import writers

    np.save(tmp_path / "in.npy", STACK)
    calls = []

    def failing(*args):
        calls.append(args)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if where == "npy":
        monkeypatch.setattr(writers.NpySink, "write", lambda self, *a: failing())
    else:
        monkeypatch.setattr(writers.os, "pwrite", failing)
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / f"out.{where}",
                          "--chunk-size", 2, inputs=[tmp_path / "in.npy"], folder=tmp_path)
    assert calls and status == 1
    _one_line(err, f"cannot write {tmp_path / f'out.{where}'}: No space left on device")
    assert sorted(os.listdir(tmp_path)) == ["in.npy"]


def test_damaged_compressed_tiff_is_an_error(tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "stack.tif", STACK[:, 0], compression="zlib")
    data = (tmp_path / "stack.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) * 2 // 3])
    status, out, err = _run(capsys, "equalize", tmp_path / "cut.tif", tmp_path / "out.tif",
                            inputs=[tmp_path / "cut.tif"], folder=tmp_path)
    assert status == 1 and out == ""
    _one_line(err, f"cannot read {tmp_path / 'cut.tif'}")
    assert not (tmp_path / "out.tif").exists()


def test_input_truncated_while_read_is_a_clean_error(tmp_path):
    """The .npy shrinks mid-run: one line and exit 1 (a mapped read would die of SIGBUS)."""
    images = RNG.integers(0, 256, (20000, 16, 16), dtype=np.uint8)
    np.save(tmp_path / "in.npy", images)
    run = _cli("equalize", "in.npy", "out.npy", "--chunk-size", 1, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not [n for n in os.listdir(tmp_path) if ".tmp-" in n] and run.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.truncate(tmp_path / "in.npy", 4096)
    code = run.wait(timeout=120)
    out, err = run.communicate()
    assert code == 1, (code, err)
    assert err.count("\n") == 1 and "cannot read in.npy: the file ended at byte" in err, err
    assert sorted(os.listdir(tmp_path)) == ["in.npy"]
