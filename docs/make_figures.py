"""Make the README's before/after picture from real scikit-image images.

Run from the repository root (needs scikit-image for the images, matplotlib to draw)::

    python docs/make_figures.py

It writes ``docs/before_after.png``: scikit-image's ``moon`` (a low-contrast photograph) and
``camera``, then each operation of gpu_histeq on them, every row with the histogram of its
images and their cumulative distribution (orange; the original's in gray; the matching
reference's dotted). ``gpu-histeq`` draws
the same figure for its built-in synthetic sample.
"""

from pathlib import Path

from gpu_histeq import _sample
from gpu_histeq.cli import demo_results
from gpu_histeq.figure import before_after


def main():
    images = _sample.load("skimage")  # moon and camera, (2, 512, 512) uint8
    target = Path(__file__).resolve().parent / "before_after.png"
    results, references = demo_results(images)
    before_after(target, images, results, columns=2, tile=300, references=references)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
