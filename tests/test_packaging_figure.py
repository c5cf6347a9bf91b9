"""The demo figure (``gpu_histeq.figure``): drawn with matplotlib, every panel labelled."""

import sys

import numpy as np
import pytest

from gpu_histeq import clahe, equalize_hist
from gpu_histeq._sample import synthetic

pytest.importorskip("matplotlib", reason="the figure needs matplotlib (the `plot` extra)")
from gpu_histeq.figure import before_after, figure, to_display  # noqa: E402

STACK = synthetic(6, 40)


def _panels(fig):
    """(image axes, histogram axes) of each row."""
    rows = []
    for row in fig.subfigs:
        axes = [ax for ax in row.axes if ax.get_images() or ax.get_ylabel() == "pixels (%)"]
        rows.append(([ax for ax in axes if ax.get_images()],
                     [ax for ax in axes if ax.get_ylabel() == "pixels (%)"]))
    return rows


def test_rows_titles_images_and_labelled_histograms():
    results = {"equalize_hist": equalize_hist(STACK), "clahe": clahe(STACK)}
    fig = figure(STACK, results, columns=3, tile=80)
    assert [row.get_suptitle() for row in fig.subfigs] == [
        "original (6, 40, 40) uint8", "equalize_hist", "clahe"]
    for (images, [histogram]), shown in zip(_panels(fig), [STACK, *results.values()]):
        assert len(images) == 3
        np.testing.assert_array_equal(images[0].get_images()[0].get_array(), shown[0])
        assert histogram.get_xlabel() == "level (uint8 display value)"
        assert list(histogram.get_xticks()) == [0, 64, 128, 192, 255]
        assert histogram.get_legend() is not None
    labels = [text.get_text() for text in _panels(fig)[1][1][0].get_legend().get_texts()]
    assert labels == ["original: histogram", "histogram", "original: CDF", "CDF"]
    first = [text.get_text() for text in _panels(fig)[0][1][0].get_legend().get_texts()]
    assert first == ["histogram", "CDF"]


def test_histogram_bars_are_the_percent_of_pixels_at_each_level():
    fig = figure(STACK, {"equalize_hist": equalize_hist(STACK)}, columns=2, tile=80)
    [histogram] = _panels(fig)[1][1]
    bars = [patch for patch in histogram.patches if patch.get_label() == "histogram"]
    assert len(bars) == 1
    counts = np.bincount(equalize_hist(STACK)[:2].ravel(), minlength=256)
    heights = bars[0].get_data().values
    np.testing.assert_allclose(heights, counts / counts.sum() * 100)


def test_png_written_whatever_the_suffix(tmp_path):
    path = tmp_path / ".before_after.png.tmp-123"  # the CLI writes a temporary name first
    before_after(path, STACK, {"equalize_hist": equalize_hist(STACK)}, columns=2, tile=60)
    from matplotlib.image import imread

    with path.open("rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
        file.seek(0)
        pixels = imread(file, format="png")
    assert pixels.ndim == 3 and pixels.shape[0] > 2 * 60 and pixels.shape[1] > 3 * 60


def test_float_results_are_shown_on_the_uint8_scale():
    results = {"skimage": equalize_hist(STACK, method="skimage")}  # float64 in [0, 1]
    fig = figure(STACK, results, columns=1, tile=60)
    shown = _panels(fig)[1][0][0].get_images()[0].get_array()
    np.testing.assert_array_equal(shown, to_display(results["skimage"][0]))
    assert shown.dtype == np.uint8 and shown.max() == 255


def test_bad_sizes_and_missing_matplotlib(monkeypatch):
    with pytest.raises(ValueError, match="`columns` and `tile` must be positive, got 0 and 10"):
        figure(STACK, {}, columns=0, tile=10)
    with pytest.raises(ValueError, match=r"each stack must be \(\.\.\., H, W\), got shape \(6,\)"):
        figure(np.zeros(6, np.uint8), {})
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "gpu_histeq\[plot\]"'):
        figure(STACK, {})


def test_a_matching_row_shows_its_reference_and_its_cdf():
    from gpu_histeq import match_histograms

    reference = synthetic(1, 40)[0] // 2 + 100
    results = {"equalize_hist": equalize_hist(STACK), "match": match_histograms(STACK, reference)}
    fig = figure(STACK, results, columns=2, tile=60, references={"match": reference})
    rows = _panels(fig)
    assert [len(images) for images, _ in rows] == [2, 2, 3]  # the reference after the images
    framed = rows[2][0][2]
    assert framed.get_title() == "reference"
    np.testing.assert_array_equal(framed.get_images()[0].get_array(), reference)
    [histogram] = rows[2][1]
    labels = [text.get_text() for text in histogram.get_legend().get_texts()]
    assert labels == ["original: histogram", "histogram", "original: CDF", "reference: CDF", "CDF"]
    [cdf_axes] = [ax for ax in fig.subfigs[2].axes if ax.get_ylabel() == "cumulative fraction"]
    [dotted] = [line for line in cdf_axes.get_lines() if line.get_label() == "reference: CDF"]
    counts = np.bincount(reference.ravel(), minlength=256)
    np.testing.assert_allclose(dotted.get_ydata(), np.cumsum(counts) / counts.sum())
    # the other rows keep an empty slot, so the histograms line up
    assert [len(row.axes) for row in fig.subfigs] == [5, 5, 5]


def test_references_must_name_result_rows():
    with pytest.raises(ValueError, match="`references` names rows that are not in `results`"):
        figure(STACK, {"equalize_hist": equalize_hist(STACK)}, references={"match": STACK[0]})


def test_demo_rows_clahe_at_clip_2_and_the_matching_reference():
    from gpu_histeq import clahe, match_histograms
    from gpu_histeq.cli import demo_results

    results, references = demo_results(STACK)
    titles = list(results)
    assert titles[1] == "clahe (clip_limit=2, tile_grid=(8, 8), as cv2.createCLAHE)"
    np.testing.assert_array_equal(results[titles[1]], clahe(STACK, 2.0, (8, 8)))
    [(title, reference)] = references.items()
    assert title == titles[2] and "reference" in title
    np.testing.assert_array_equal(reference, STACK[-1])
    matched = match_histograms(STACK, STACK[-1])  # float64 levels of the reference
    assert results[title].dtype == np.uint8
    np.testing.assert_array_equal(results[title], np.rint(matched).astype(np.uint8))
    assert np.abs(results[title] - matched).max() <= 0.5
