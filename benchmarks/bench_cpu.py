"""CPU benchmark: gpu_histeq against the per-image loops users run today, on the same data.

Every implementation runs on the same stack in one process, round-robin (each repeat times every
implementation once, so machine-load drift hits all alike), after a warm-up; the table reports
the median and the ratio to gpu_histeq. Writes ``benchmarks/results/cpu-<date>.md`` and ``.json``.

Usage: python benchmarks/bench_cpu.py [--repeats 7] [--planes 1800] [--out benchmarks/results]
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import gpu_histeq
from gpu_histeq import _cpu, _engine, equalize_hist


def seed_stack(planes):
    """``(planes, 1, 96, 96)`` uint8: low-contrast 96x96 tiles cut from scikit-image's photographs."""
    from skimage import data
    sources = [data.camera(), data.moon(), data.coins(), data.page(), data.brick(), data.grass(),
               data.gravel(), data.astronaut()[..., 1], data.chelsea()[..., 0], data.coffee()[..., 2]]
    rng = np.random.default_rng(0)
    tiles = np.empty((planes, 1, 96, 96), np.uint8)
    for i in range(planes):
        source = sources[i % len(sources)]
        y, x = rng.integers(0, source.shape[0] - 96), rng.integers(0, source.shape[1] - 96)
        tile = source[y:y + 96, x:x + 96].astype(np.float64)
        low = rng.uniform(20, 120)  # squeeze into a narrow, shifted range: what needs equalizing
        tiles[i, 0] = np.clip(low + tile * rng.uniform(0.2, 0.5), 0, 255).astype(np.uint8)
    return tiles


def numpy_recipe(image):
    """The common NumPy recipe: density histogram, cumsum scaled to 255, interp at left edges."""
    hist, bins = np.histogram(image, 256, density=True)
    cdf = hist.cumsum()
    cdf = 255 * cdf / cdf[-1]
    return np.interp(image.ravel(), bins[:-1], cdf).reshape(image.shape)


def implementations(stack_u8, stack_f32):
    import cv2
    from PIL import Image, ImageOps
    from skimage import exposure

    def portable(images, **kwargs):
        with _engine.portable():
            return equalize_hist(images, **kwargs)

    u8 = {
        "gpu_histeq": lambda: equalize_hist(stack_u8),
        "gpu_histeq portable (bincount)": lambda: portable(stack_u8),
        "gpu_histeq pil": lambda: equalize_hist(stack_u8, method="pil"),
        "cv2.equalizeHist loop": lambda: np.stack([cv2.equalizeHist(im[0]) for im in stack_u8])[:, None],
        "PIL ImageOps.equalize loop": lambda: np.stack(
            [np.asarray(ImageOps.equalize(Image.fromarray(im[0]))) for im in stack_u8])[:, None],
        "skimage equalize_hist loop": lambda: np.stack([exposure.equalize_hist(im[0]) for im in stack_u8])[:, None],
    }
    f32 = {
        "gpu_histeq": lambda: equalize_hist(stack_f32),
        "gpu_histeq portable (bincount)": lambda: portable(stack_f32),
        "skimage equalize_hist loop": lambda: np.stack([exposure.equalize_hist(im[0]) for im in stack_f32])[:, None],
        "NumPy recipe loop": lambda: np.stack([numpy_recipe(im[0]) for im in stack_f32])[:, None],
    }
    try:
        import torch
        from torchvision.transforms.v2 import functional as tvf
        tensor = torch.from_numpy(stack_u8)
        u8["torchvision equalize (CPU)"] = lambda: tvf.equalize(tensor)
    except Exception:
        pass
    return {"seed-u8 (1800,1,96,96) uint8": u8, "float32 (1800,1,96,96) float32": f32}


def time_round_robin(functions, repeats):
    for function in functions.values():
        function()  # warm-up
    samples = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) * 1e3 for name, times in samples.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--planes", type=int, default=1800)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    stack_u8 = seed_stack(args.planes)
    stack_f32 = stack_u8.astype(np.float32) / 255
    import cv2
    versions = {"gpu_histeq": gpu_histeq.__version__, "numpy": np.__version__, "opencv": cv2.__version__,
                "python": platform.python_version(), "compiled_cpu_path": _cpu.BUILT}
    for name in ("skimage", "PIL", "torch", "torchvision"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    command = "python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:])
    cases = []
    for case, functions in implementations(stack_u8, stack_f32).items():
        medians = time_round_robin(functions, args.repeats)
        cases.append({"case": case, "median_ms": medians})
        print(case, json.dumps({k: round(v, 2) for k, v in medians.items()}), flush=True)
    date = datetime.date.today().isoformat()
    record = {"command": command, "date": date, "machine": f"{platform.machine()}, "
              f"{len(os.sched_getaffinity(0))} CPUs, {platform.platform()}", "versions": versions,
              "repeats": args.repeats, "cases": cases}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"cpu-{date}.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# CPU benchmark, {date}", "", f"Command: `{command}`", "",
             f"Machine: {record['machine']}", "", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
             "", "Median of round-robin repeats, same data in one process. Ratio = time / gpu_histeq's time.", ""]
    for entry in cases:
        base = entry["median_ms"]["gpu_histeq"]
        lines += [f"## {entry['case']}", "", "| implementation | median ms | x gpu_histeq |", "|---|---:|---:|"]
        for name, value in sorted(entry["median_ms"].items(), key=lambda kv: kv[1]):
            lines.append(f"| {name} | {value:.1f} | {value / base:.2f} |")
        lines.append("")
    (args.out / f"cpu-{date}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
