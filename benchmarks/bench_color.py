"""CPU benchmark: colour equalization (luminance, per channel, CLAHE of the luma) against the
per-image OpenCV loops it reproduces.

Every pair runs in one process on the same data (crops of skimage.data's colour images),
interleaved, after a warm-up; the median of the repeats is reported with the ratio batched/loop
and the agreement. Writes a Markdown table and the command to ``benchmarks/results/``.

    python benchmarks/bench_color.py [--repeats 7] [--out benchmarks/results/color-cpu.md]
"""

import argparse
import os
import platform
import shlex
import sys
import time

import cv2
import numpy as np
from skimage import data

import gpu_histeq


def crops(images, count, size, seed=0):
    """`count` random ``size x size`` RGB crops of `images`, ``(count, size, size, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(images), count)
    out = []
    for k in picks:
        image = images[k]
        y = rng.integers(0, image.shape[0] - size)
        x = rng.integers(0, image.shape[1] - size)
        out.append(image[y:y + size, x:x + size])
    return np.ascontiguousarray(np.stack(out))


def luma_loop(batch, apply, order="rgb"):
    """The OpenCV user's loop: cvtColor -> `apply` on Y -> cvtColor back, image by image
    (``COLOR_BGR2YCrCb`` and back for `order` "bgr")."""
    forward, back = ((cv2.COLOR_RGB2YCrCb, cv2.COLOR_YCrCb2RGB) if order == "rgb"
                     else (cv2.COLOR_BGR2YCrCb, cv2.COLOR_YCrCb2BGR))
    out = np.empty_like(batch)
    for k, image in enumerate(batch):
        ycc = cv2.cvtColor(image, forward)
        ycc[..., 0] = apply(np.ascontiguousarray(ycc[..., 0]))
        out[k] = cv2.cvtColor(ycc, back)
    return out


def channel_loop(batch):
    out = np.empty_like(batch)
    for k, image in enumerate(batch):
        for c in range(image.shape[-1]):
            out[k, ..., c] = cv2.equalizeHist(np.ascontiguousarray(image[..., c]))
    return out


def compare(name, batched, loop, repeats):
    batched(), loop()  # warm-up (imports, caches, threads)
    b_times, l_times = [], []
    for _ in range(repeats):  # interleaved, so load on the machine hits both alike
        start = time.perf_counter()
        batched()
        b_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        loop()
        l_times.append(time.perf_counter() - start)
    b, l = float(np.median(b_times)), float(np.median(l_times))
    diff = int(np.abs(batched().astype(np.int32) - loop().astype(np.int32)).max())
    return {"case": name, "batched_ms": b * 1e3, "loop_ms": l * 1e3, "ratio": b / l,
            "check": f"max abs diff {diff} levels"}


def portable(function):
    with gpu_histeq._engine.portable():
        return function()


def one_thread(function):
    """Run `function` with gpu_histeq on one thread (GPU_HISTEQ_NUM_THREADS=1), like the loop."""
    saved = os.environ.get("GPU_HISTEQ_NUM_THREADS")
    os.environ["GPU_HISTEQ_NUM_THREADS"] = "1"
    try:
        return function()
    finally:
        if saved is None:
            del os.environ["GPU_HISTEQ_NUM_THREADS"]
        else:
            os.environ["GPU_HISTEQ_NUM_THREADS"] = saved


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--count", type=int, default=1800)
    parser.add_argument("--out", default="benchmarks/results/color-cpu.md")
    args = parser.parse_args()
    batch = crops([data.astronaut(), data.chelsea(), data.coffee()], args.count, 96)
    shape = batch.shape
    clahe = cv2.createCLAHE(2.0, (8, 8))
    load_before = os.getloadavg()
    rows = [
        compare(f"equalize_hist {shape} uint8, channel_axis=-1, luminance=True vs "
                "cvtColor -> equalizeHist -> cvtColor loop",
                lambda: gpu_histeq.equalize_hist(batch, channel_axis=-1, luminance=True),
                lambda: luma_loop(batch, cv2.equalizeHist), args.repeats),
        compare("the same pixels read as BGR, luminance='bgr' vs the COLOR_BGR2YCrCb loop",
                lambda: gpu_histeq.equalize_hist(batch, channel_axis=-1, luminance="bgr"),
                lambda: luma_loop(batch, cv2.equalizeHist, "bgr"), args.repeats),
        compare("the same, gpu_histeq on one thread",
                lambda: one_thread(lambda: gpu_histeq.equalize_hist(batch, channel_axis=-1,
                                                                    luminance=True)),
                lambda: luma_loop(batch, cv2.equalizeHist), args.repeats),
        compare("the same, portable NumPy path (CuPy's; no compiler)",
                lambda: portable(lambda: gpu_histeq.equalize_hist(batch, channel_axis=-1,
                                                                  luminance=True)),
                lambda: luma_loop(batch, cv2.equalizeHist), args.repeats),
        compare(f"equalize_hist {shape} uint8, channel_axis=-1 vs per-channel equalizeHist loop",
                lambda: gpu_histeq.equalize_hist(batch, channel_axis=-1),
                lambda: channel_loop(batch), args.repeats),
        compare(f"clahe {shape} uint8, clip 2, grid 8x8, channel_axis=-1, luminance=True vs "
                "cvtColor -> CLAHE.apply -> cvtColor loop",
                lambda: gpu_histeq.clahe(batch, 2.0, (8, 8), channel_axis=-1, luminance=True),
                lambda: luma_loop(batch, clahe.apply), args.repeats),
    ]
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    threads = os.environ.get("GPU_HISTEQ_NUM_THREADS") or len(os.sched_getaffinity(0))
    lines = [
        "# Colour equalization on the CPU: batched vs the per-image OpenCV loops", "",
        f"Command: `{command}`", "",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs (gpu_histeq "
        f"threads: {threads}, OpenCV threads: {cv2.getNumThreads()}); numpy {np.__version__}, "
        f"OpenCV {cv2.__version__}. Compiled CPU path: "
        f"{'built' if gpu_histeq._cpu.BUILT else 'not built'}. Load average (1, 5, 15 min) "
        f"before: {', '.join(f'{x:.2f}' for x in load_before)}; after: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (the machine is shared).",
        "Data: crops of skimage.data astronaut, chelsea, coffee. Median of interleaved repeats "
        "after a warm-up, same data, one process. ratio = batched / loop (below 1: the batch "
        "is faster).", "",
        "| case | batched (ms) | loop (ms) | ratio | agreement |", "|---|---:|---:|---:|---|"]
    for row in rows:
        lines.append(f"| {row['case']} | {row['batched_ms']:.1f} | {row['loop_ms']:.1f} | "
                     f"{row['ratio']:.2f} | {row['check']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.out, "w") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()
