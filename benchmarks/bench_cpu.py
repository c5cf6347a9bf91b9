"""CPU benchmark: gpu_histeq against the per-image loops users run today, on the same data.

Every implementation runs on the same stack in one process, round-robin (each repeat times every
implementation once, so machine-load drift hits all alike), after a warm-up; the table reports
the median, the range over repeats and the ratio to gpu_histeq. Cases: the seed's faces as uint8
and float32, the seed's own float64 example ``np.random.rand(1000, 1, 96, 96)`` and the same
values as float32 (each checked equal to the scikit-image loop bit for bit before it is timed),
with their memory floor (bytes read and written / the copy bandwidth measured in the same run on
all threads) and gpu_histeq writing into a preallocated ``out=`` (no fresh result pages to fault
in and zero: what that costs in every fresh result).
``--breakdown`` also builds ``benchmarks/breakdown_float.c`` (the compiled float steps timed one
by one on one thread) with setup.py's flags and records its output.
Writes ``benchmarks/results/<name>.md`` and ``.json`` (name ``cpu`` unless ``--name``: one current file, its history in git).

Usage: python benchmarks/bench_cpu.py [--repeats 7] [--planes 1800] [--seed-planes 1000]
       [--cases u8,f32,f64,f32seed] [--breakdown] [--name NAME] [--out benchmarks/results]
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import tempfile
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


def seed_float64(planes):
    """The seed's own example, ``np.random.rand(planes, 1, 96, 96)`` (seeded)."""
    return np.random.default_rng(0).random((planes, 1, 96, 96))


def seed_loop(stack):
    """The seed's loop: :func:`numpy_recipe` on every image."""
    return np.stack([numpy_recipe(im[0]) for im in stack])[:, None]


def skimage_loop(stack):
    from skimage import exposure
    return np.stack([exposure.equalize_hist(im[0]) for im in stack])[:, None]


def generic_loops(images):
    """gpu_histeq with the compiled path's AVX-512 loops switched off (GPU_HISTEQ_CPU_SIMD=0)."""
    previous = os.environ.get("GPU_HISTEQ_CPU_SIMD")
    os.environ["GPU_HISTEQ_CPU_SIMD"] = "0"
    try:
        return equalize_hist(images)
    finally:
        if previous is None:
            del os.environ["GPU_HISTEQ_CPU_SIMD"]
        else:
            os.environ["GPU_HISTEQ_CPU_SIMD"] = previous


def copy_bandwidth(array, repeats):
    """Copying `array` on every thread: bytes read + written per second into a warm buffer, the
    best time into a fresh one (its pages faulted in and zeroed by the kernel, as any new result
    is), and the thread count."""
    from gpu_histeq import _planes
    threads = _planes.thread_count()
    sources = np.array_split(array.reshape(-1), threads)
    warm = np.empty_like(array)
    best = {"warm": float("inf"), "fresh": float("inf")}
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats + 1):
            for kind in best:
                target = warm if kind == "warm" else np.empty_like(array)
                start = time.perf_counter()
                list(pool.map(np.copyto, np.array_split(target.reshape(-1), threads), sources))
                best[kind] = min(best[kind], time.perf_counter() - start)
                del target
    return 2 * array.nbytes / best["warm"], best["fresh"], threads


def seed_cases(stack):
    """gpu_histeq (fresh result and preallocated ``out=``), the seed loop and scikit-image's loop
    on the seed's data `stack` (float64, or the same values as float32)."""
    out = np.empty(stack.shape, stack.dtype)
    return {
        "gpu_histeq": lambda: equalize_hist(stack),
        "gpu_histeq into a preallocated out= (no fresh pages)": lambda: equalize_hist(stack, out=out),
        "seed loop (np.histogram + np.interp)": lambda: seed_loop(stack),
        "skimage equalize_hist loop": lambda: skimage_loop(stack),
    }


def implementations(stack_u8, stack_f32, stack_f64, cases):
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
    f64 = seed_cases(stack_f64)
    f64["gpu_histeq generic C loops (GPU_HISTEQ_CPU_SIMD=0)"] = lambda: generic_loops(stack_f64)
    try:
        import torch
        from torchvision.transforms.v2 import functional as tvf
        tensor = torch.from_numpy(stack_u8)
        u8["torchvision equalize (CPU)"] = lambda: tvf.equalize(tensor)
    except Exception:
        pass
    shape = f"({stack_f64.shape[0]},1,96,96)"
    every = {"u8": ("seed-u8 (1800,1,96,96) uint8", u8), "f32": ("float32 (1800,1,96,96) float32", f32),
             "f64": (f"seed float64 np.random.rand{shape}", f64)}
    if "f32seed" in cases:
        every["f32seed"] = (f"seed float32 np.random.rand{shape}.astype(np.float32)",
                            seed_cases(stack_f64.astype(np.float32)))
    return dict(every[case] for case in cases)


def seed_stack_of(case, stack_f64):
    """The seed's data of a case (float64 or float32), or None for the faces cases."""
    if case.startswith("seed float64"):
        return stack_f64
    if case.startswith("seed float32"):
        return stack_f64.astype(np.float32)
    return None


def time_round_robin(functions, repeats):
    """Median and (min, max) wall time in ms of each function over `repeats` round-robin calls,
    and its median CPU time in ms (all threads of the process: what the call itself computed,
    whatever else runs on the machine)."""
    for function in functions.values():
        function()  # warm-up
    samples = {name: [] for name in functions}
    cpu = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            function()
            samples[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return ({name: statistics.median(times) * 1e3 for name, times in samples.items()},
            {name: (min(times) * 1e3, max(times) * 1e3) for name, times in samples.items()},
            {name: statistics.median(times) * 1e3 for name, times in cpu.items()})


def breakdown(planes, repeats):
    """Build and run benchmarks/breakdown_float.c with setup.py's flags; its output lines."""
    here = Path(__file__).parent
    with tempfile.TemporaryDirectory() as folder:
        program = Path(folder) / "breakdown_float"
        subprocess.run([os.environ.get("CC", "cc"), "-O3", "-ffp-contract=off", "-fno-trapping-math",
                        "-I" + sysconfig.get_paths()["include"], str(here / "breakdown_float.c"),
                        "-o", str(program), "-lm"], check=True)
        run = subprocess.run([str(program), str(planes), str(repeats)], check=True,
                             capture_output=True, text=True)
        return run.stdout.strip().splitlines()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--planes", type=int, default=1800)
    parser.add_argument("--seed-planes", type=int, default=1000,
                        help="images of the seed's float64 case (default 1000)")
    parser.add_argument("--cases", default="u8,f32,f64",
                        help="comma-separated: u8, f32, f64, f32seed (the seed's data as float32)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the compiled float steps one by one (needs a C compiler)")
    parser.add_argument("--name", default="cpu",
                        help="results file name (default cpu: the current file; history in git)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    cases_wanted = [case.strip() for case in args.cases.split(",") if case.strip()]
    unknown = set(cases_wanted) - {"u8", "f32", "f64", "f32seed"}
    if unknown:
        parser.error(f"--cases: unknown {sorted(unknown)}; choose from u8, f32, f64, f32seed")
    stack_u8 = seed_stack(args.planes)
    stack_f32 = stack_u8.astype(np.float32) / 255
    stack_f64 = seed_float64(args.seed_planes)
    import cv2
    versions = {"gpu_histeq": gpu_histeq.__version__, "numpy": np.__version__, "opencv": cv2.__version__,
                "python": platform.python_version(), "compiled_cpu_path": _cpu.BUILT}
    for name in ("skimage", "PIL", "torch", "torchvision"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    command = "python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:])
    load_before = os.getloadavg()
    cases = []
    for case, functions in implementations(stack_u8, stack_f32, stack_f64, cases_wanted).items():
        entry = {"case": case}
        seed = seed_stack_of(case, stack_f64)
        if seed is not None:
            # the promise first: equal to scikit-image's loop to the last bit
            entry["equal_to_skimage_loop"] = bool(np.array_equal(equalize_hist(seed),
                                                                 skimage_loop(seed)))
            bandwidth, fresh, threads = copy_bandwidth(seed, args.repeats)
            entry["memory_floor"] = {"bytes_read": seed.nbytes, "bytes_written": seed.nbytes,
                                     "copy_bandwidth_GBps": bandwidth / 1e9, "threads": threads,
                                     "floor_ms": 2 * seed.nbytes / bandwidth * 1e3,
                                     "copy_to_fresh_array_ms": fresh * 1e3}
            entry["pixels"] = seed.size
        entry["median_ms"], entry["range_ms"], entry["cpu_median_ms"] = time_round_robin(
            functions, args.repeats)
        cases.append(entry)
        print(case, json.dumps({k: round(v, 2) for k, v in entry["median_ms"].items()}), flush=True)
    date = datetime.date.today().isoformat()
    record = {"command": command, "date": date, "machine": f"{platform.machine()}, "
              f"{len(os.sched_getaffinity(0))} CPUs, {platform.platform()}", "versions": versions,
              "repeats": args.repeats, "cases": cases,
              "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()}}
    if args.breakdown:
        record["breakdown"] = breakdown(args.seed_planes, max(args.repeats, 3))
    name = args.name
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# CPU benchmark, {date}", "", f"Command: `{command}`", "",
             f"Machine: {record['machine']}", "",
             "Load average (1, 5, 15 min) before / after: {:.1f} {:.1f} {:.1f} / {:.1f} {:.1f} {:.1f} "
             "(other work on this shared machine; {} cores)".format(
                 *load_before, *record["load_average_1_5_15min"]["after"], os.cpu_count()), "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
             "", "Median (and min-max) of round-robin repeats, same data in one process. "
             "Ratio = time / gpu_histeq's time. CPU ms: the process's CPU time during the call "
             "(every thread), which other work on the machine does not inflate as it does wall "
             "time.", ""]
    for entry in cases:
        base = entry["median_ms"]["gpu_histeq"]
        lines += [f"## {entry['case']}", ""]
        if "equal_to_skimage_loop" in entry:
            floor = entry["memory_floor"]
            lines += [f"gpu_histeq equal to the scikit-image loop bit for bit: "
                      f"{entry['equal_to_skimage_loop']}.", "",
                      f"Memory floor: {floor['bytes_read'] / 1e6:.1f} MB read + "
                      f"{floor['bytes_written'] / 1e6:.1f} MB written at the copy bandwidth measured "
                      f"in this run on {floor['threads']} threads, {floor['copy_bandwidth_GBps']:.1f} GB/s: "
                      f"{floor['floor_ms']:.1f} ms; gpu_histeq's median reaches "
                      f"{floor['floor_ms'] / base:.0%} of it (floor / time). The same copy into a "
                      f"fresh array (pages faulted in and zeroed, as for any new result): "
                      f"{floor['copy_to_fresh_array_ms']:.1f} ms, "
                      f"{floor['copy_to_fresh_array_ms'] / base:.0%} of gpu_histeq's median.", ""]
            per_pixel = 1e6 / entry["pixels"]  # ms -> ns per pixel
            lines += ["Per pixel (median ns): " + "; ".join(
                f"{key}: {entry['median_ms'][key] * per_pixel:.2f} wall, "
                f"{entry['cpu_median_ms'][key] * per_pixel:.2f} CPU (all threads)"
                for key in entry["median_ms"] if "gpu_histeq" in key or "seed loop" in key) + ".", ""]
        cpu_base = entry["cpu_median_ms"]["gpu_histeq"]
        lines += ["| implementation | median ms | min-max ms | x gpu_histeq | CPU ms (all threads) "
                  "| CPU x gpu_histeq |", "|---|---:|---:|---:|---:|---:|"]
        for key, value in sorted(entry["median_ms"].items(), key=lambda kv: kv[1]):
            low, high = entry["range_ms"][key]
            busy = entry["cpu_median_ms"][key]
            lines.append(f"| {key} | {value:.1f} | {low:.1f}-{high:.1f} | {value / base:.2f} "
                         f"| {busy:.1f} | {busy / cpu_base:.2f} |")
        lines.append("")
    if args.breakdown:
        lines += ["## Compiled float steps, one thread (benchmarks/breakdown_float.c)", "", "```",
                  *record["breakdown"], "```", ""]
    (args.out / f"{name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
