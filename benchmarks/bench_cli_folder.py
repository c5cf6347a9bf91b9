"""A folder of PNGs of mixed sizes through ``gpu-histeq equalize``: batched vs one call per image.

Writes `--count` deterministic low-contrast uint8 PNGs of random sizes (each side 64..256) and
times, in one process, on the same files:

* ``batched CLI``: ``main(["equalize", IN, "-o", OUT/, "-q"])`` -- the files read in
  chunks of about 2**24 values, one ``equalize_hist(list)`` call per chunk (this change);
* ``CLI, --chunk-size 1``: the same command with one file per chunk, i.e. one library call per
  image through the same reads, writes and temporary-name handling (what the CLI did per image);
* ``per-image loop``: Pillow read, ``gpu_histeq.equalize_hist(image)``, Pillow write, file by
  file into a plain folder (no temporary names, no atomic move): the loop a user would write;
* ``cv2 loop``: the same loop with ``cv2.equalizeHist`` (when OpenCV is installed);

the same images resized to one size with the same total pixel count, through the CLI (into a
folder of PNGs, and into one ``.npy``: a stack per slab, no list); and the compute alone on the
decoded images: ``equalize_hist(list)`` against the per-image loop, and on the resized images
one ``(N, S, S)`` stack against a list of N equal arrays. Every output is checked equal to
``cv2.equalizeHist`` (or the per-image call) first.

Each case is warmed up once, then the cases run in turns for `--repeat` rounds (so a change of
the shared machine's load touches all alike); the median and best are reported, with the load
average. Every run writes into a new output folder (as a first run does; removed after it,
untimed): rewriting an existing folder with ``--force`` renames each file over an old one,
which costs more per file.

Usage::

    python benchmarks/bench_cli_folder.py [--count 300] [--repeat 5] [--dir /tmp]
                                          [--out benchmarks/results/cli-folder.md]
"""

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import gpu_histeq
from gpu_histeq import equalize_hist
from gpu_histeq.cli import main

try:
    import cv2
except ImportError:  # pragma: no cover - optional peer
    cv2 = None
from PIL import Image


def make_folder(folder, count, seed=0):
    """`count` low-contrast uint8 PNGs with sides drawn from 64..256; returns the arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        h, w = (int(v) for v in rng.integers(64, 257, 2))
        low = int(rng.integers(30, 120))
        image = (low + rng.integers(0, 80, (h, w))).astype(np.uint8)
        Image.fromarray(image).save(folder / f"img{i:04d}.png")
        images.append(image)
    return images


def interleaved(cases, repeat):
    """``[(median s, best s)]`` of each ``(label, function, fresh)`` case, timed in turns.

    Each case is warmed up once, then the cases run one after another, `repeat` rounds, so a
    change of the shared machine's load touches every case alike. With `fresh` (a folder),
    ``function(out)`` writes into a new folder under it each run (removed after, untimed), as a
    first run would; otherwise ``function()``.
    """
    def once(function, fresh, run):
        if fresh is None:
            start = time.perf_counter()
            function()
            return time.perf_counter() - start
        fresh.mkdir(exist_ok=True)
        out = fresh / f"run{run}"
        start = time.perf_counter()
        function(out)
        elapsed = time.perf_counter() - start
        shutil.rmtree(out)
        return elapsed

    for _, function, fresh in cases:
        once(function, fresh, "warm")
    times = [[] for _ in cases]
    for run in range(repeat):
        for k, (_, function, fresh) in enumerate(cases):
            times[k].append(once(function, fresh, run))
    return [(statistics.median(t), min(t)) for t in times]


def read_folder(folder):
    out = {}
    for path in sorted(folder.iterdir()):
        with Image.open(path) as image:
            out[path.name] = np.asarray(image)
    return out


def loop(folder, out, equalize):
    """Read, equalize and write each file in turn (the per-image user loop)."""
    out.mkdir(exist_ok=True)
    for path in sorted(folder.iterdir()):
        with Image.open(path) as image:
            array = np.asarray(image)
        Image.fromarray(equalize(array)).save(out / path.name)


def run_cli(*argv):
    status = main([str(a) for a in argv])
    if status != 0:
        raise RuntimeError(f"gpu-histeq {' '.join(map(str, argv))} exited with {status}")


def main_bench(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="bench-cli-folder-", dir=args.dir))
    try:
        folder = scratch / "in"
        images = make_folder(folder, args.count)
        pixels = sum(image.size for image in images)
        load_before = os.getloadavg()

        # -- whole jobs: read, equalize, write ------------------------------------------
        outs = {name: scratch / name for name in ("batched", "chunk1", "loop", "cv2")}
        jobs = [
            ("batched CLI: `gpu-histeq equalize IN -o OUT/ -q`", "batched",
             lambda out: run_cli("equalize", folder, "-o", f"{out}/", "-q")),
            ("CLI with `--chunk-size 1` (one library call per image)", "chunk1",
             lambda out: run_cli("equalize", folder, "-o", f"{out}/", "-q", "--chunk-size", 1)),
            ("per-image loop: Pillow read + `equalize_hist(image)` + Pillow write", "loop",
             lambda out: loop(folder, out, equalize_hist)),
        ]
        if cv2 is not None:
            jobs.append(("per-image loop: Pillow read + `cv2.equalizeHist` + Pillow write",
                         "cv2", lambda out: loop(folder, out, cv2.equalizeHist)))
        for _, name, job in jobs:  # outputs checked before timing
            job(outs[name])
        reference = {name: (cv2.equalizeHist(a) if cv2 is not None else equalize_hist(a))
                     for name, a in read_folder(folder).items()}
        for _, name, _ in jobs:
            written = read_folder(outs[name])
            assert written.keys() == reference.keys(), name
            for key, value in written.items():
                np.testing.assert_array_equal(value, reference[key], err_msg=f"{name} {key}")
            shutil.rmtree(outs[name])
        cases = [(label, job, scratch / f"{name}-runs") for label, name, job in jobs]

        # -- the same images resized to one size (same pixel count), through the CLI ------------
        decoded = list(read_folder(folder).values())
        side = int(round((pixels / len(decoded)) ** 0.5))
        same = np.stack([np.asarray(Image.fromarray(a).resize((side, side), Image.NEAREST))
                         for a in decoded])
        uniform = scratch / "uniform"
        uniform.mkdir()
        for i, image in enumerate(same):
            Image.fromarray(image).save(uniform / f"img{i:04d}.png")
        cases += [
            (f"batched CLI on the same images resized to {side}x{side} (PNG folder)",
             lambda out: run_cli("equalize", uniform, "-o", f"{out}/", "-q"),
             scratch / "uniform-runs"),
            ("CLI on the resized images into one `.npy` (one `(N, S, S)` stack per slab)",
             lambda out: (out.mkdir(), run_cli("equalize", uniform, "-o", out / "out.npy",
                                               "-q")),
             scratch / "npy-runs"),
        ]
        whole = interleaved(cases, args.repeat)

        # -- compute only, on the decoded images --------------------------------------------
        batched = equalize_hist(decoded)
        for image, result in zip(decoded, batched):
            np.testing.assert_array_equal(result, equalize_hist(image))
        compute = [
            ("compute only: `equalize_hist(list)` (mixed sizes)",
             lambda: equalize_hist(decoded), None),
            ("compute only: `[equalize_hist(a) for a in list]` (mixed sizes)",
             lambda: [equalize_hist(a) for a in decoded], None),
            (f"compute only: same images resized to {side}x{side}, one `(N, S, S)` stack",
             lambda: equalize_hist(same), None),
            (f"compute only: resized to {side}x{side}, `equalize_hist(list)`",
             lambda: equalize_hist(list(same)), None),
        ]
        rows = [(label,) + timing for (label, _, _), timing in
                zip(cases + compute, whole + interleaved(compute, args.repeat))]
        for label, median, best in rows:
            print(f"{label:76s} {median * 1e3:9.1f} ms (best {best * 1e3:.1f})", flush=True)
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    command = "python benchmarks/bench_cli_folder.py " + " ".join(sys.argv[1:] if argv is None
                                                                  else argv)
    lines = [
        "# CLI over a folder of mixed sizes: batched list calls vs one call per image",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Data: {args.count} uint8 PNGs, sides 64..256 (random, seed 0), {pixels / 1e6:.2f} M "
        f"pixels in all. Machine: {os.cpu_count()} CPU cores ({platform.machine()}), Python "
        f"{platform.python_version()}, NumPy {np.__version__}, gpu_histeq "
        f"{gpu_histeq.__version__}, OpenCV {cv2.__version__ if cv2 else 'not installed'}, "
        "device: CPU (no GPU on this machine; nothing here is a GPU number). "
        f"Load average before {load_before[0]:.1f}, after {load_after[0]:.1f} (shared machine). "
        f"One warm-up each, then {args.repeat} rounds of all cases in turn, in one process. "
        "Every output was checked equal to `cv2.equalizeHist` per image before timing.",
        "",
        "| what | median ms | best ms | ns/pixel (median) |",
        "|---|---:|---:|---:|",
    ]
    for label, median, best in rows:
        lines.append(f"| {label} | {median * 1e3:.1f} | {best * 1e3:.1f} | "
                     f"{median / pixels * 1e9:.1f} |")
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main_bench()
