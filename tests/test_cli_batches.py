"""The CLI over image files of mixed sizes: one library call per chunk, per-image results.

A folder written as images and PNG inputs go through :mod:`gpu_histeq.cli.batches`: the
results must equal the per-image library calls (and cv2.equalizeHist for uint8) bit for bit,
and the library must be called once per chunk and dtype, not once per image.
"""

import os

import numpy as np
import pytest

import gpu_histeq as gh
from gpu_histeq.cli import batches, commands
from cli_support import leftovers as _leftovers, run_cli as _run

pil = pytest.importorskip("PIL.Image")

RNG = np.random.default_rng(15)
SIZES = [(int(h), int(w)) for h, w in RNG.integers(9, 70, (12, 2))]
GRAYS = [RNG.integers(20 + i, 180 + 5 * i, size, dtype=np.uint8) for i, size in enumerate(SIZES)]


def _folder(path, images, suffix=".png"):
    path.mkdir()
    for i, image in enumerate(images):
        pil.fromarray(image).save(path / f"img{i:02d}{suffix}")
    return sorted(path.iterdir())


def _read(path):
    with pil.open(path) as image:
        return np.asarray(image)


def _counting(monkeypatch, module, name):
    """Replace ``module.name`` by a wrapper recording the number of images of each call."""
    calls, function = [], getattr(module, name)

    def counted(images, *args, **kwargs):
        calls.append(len(images) if isinstance(images, list) else None)
        return function(images, *args, **kwargs)
    monkeypatch.setattr(module, name, counted)
    return calls


def test_folder_of_mixed_sizes_equals_per_image_in_one_call(tmp_path, capsys, monkeypatch):
    cv2 = pytest.importorskip("cv2")
    files = _folder(tmp_path / "in", GRAYS)
    calls = _counting(monkeypatch, commands, "equalize_hist")
    status, out, err = _run(capsys, "equalize", tmp_path / "in", "-o", f"{tmp_path / 'out'}/")
    assert status == 0, err
    assert calls == [len(GRAYS)]  # one list call for the whole folder (far below 2**24 values)
    assert f"{len(GRAYS)} images of {len(set(SIZES))} sizes, uint8" in out
    assert sorted(os.listdir(tmp_path / "out")) == [p.name for p in files]
    for path, image in zip(files, GRAYS):
        result = _read(tmp_path / "out" / path.name)
        np.testing.assert_array_equal(result, cv2.equalizeHist(image))
        np.testing.assert_array_equal(result, gh.equalize_hist(image))
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("options, expected_calls", [
    (["--chunk-size", 5], [5, 5, 2]),
    (["--chunk-size", 1], [None] * 12),  # a chunk of one: the single-array call
])
def test_calls_per_chunk_of_files(tmp_path, capsys, monkeypatch, options, expected_calls):
    _folder(tmp_path / "in", GRAYS)
    calls = _counting(monkeypatch, commands, "equalize_hist")
    status, _, err = _run(capsys, "equalize", tmp_path / "in", "-o", f"{tmp_path / 'out'}/",
                          "--method", "pil", *options)
    assert status == 0, err
    assert calls == expected_calls
    for i, image in enumerate(GRAYS):
        np.testing.assert_array_equal(_read(tmp_path / "out" / f"img{i:02d}.png"),
                                      gh.equalize_hist(image, method="pil"))


def test_chunks_by_pixel_count(tmp_path, capsys, monkeypatch):
    """Without --chunk-size a chunk closes once it holds BATCH_PIXELS values."""
    _folder(tmp_path / "in", GRAYS)
    monkeypatch.setattr(batches, "BATCH_PIXELS", 5000)
    expected, values, count = [], 0, 0
    for image in GRAYS:
        values, count = values + image.size, count + 1
        if values >= 5000:
            expected.append(count)
            values, count = 0, 0
    expected += [count] if count else []
    expected = [None if count == 1 else count for count in expected]  # one image: no list
    assert len(expected) > 2 and any(expected)
    calls = _counting(monkeypatch, commands, "equalize_hist")
    status, _, err = _run(capsys, "equalize", tmp_path / "in", "-o", f"{tmp_path / 'out'}/")
    assert status == 0, err
    assert calls == expected
    for i, image in enumerate(GRAYS):
        np.testing.assert_array_equal(_read(tmp_path / "out" / f"img{i:02d}.png"),
                                      gh.equalize_hist(image))


def test_mixed_dtypes_one_call_per_dtype(tmp_path, capsys, monkeypatch):
    wide = [(image.astype(np.uint16) * 37 + 1000) for image in GRAYS[:5]]
    images = GRAYS[:4] + wide + GRAYS[4:7]
    files = _folder(tmp_path / "in", images)
    calls = _counting(monkeypatch, commands, "equalize_hist")
    status, _, err = _run(capsys, "equalize", tmp_path / "in", "-o", f"{tmp_path / 'out'}/")
    assert status == 0, err
    assert sorted(calls) == [5, 7]
    for path, image in zip(files, images):
        result = _read(tmp_path / "out" / path.name)
        assert result.dtype == image.dtype
        np.testing.assert_array_equal(result, gh.equalize_hist(image))


def test_several_png_inputs_in_one_call(tmp_path, capsys, monkeypatch):
    inputs = []
    for i, image in enumerate(GRAYS[:6]):
        inputs.append(tmp_path / f"p{i}.png")
        pil.fromarray(image).save(inputs[-1])
    calls = _counting(monkeypatch, commands, "equalize_hist")
    status, out, err = _run(capsys, "equalize", *inputs, "--out-dir", tmp_path)
    assert status == 0, err
    assert calls == [6] and out.count("\n") == 6
    for i, image in enumerate(GRAYS[:6]):
        np.testing.assert_array_equal(_read(tmp_path / f"p{i}_equalize.png"),
                                      gh.equalize_hist(image))
    assert _leftovers(tmp_path) == []


def test_mask_for_each_image(tmp_path, capsys, monkeypatch):
    size = (23, 31)
    images = [RNG.integers(0, 256, size, dtype=np.uint8) for _ in range(4)]
    mask = RNG.random(size) < 0.4
    np.save(tmp_path / "mask.npy", mask)
    inputs = []
    for i, image in enumerate(images):
        inputs.append(tmp_path / f"m{i}.png")
        pil.fromarray(image).save(inputs[-1])
    calls = _counting(monkeypatch, commands, "equalize_hist")
    status, _, err = _run(capsys, "equalize", *inputs, "-o", f"{tmp_path / 'out'}/", "--mask",
                          tmp_path / "mask.npy")
    assert status == 0, err
    assert calls == [4]
    for i, image in enumerate(images):
        np.testing.assert_array_equal(_read(tmp_path / "out" / f"m{i}.png"),
                                      gh.equalize_hist(image, mask=mask))


def test_luminance_of_mixed_colour_images(tmp_path, capsys, monkeypatch):
    images = [RNG.integers(10, 200, size + (3,), dtype=np.uint8) for size in SIZES[:5]]
    files = _folder(tmp_path / "in", images)
    calls = _counting(monkeypatch, commands, "equalize_hist")
    status, _, err = _run(capsys, "equalize", tmp_path / "in", "-o", f"{tmp_path / 'out'}/",
                          "--luminance")
    assert status == 0, err
    assert calls == [5]
    for path, image in zip(files, images):
        np.testing.assert_array_equal(_read(tmp_path / "out" / path.name), gh.equalize_hist(
            image, axes=(0, 1), channel_axis=2, luminance=True))


def test_match_mixed_sizes_in_one_call(tmp_path, capsys, monkeypatch):
    if "match" not in commands.operations():
        pytest.skip("no gpu_histeq.match_histograms")
    files = _folder(tmp_path / "in", GRAYS[:7])
    reference = RNG.integers(0, 120, (40, 33), dtype=np.uint8)
    pil.fromarray(reference).save(tmp_path / "ref.png")
    calls = _counting(monkeypatch, gh, "match_histograms")
    status, _, err = _run(capsys, "match", tmp_path / "in", "-o", f"{tmp_path / 'out'}/",
                          "--reference", tmp_path / "ref.png")
    assert status == 0, err
    assert calls == [7]
    for path, image in zip(files, GRAYS[:7]):
        expected = np.clip(np.rint(gh.match_histograms(image, reference)), 0, 255)
        np.testing.assert_array_equal(_read(tmp_path / "out" / path.name),
                                      expected.astype(np.uint8))


def test_clahe_mixed_sizes_one_call_per_image(tmp_path, capsys, monkeypatch):
    """clahe refuses lists: the CLI calls it once per image (documented)."""
    if "clahe" not in commands.operations():
        pytest.skip("no gpu_histeq.clahe")
    images = [RNG.integers(0, 256, (64 + 8 * i, 48 + 16 * i), dtype=np.uint8) for i in range(3)]
    files = _folder(tmp_path / "in", images)
    calls = _counting(monkeypatch, gh, "clahe")
    status, _, err = _run(capsys, "clahe", tmp_path / "in", "-o", f"{tmp_path / 'out'}/",
                          "--tile-grid", "4x4", "--clip-limit", 2)
    assert status == 0, err
    assert calls == [None] * 3
    for path, image in zip(files, images):
        np.testing.assert_array_equal(_read(tmp_path / "out" / path.name),
                                      gh.clahe(image, 2.0, (4, 4)))


def test_mixed_sizes_into_one_array_fail_cleanly(tmp_path, capsys):
    _folder(tmp_path / "in", GRAYS[:3])
    status, out, err = _run(capsys, "equalize", tmp_path / "in", "-o", tmp_path / "out.npy")
    assert status == 1 and out == "" and err.count("\n") == 1
    assert "one array output needs images of one size" in err and "-o out/" in err
    assert not (tmp_path / "out.npy").exists() and _leftovers(tmp_path) == []


def test_a_bad_file_mid_batch_leaves_nothing(tmp_path, capsys, monkeypatch):
    files = _folder(tmp_path / "in", GRAYS)
    files[7].write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    monkeypatch.setattr(batches, "BATCH_PIXELS", 3000)  # earlier chunks are written first
    status, out, err = _run(capsys, "equalize", tmp_path / "in", "-o", f"{tmp_path / 'out'}/")
    assert status == 1 and out == "" and err.count("\n") == 1
    assert f"cannot read {files[7]}" in err
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_force_into_a_folder_replaces_only_this_runs_files(tmp_path, capsys):
    files = _folder(tmp_path / "in", GRAYS[:4])
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    (out / files[0].name).write_bytes(b"old")
    status, _, err = _run(capsys, "equalize", tmp_path / "in", "-o", out)
    assert status == 1 and "is not empty: use --force" in err
    assert (out / files[0].name).read_bytes() == b"old"
    status, _, err = _run(capsys, "equalize", tmp_path / "in", "-o", out, "--force")
    assert status == 0, err
    assert (out / "notes.txt").read_text() == "keep"
    for path, image in zip(files, GRAYS[:4]):
        np.testing.assert_array_equal(_read(out / path.name), gh.equalize_hist(image))
        np.testing.assert_array_equal(_read(path), image)  # inputs untouched
    assert _leftovers(tmp_path) == []


def test_grey_and_colour_images_in_one_folder(tmp_path, capsys, monkeypatch):
    """Per image and channel (the folder's default axes): a grey and an RGB image share a list."""
    images = [RNG.integers(10, 200, SIZES[1] + (3,), dtype=np.uint8), GRAYS[0], GRAYS[2]]
    files = _folder(tmp_path / "in", images)
    calls = _counting(monkeypatch, commands, "equalize_hist")
    status, _, err = _run(capsys, "equalize", tmp_path / "in", "-o", f"{tmp_path / 'out'}/")
    assert status == 0, err
    assert calls == [3]
    for path, image in zip(files, images):
        np.testing.assert_array_equal(_read(tmp_path / "out" / path.name),
                                      gh.equalize_hist(image, axes=(0, 1)))
    # --luminance (the RGB axis from the first image) fails on the first grey image, naming
    # its file, and leaves nothing
    status, out, err = _run(capsys, "equalize", tmp_path / "in", "-o", f"{tmp_path / 'lum'}/",
                            "--luminance")
    assert status == 1 and out == "" and err.count("\n") == 1
    assert err.startswith(f"gpu-histeq: error: {files[1]}: ")
    assert not (tmp_path / "lum").exists() and _leftovers(tmp_path) == []


def test_match_one_reference_per_image(tmp_path, capsys, monkeypatch):
    """A reference stack shaped like the folder gives each image its own reference, as a list."""
    if "match" not in commands.operations():
        pytest.skip("no gpu_histeq.match_histograms")
    images = [RNG.integers(40, 90, (21, 17), dtype=np.uint8) for _ in range(4)]
    references = np.stack([RNG.integers(10 * k, 60 + 50 * k, (21, 17), dtype=np.uint8)
                           for k in range(4)])
    files = _folder(tmp_path / "in", images)
    np.save(tmp_path / "refs.npy", references)
    calls = _counting(monkeypatch, gh, "match_histograms")
    status, _, err = _run(capsys, "match", tmp_path / "in", "-o", f"{tmp_path / 'out'}/",
                          "--reference", tmp_path / "refs.npy", "--chunk-size", 3)
    assert status == 0, err
    assert calls == [3, None]
    for k, (path, image) in enumerate(zip(files, images)):
        expected = np.clip(np.rint(gh.match_histograms(image, references[k])), 0, 255)
        result = _read(tmp_path / "out" / path.name)
        np.testing.assert_array_equal(result, expected.astype(np.uint8))
        if k:  # each image took its own reference, not the first
            assert not np.array_equal(result, np.clip(np.rint(
                gh.match_histograms(image, references[0])), 0, 255).astype(np.uint8))
