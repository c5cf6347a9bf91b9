"""CPU benchmark: batched clahe / equalize_adapthist / match_histograms against per-image loops.

Every pair runs in one process on the same data, interleaved, after a warm-up; the median of the
repeats is reported. Writes a Markdown table and the command to ``benchmarks/results/``.

    python benchmarks/bench_adaptive.py [--repeats 7] [--out benchmarks/results/adaptive-cpu.md]
"""

import argparse
import os
import platform
import shlex
import sys
import time

import cv2
import numpy as np
from skimage import data, exposure

import gpu_histeq


def crops(image, count, size, seed=0):
    """`count` random ``size x size`` crops of `image`: a stack of face-sized uint8 planes."""
    rng = np.random.default_rng(seed)
    ys = rng.integers(0, image.shape[0] - size, count)
    xs = rng.integers(0, image.shape[1] - size, count)
    return np.stack([image[y:y + size, x:x + size] for y, x in zip(ys, xs)])


def timed(function, repeats, warmup=1):
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def compare(name, batched, loop, repeats, check):
    batched(), loop()  # warm-up (and imports, caches, thread pools)
    b_times, l_times = [], []
    for _ in range(repeats):  # interleaved, so load on the machine hits both alike
        b_times += timed(batched, 1, warmup=0)
        l_times += timed(loop, 1, warmup=0)
    b, l = float(np.median(b_times)), float(np.median(l_times))
    return {"case": name, "batched_ms": b * 1e3, "loop_ms": l * 1e3, "ratio": b / l,
            "check": check(batched(), loop())}


def portable(function):
    """Run `function` with the compiled CPU path switched off (the bincount path)."""
    with gpu_histeq._engine.portable():
        return function()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "adaptive-cpu.md"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    faces = crops(data.camera(), 1800, 96)[:, None]  # (1800, 1, 96, 96) uint8
    operator = cv2.createCLAHE(40.0, (8, 8))
    gray = np.stack([data.camera(), data.moon(), data.brick()] * 4)  # (12, 512, 512) uint8
    reference = data.coins()

    def max_levels(a, b):
        return f"max abs diff {int(np.abs(a.astype(int) - b.astype(int)).max())} levels"

    def max_abs(a, b):
        return f"max abs diff {float(np.abs(a - b).max()):.1e}"

    rows = [
        compare("clahe (1800, 1, 96, 96) uint8, clip 40, grid 8x8 vs cv2.createCLAHE loop",
                lambda: gpu_histeq.clahe(faces, 40.0, (8, 8)),
                lambda: np.stack([operator.apply(f[0]) for f in faces])[:, None],
                args.repeats, max_levels),
        compare("clahe, portable NumPy path (CuPy's; no compiler), same stack, clip 40 vs the "
                "same loop", lambda: portable(lambda: gpu_histeq.clahe(faces, 40.0, (8, 8))),
                lambda: np.stack([operator.apply(f[0]) for f in faces])[:, None],
                args.repeats, max_levels),
        compare("clahe (1800, 1, 96, 96) uint8, clip 2, grid 8x8 vs cv2.createCLAHE loop",
                lambda: gpu_histeq.clahe(faces, 2.0, (8, 8)),
                lambda: np.stack([cv2.createCLAHE(2.0, (8, 8)).apply(f[0]) for f in faces])[:, None],
                args.repeats, max_levels),
        compare("equalize_adapthist (12, 512, 512) uint8 vs skimage loop",
                lambda: gpu_histeq.equalize_adapthist(gray),
                lambda: np.stack([exposure.equalize_adapthist(g) for g in gray]),
                max(3, args.repeats // 2), max_abs),
        compare("equalize_adapthist (1800, 96, 96) uint8, kernel 12 vs skimage loop",
                lambda: gpu_histeq.equalize_adapthist(faces[:, 0], 12),
                lambda: np.stack([exposure.equalize_adapthist(f[0], 12) for f in faces]),
                max(3, args.repeats // 2), max_abs),
        compare("match_histograms (1800, 1, 96, 96) uint8, shared reference vs skimage loop",
                lambda: gpu_histeq.match_histograms(faces, reference),
                lambda: np.stack([exposure.match_histograms(f[0], reference) for f in faces])[:, None],
                args.repeats, max_abs),
        compare("match_histograms (12, 512, 512) float64, shared reference vs skimage loop",
                lambda: gpu_histeq.match_histograms(gray / 255.0, reference / 255.0),
                lambda: np.stack([exposure.match_histograms(g, reference / 255.0)
                                  for g in gray / 255.0]),
                max(3, args.repeats // 2), max_abs),
    ]
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__)] + sys.argv[1:])
    lines = [
        "# Adaptive equalization and matching on the CPU: batched vs per-image loops",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
        f"(gpu_histeq threads: {gpu_histeq._planes.thread_count()}, OpenCV threads: "
        f"{cv2.getNumThreads()}); numpy {np.__version__}, OpenCV {cv2.__version__}, "
        f"scikit-image {exposure.__name__ and __import__('skimage').__version__}.",
        f"Compiled CPU path (`gpu_histeq._cpu_kernels`): "
        f"{'built' if gpu_histeq._cpu.BUILT else 'not built'}. Load average (1, 5, 15 min) "
        f"before: {', '.join(f'{x:.2f}' for x in load_before)}; after: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        "Median of interleaved repeats after a warm-up, same data for both sides, one process. "
        "ratio = batched / loop (lower is better; below 1 the batch is faster).",
        "",
        "| case | batched (ms) | loop (ms) | ratio | agreement |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [f"| {r['case']} | {r['batched_ms']:.1f} | {r['loop_ms']:.1f} | {r['ratio']:.2f} "
              f"| {r['check']} |" for r in rows]
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
