"""Colour images through ``gpu-histeq``: ``--channel-axis`` alone, ``--luminance``, the axes rule.

Each run's output is compared bit for bit with OpenCV (a per-channel ``cv2.equalizeHist`` /
CLAHE loop, or OpenCV's YCrCb round trip: ``cvtColor(RGB2YCrCb)``, the Y channel equalized,
``cvtColor(YCrCb2RGB)``), on crops of scikit-image's colour photographs; each also checks the
exit status, that the inputs are byte-identical afterwards and that no temporary file is left.
"""

import os
import warnings

import numpy as np
import pytest

import gpu_histeq as gh
from gpu_histeq.cli import commands
from cli_support import leftovers as _leftovers, run_cli as _run

cv2 = pytest.importorskip("cv2")
data = pytest.importorskip("skimage.data")

CAT, ASTRONAUT = data.chelsea(), data.astronaut()  # (300, 451, 3), (512, 512, 3) uint8 RGB
#: (4, 120, 160, 3) uint8: four crops of real photographs, an NHWC stack.
NHWC = np.stack([CAT[:120, :160], CAT[100:220, 200:360], ASTRONAUT[:120, :160],
                 ASTRONAUT[300:420, 250:410]])
#: Mixed sizes, for folders of PNG files.
MIXED = [CAT[:97, :131], ASTRONAUT[40:200, 10:90], CAT[150:, 300:]]


def _snapshot(*paths):
    """``{path: bytes}`` of every file under `paths` (files or folders)."""
    found = {}
    for path in paths:
        if path.is_dir():
            found.update({p: p.read_bytes() for p in sorted(path.iterdir())})
        else:
            found[path] = path.read_bytes()
    return found


def _unchanged(snapshot):
    return all(path.read_bytes() == content for path, content in snapshot.items())


def _per_channel(image, function):
    """OpenCV on each channel of one ``(H, W, C)`` image."""
    return np.stack([function(np.ascontiguousarray(image[..., c]))
                     for c in range(image.shape[-1])], axis=-1)


def _luma(image, function):
    """OpenCV's YCrCb round trip of one RGB image with `function` applied to Y."""
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    ycrcb[..., 0] = function(np.ascontiguousarray(ycrcb[..., 0]))
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)


def _clahe(clip_limit, grid):
    return cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=grid).apply


def _png_folder(path, images):
    pil = pytest.importorskip("PIL.Image")
    path.mkdir()
    for i, image in enumerate(images):
        pil.fromarray(image).save(path / f"photo{i}.png")
    return sorted(path.iterdir())


def _read_png(path):
    pil = pytest.importorskip("PIL.Image")
    with pil.open(path) as image:
        return np.asarray(image)


# ------------------------------------------------------------------------- NHWC arrays

@pytest.mark.parametrize("options, colour", [
    (["--channel-axis", "-1"], _per_channel),
    (["--channel-axis=3"], _per_channel),
    (["--channel-axis", "-1", "--chunk-size", "3"], _per_channel),
    (["--luminance", "--channel-axis", "-1"], _luma),
    (["--luminance"], _luma),  # the RGB axis by the library's rule
    (["--luminance", "--layout", "NHWC", "--chunk-size", "1"], _luma)],
    ids=["per-channel", "per-channel-3", "per-channel-chunks", "luminance", "luminance-rule",
         "luminance-layout-chunks"])
def test_nhwc_equals_the_cv2_loop(tmp_path, capsys, options, colour):
    """NHWC per channel equals the per-channel cv2 loop; with --luminance, OpenCV's YCrCb round
    trip with the equalized Y."""
    np.save(tmp_path / "in.npy", NHWC)
    before = _snapshot(tmp_path / "in.npy")
    status, out, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.npy",
                            *options)
    assert status == 0 and err == "", err
    expected = np.stack([colour(image, cv2.equalizeHist) for image in NHWC])
    result = np.load(tmp_path / "out.npy")
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, expected)
    assert _unchanged(before) and _leftovers(tmp_path) == []


def test_nchw_channel_axis_1(tmp_path, capsys):
    """``--channel-axis 1`` on NCHW: the image axes are the trailing two, H and W."""
    np.save(tmp_path / "in.npy", np.moveaxis(NHWC, 3, 1).copy())
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.npy",
                          "--channel-axis", "1", "--luminance")
    assert status == 0 and err == "", err
    expected = np.stack([_luma(image, cv2.equalizeHist) for image in NHWC])
    np.testing.assert_array_equal(np.moveaxis(np.load(tmp_path / "out.npy"), 1, 3), expected)
    assert _leftovers(tmp_path) == []


def test_clahe_per_channel_and_luminance_equal_opencv(tmp_path, capsys):
    np.save(tmp_path / "in.npy", NHWC)
    before = _snapshot(tmp_path / "in.npy")
    status, _, err = _run(capsys, "clahe", tmp_path / "in.npy", tmp_path / "lum.npy",
                          "--luminance", "--channel-axis", "-1", "--clip-limit", "2",
                          "--tile-grid", "4x6")
    assert status == 0 and err == "", err
    expected = np.stack([_luma(image, _clahe(2.0, (4, 6))) for image in NHWC])
    np.testing.assert_array_equal(np.load(tmp_path / "lum.npy"), expected)
    status, _, err = _run(capsys, "clahe", tmp_path / "in.npy", tmp_path / "rgb.npy",
                          "--channel-axis", "-1")
    assert status == 0 and err == "", err
    expected = np.stack([_per_channel(image, _clahe(40.0, (8, 8))) for image in NHWC])
    np.testing.assert_array_equal(np.load(tmp_path / "rgb.npy"), expected)
    assert _unchanged(before) and _leftovers(tmp_path) == []


def test_match_nhwc_to_one_rgb_image(tmp_path, capsys):
    """``--channel-axis -1``: each channel matched to the reference image's same channel."""
    if "match" not in commands.operations():
        pytest.skip("no gpu_histeq.match_histograms")
    exposure = pytest.importorskip("skimage.exposure")
    reference = ASTRONAUT[200:330, 100:250]
    np.save(tmp_path / "in.npy", NHWC)
    np.save(tmp_path / "ref.npy", reference)
    before = _snapshot(tmp_path / "in.npy", tmp_path / "ref.npy")
    status, _, err = _run(capsys, "match", tmp_path / "in.npy", tmp_path / "out.npy",
                          "--reference", tmp_path / "ref.npy", "--channel-axis", "-1")
    assert status == 0 and err == "", err
    result = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(result, gh.match_histograms(NHWC, reference, channel_axis=-1))
    for image, matched in zip(NHWC, result):
        np.testing.assert_allclose(
            matched, exposure.match_histograms(image, reference, channel_axis=-1), atol=1e-6)
    assert _unchanged(before) and _leftovers(tmp_path) == []


# --------------------------------------------------------------------- folders of PNGs

@pytest.mark.parametrize("options", [["--channel-axis", "-1"], []])
def test_folder_of_rgb_pngs_per_channel(tmp_path, capsys, options):
    """Mixed sizes into a folder: each PNG equals the per-channel cv2 loop; without
    --channel-axis image files keep their own channels (the same result)."""
    files = _png_folder(tmp_path / "in", MIXED)
    before = _snapshot(tmp_path / "in")
    status, out, err = _run(capsys, "equalize", tmp_path / "in", f"{tmp_path / 'out'}/",
                            *options)
    assert status == 0 and err == "", err
    assert sorted(os.listdir(tmp_path / "out")) == [p.name for p in files]
    for path, image in zip(files, MIXED):
        np.testing.assert_array_equal(_read_png(tmp_path / "out" / path.name),
                                      _per_channel(image, cv2.equalizeHist))
    assert _unchanged(before) and _leftovers(tmp_path) == []


def test_folder_of_rgb_pngs_luminance_and_clahe(tmp_path, capsys):
    files = _png_folder(tmp_path / "in", MIXED)
    before = _snapshot(tmp_path / "in")
    status, _, err = _run(capsys, "equalize", tmp_path / "in", f"{tmp_path / 'lum'}/",
                          "--channel-axis", "-1", "--luminance")
    assert status == 0 and err == "", err
    status, _, err = _run(capsys, "clahe", tmp_path / "in", f"{tmp_path / 'clahe'}/",
                          "--luminance", "--tile-grid", "3,5")
    assert status == 0 and err == "", err
    for path, image in zip(files, MIXED):
        np.testing.assert_array_equal(_read_png(tmp_path / "lum" / path.name),
                                      _luma(image, cv2.equalizeHist))
        np.testing.assert_array_equal(_read_png(tmp_path / "clahe" / path.name),
                                      _luma(image, _clahe(40.0, (3, 5))))
    assert _unchanged(before) and _leftovers(tmp_path) == []


def test_match_folder_of_rgb_pngs_to_an_rgb_png(tmp_path, capsys):
    """``--channel-axis -1``: a folder of RGB PNGs matched to one RGB PNG channel by channel,
    written as one array or as PNGs, equal to ``match_histograms(..., channel_axis=-1)`` (which
    keeps the input's dtype, as scikit-image does)."""
    if "match" not in commands.operations():
        pytest.skip("no gpu_histeq.match_histograms")
    files = _png_folder(tmp_path / "in", list(NHWC))
    reference = ASTRONAUT[200:330, 100:250]
    _png_folder(tmp_path / "ref", [reference])
    before = _snapshot(tmp_path / "in", tmp_path / "ref")
    expected = gh.match_histograms(NHWC, reference, channel_axis=-1)
    assert expected.dtype == np.uint8
    status, _, err = _run(capsys, "match", tmp_path / "in", tmp_path / "out.npy",
                          "--reference", tmp_path / "ref" / "photo0.png", "--channel-axis", "-1")
    assert status == 0 and err == "", err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)
    status, _, err = _run(capsys, "match", tmp_path / "in", f"{tmp_path / 'out'}/",
                          "--reference", tmp_path / "ref" / "photo0.png", "--channel-axis", "-1")
    assert status == 0 and err == "", err
    for path, matched in zip(files, expected):
        np.testing.assert_array_equal(_read_png(tmp_path / "out" / path.name), matched)
    assert _unchanged(before) and _leftovers(tmp_path) == []


def test_channel_axis_on_grey_images_fails_in_one_line(tmp_path, capsys):
    files = _png_folder(tmp_path / "in", [CAT[:40, :50, 0], CAT[:30, :20, 1]])
    status, out, err = _run(capsys, "equalize", tmp_path / "in", f"{tmp_path / 'out'}/",
                            "--channel-axis", "-1")
    assert status == 1 and out == "" and err.count("\n") == 1
    assert err.startswith(f"gpu-histeq: error: --channel-axis -1: {files[0]} is a grey image")
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


# --------------------------------------------------- the colour warning, warnings in general

def test_probable_colour_array_warns_in_one_line(tmp_path, capsys):
    """No channel axis on ``(N, H, W, 3)``: the library's planes, one warning line naming the
    options that fix it; ``--axes -2,-1`` keeps the planes quietly, ``-q`` prints nothing."""
    np.save(tmp_path / "in.npy", NHWC)
    before = _snapshot(tmp_path / "in.npy")
    status, out, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.npy")
    assert status == 0 and err.count("\n") == 1
    assert err.startswith(f"gpu-histeq: warning: {tmp_path / 'in.npy'} of shape (4, 120, 160, 3) "
                          "may hold colour images")
    assert "--channel-axis -1" in err and "--axes -2,-1" in err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the library warns the same here
        expected = gh.equalize_hist(NHWC)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)
    np.testing.assert_array_equal(expected, gh.equalize_hist(NHWC, axes=(-2, -1)))
    for options in (["--axes", "-2,-1"], ["-q"]):
        status, out, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "o2.npy",
                                "--force", *options)
        assert status == 0 and err == "", err
        np.testing.assert_array_equal(np.load(tmp_path / "o2.npy"), expected)
    assert _unchanged(before) and _leftovers(tmp_path) == []


@pytest.mark.parametrize("shape, colour", [
    ((4, 120, 160, 3), True), ((120, 160, 4), True), ((4, 120, 160, 5), False),
    ((20, 9, 3), True), ((20, 7, 3), False), ((100, 3), False), ((5, 12, 10), False)])
def test_probable_colour_is_the_library_rule(shape, colour):
    assert commands.probable_colour(shape) is colour
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gh.equalize_hist(np.zeros(shape, np.uint8))
    assert any(issubclass(w.category, UserWarning) for w in caught) is colour


@pytest.mark.filterwarnings("default::UserWarning")
def test_a_library_warning_is_one_line(tmp_path, capsys, monkeypatch):
    """Any warning during a run (here one planted in the library call) prints as one line,
    not Python's file:line and source line."""
    equalize = commands.equalize_hist

    def warning_equalize(*args, **kwargs):
        warnings.warn("something to know\nabout this input", UserWarning)
        return equalize(*args, **kwargs)
    monkeypatch.setattr(commands, "equalize_hist", warning_equalize)
    np.save(tmp_path / "in.npy", NHWC[..., 0])
    status, _, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.npy")
    assert status == 0
    assert err == "gpu-histeq: warning: something to know about this input\n"
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), gh.equalize_hist(NHWC[..., 0]))
    status, out, err = _run(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.npy",
                            "--force", "-q")
    assert status == 0 and out == err == ""
    assert _leftovers(tmp_path) == []


def test_readme_cli_lines_parse():
    """Every ``gpu-histeq`` line of the README's CLI block is accepted by the parser (the
    ``--channel-axis -1`` line included)."""
    import shlex
    from pathlib import Path

    from gpu_histeq.cli.parser import parse

    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.is_file():
        pytest.skip("needs the source tree (README.md)")
    lines = [line.split(" #")[0] for line in readme.read_text(encoding="utf-8").splitlines()
             if line.startswith("gpu-histeq ")]
    assert any("--channel-axis -1" in line for line in lines)
    for line in lines:
        args = parse(shlex.split(line)[1:], commands.operations())
        if "--channel-axis" in line:
            assert args.channel_axis == -1, line
