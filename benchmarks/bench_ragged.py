"""Ragged-batch benchmark: a list of images of mixed sizes in one call, against the loops users
run today and against the same images resized to one size.

Implementations, on the same images in one process, round-robin (each repeat times every
implementation once, so load drift hits all alike), after a warm-up; the table reports the median
and the range over repeats:

* ``list``: ``gpu_histeq.equalize_hist(images)`` with ``images`` a list (the ragged path, when
  the extension is built: uint8 planes read and written where they lie, float32 planes packed
  into one buffer for the compiled kernels' per-plane offsets);
* ``list, portable path``: the same inside ``_engine.portable()`` (the packed bincount path that
  CuPy lists take);
* ``loop``: ``[gpu_histeq.equalize_hist(image) for image in images]``;
* ``cv2 loop`` (uint8): ``[cv2.equalizeHist(image) for image in images]``;
* ``skimage loop`` (float32): ``[skimage.exposure.equalize_hist(image) for image in images]``;
* ``resized array``: the images resized to one size beforehand (not timed; ``cv2.resize``,
  the mean area's square) and stacked, then ``gpu_histeq.equalize_hist(stack)``: what a user
  gives up exactness for today. ``resize + array`` times the resize too.

The list result is checked equal, image for image, to the loop's before anything is timed. A
second table times the other per-plane functions (histogram, cumulative_distribution,
match_histograms against the first image, apply_lut for uint8) as a list and as a loop.
Writes ``benchmarks/results/<name>.md`` (``ragged`` unless ``--name``: one current file, its history in git) with the command.

Usage: python benchmarks/bench_ragged.py [--images 500] [--min-size 64] [--max-size 256]
       [--repeats 7] [--cases u8,f32] [--name NAME] [--out benchmarks/results]
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import gpu_histeq
from gpu_histeq import _cpu, _engine, _planes


def mixed_images(count, low, high, dtype, seed=0):
    """`count` images of random sizes ``low..high`` per axis: photo crops, contrast squeezed."""
    from skimage import data
    sources = [data.camera(), data.moon(), data.coins(), data.page(), data.brick(),
               data.grass(), data.gravel(), data.astronaut()[..., 1], data.chelsea()[..., 0]]
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        height, width = (int(v) for v in rng.integers(low, high + 1, 2))
        source = sources[i % len(sources)]
        short = [(0, max(0, high - n)) for n in source.shape]  # page is 191 rows high
        source = np.pad(source, short, mode="symmetric")
        y = rng.integers(0, source.shape[0] - height + 1)
        x = rng.integers(0, source.shape[1] - width + 1)
        tile = source[y:y + height, x:x + width].astype(np.float64)
        squeezed = rng.uniform(20, 120) + tile * rng.uniform(0.2, 0.5)
        image = np.clip(squeezed, 0, 255).astype(np.uint8)
        images.append(image if dtype == np.uint8 else (image / 255).astype(dtype))
    return images


def resized(images, side):
    import cv2
    return np.stack([cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
                     for image in images])


def implementations(images, side):
    dtype = images[0].dtype
    stack = resized(images, side)
    def portable_list():
        with _engine.portable():
            return gpu_histeq.equalize_hist(images)

    cases = {
        "list": lambda: gpu_histeq.equalize_hist(images),
        "list, portable path": portable_list,
        "loop": lambda: [gpu_histeq.equalize_hist(image) for image in images],
    }
    if dtype == np.uint8:
        import cv2
        cases["cv2 loop"] = lambda: [cv2.equalizeHist(image) for image in images]
    else:
        from skimage import exposure
        cases["skimage loop"] = lambda: [exposure.equalize_hist(image) for image in images]
    cases["resized array"] = lambda: gpu_histeq.equalize_hist(stack)
    cases["resize + array"] = lambda: gpu_histeq.equalize_hist(resized(images, side))
    return cases


def check(images):
    listed = gpu_histeq.equalize_hist(images)
    with _engine.portable():
        portable = gpu_histeq.equalize_hist(images)
    for result, other, image in zip(listed, portable, images):
        if not np.array_equal(result, other):
            raise SystemExit("the portable list result differs from the compiled one")
        expected = gpu_histeq.equalize_hist(image)
        if result.dtype != expected.dtype or not np.array_equal(result, expected):
            raise SystemExit("the list result differs from the per-image loop")
    if images[0].dtype == np.uint8:
        import cv2
        for result, image in zip(listed, images):
            if not np.array_equal(result, cv2.equalizeHist(image)):
                raise SystemExit("the list result differs from cv2.equalizeHist")


def run(images, repeats, side):
    cases = implementations(images, side)
    for fn in cases.values():  # warm-up
        fn()
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def other_functions(images, repeats):
    """List call against the per-image loop for the other per-plane functions (checked equal
    first): ``{name: (list seconds, loop seconds)}``, medians over `repeats` round-robin runs."""
    reference = images[0]
    calls = {"histogram": (gpu_histeq.histogram, ()),
             "cumulative_distribution": (gpu_histeq.cumulative_distribution, ()),
             "match_histograms (one reference)": (gpu_histeq.match_histograms, (reference,))}
    if images[0].dtype == np.uint8:
        table = np.arange(256, dtype=np.uint8)[::-1].copy()
        calls["apply_lut (one table)"] = (gpu_histeq.apply_lut, (table,))
    medians = {}
    for name, (fn, args) in calls.items():
        listed = fn(images, *args)
        for result, image in zip(listed, images):
            expected = fn(image, *args)
            parts = zip(result, expected) if isinstance(expected, tuple) else [(result, expected)]
            if not all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in parts):
                raise SystemExit(f"{name}: the list result differs from the per-image loop")
        pair = [[], []]
        for _ in range(repeats):
            for k, run_once in enumerate((lambda: fn(images, *args),
                                          lambda: [fn(image, *args) for image in images])):
                start = time.perf_counter()
                run_once()
                pair[k].append(time.perf_counter() - start)
        medians[name] = tuple(statistics.median(t) for t in pair)
    return medians


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--min-size", type=int, default=64)
    parser.add_argument("--max-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cases", default="u8,f32")
    parser.add_argument("--name", default="ragged")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()

    lines = [f"# Ragged batches: {args.images} images of random sizes "
             f"{args.min_size}..{args.max_size} per axis", "",
             "Command: `python benchmarks/bench_ragged.py " + " ".join(sys.argv[1:]) + "`", "",
             f"Machine: {platform.processor() or platform.machine()}, "
             f"{_planes.thread_count()} threads for gpu_histeq, {os.cpu_count()} CPUs visible "
             "(shared with other work: absolute times vary, the round-robin ratios less); "
             f"numpy {np.__version__}, compiled extension built: {_cpu.BUILT}. CPU only: no GPU "
             "was used or timed.", "",
             "`list` is the ragged call (the compiled kernels: uint8 planes read and written "
             "where they lie, float32 planes packed with per-plane offsets); `list, portable "
             "path` the packed bincount path, run here on NumPy (on "
             "CuPy, where the CUDA kernels decline); `resized "
             "array` equalizes other images (resized beforehand, resize not timed) and is shown "
             "for what a one-array call costs; `resize + array` includes the resize.", ""]
    for case in args.cases.split(","):
        dtype = {"u8": np.uint8, "f32": np.float32}[case]
        images = mixed_images(args.images, args.min_size, args.max_size, dtype)
        pixels = sum(image.size for image in images)
        side = int(round(np.sqrt(pixels / len(images))))
        check(images)
        times = run(images, args.repeats, side)
        base = statistics.median(times["list"])
        lines += [f"## {np.dtype(dtype).name}: {pixels / 1e6:.2f} Mpixels "
                  f"(resized array: {len(images)} x {side} x {side})", "",
                  "| implementation | median ms | min-max ms | ns/pixel | time / list |",
                  "|---|---:|---:|---:|---:|"]
        for name, values in times.items():
            median = statistics.median(values)
            lines.append(f"| {name} | {median * 1e3:.1f} | {min(values) * 1e3:.1f}-"
                         f"{max(values) * 1e3:.1f} | {median / pixels * 1e9:.2f} | "
                         f"{median / base:.2f} |")
        lines += ["", "List results (both paths) checked equal to the per-image loop"
                  + (" and to cv2.equalizeHist" if dtype == np.uint8 else "")
                  + " on every image before timing.", ""]
        others = other_functions(images, args.repeats)
        lines += ["The other per-plane functions, list against the per-image loop (results "
                  "checked equal first):", "",
                  "| function | list ms | loop ms | list ns/pixel | loop / list |",
                  "|---|---:|---:|---:|---:|"]
        for name, (listed, looped) in others.items():
            lines.append(f"| {name} | {listed * 1e3:.1f} | {looped * 1e3:.1f} | "
                         f"{listed / pixels * 1e9:.2f} | {looped / listed:.2f} |")
        lines.append("")
        print("\n".join(lines[-(len(times) + len(others) + 10):]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / (args.name + '.md')}")


if __name__ == "__main__":
    main()
