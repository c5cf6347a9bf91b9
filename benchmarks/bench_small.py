"""CPU speed at both ends of the scale (issue 24): one small image per call, and large batches.

Every case times gpu_histeq and its peer on the same data in one process, alternating (each
round times both, so load on a shared machine hits both alike), after a warm-up; a side's time
is its best round (the least disturbed), a round being the mean of many calls for the small
cases (as many of the peer's calls as take as long as gpu_histeq's, so both sides' rounds are
equally exposed to interruptions); the CPU time of the process (all its threads) is reported
beside it. The ratio is gpu_histeq / peer in the same run. Large cases also report the fraction of
the memory floor: two reads and one write of the pixels (count, remap) at the copy bandwidth
measured in the same run (``numpy.copyto`` of a 256 MiB array on all threads, which reads and
writes each byte once; best of the rounds, before and after the cases, so a disturbed copy does
not lower the floor). Each result is checked equal to the peer's before it is timed. The
file also gives, layer by layer, where a small call's microseconds go, and (with eq1800) where
the large call's time goes: the count alone, the compiled equalization on one thread, the
public call on one thread and on all.

Usage: python benchmarks/bench_small.py [--rounds 15] [--cases eq1800,eq2048,clahe1800,eq96,
       pil96,clahe96,eq8] [--out benchmarks/results/small-large-cpu.md]
"""

import argparse
import concurrent.futures
import os
import platform
import subprocess
import sys
import time

import cv2
import numpy as np

import gpu_histeq
from gpu_histeq import _planes

RNG = np.random.default_rng(0)


def timed(function, calls):
    """Mean wall-clock and CPU seconds (all threads of the process) per call over `calls`."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls, (time.process_time() - cpu) / calls


def compare(ours, peer, rounds, calls):
    """Best-of-`rounds` (wall, CPU) seconds per call of `ours` and `peer`, alternating. `calls`
    calls of `ours` make a round; the peer's rounds are made as long (in calls of its own), so
    that neither side's best round is the less likely to have been interrupted."""
    for _ in range(2):
        ours(), peer()
    scale = min(timed(ours, calls)[1] for _ in range(3)) / max(
        min(timed(peer, calls)[1] for _ in range(3)), 1e-9)
    counts = {"ours": calls, "peer": max(1, round(calls * scale))}
    best = {"ours": [float("inf")] * 2, "peer": [float("inf")] * 2}
    for _ in range(rounds):
        for side, function in (("ours", ours), ("peer", peer)):
            best[side] = [min(a, b) for a, b in zip(best[side], timed(function, counts[side]))]
    return best["ours"], best["peer"]


def copy_bandwidth(rounds):
    """Bytes per second of a parallel copy (each byte read once and written once)."""
    size = 1 << 28
    source, target = np.ones(size, np.uint8), np.empty(size, np.uint8)
    threads = _planes.thread_count()
    parts = np.array_split(np.arange(size), threads)
    edges = [(int(p[0]), int(p[-1]) + 1) for p in parts]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        def copy():
            list(pool.map(lambda e: np.copyto(target[e[0]:e[1]], source[e[0]:e[1]]), edges))
        copy()
        best = min(timed(copy, 1)[0] for _ in range(rounds))
    return 2 * size / best


def cv2_loop(images):
    return np.stack([cv2.equalizeHist(p[0]) for p in images])[:, None]


def case_list():
    """name -> (ours, peer, calls per round, target text, target ratio (<=), floor bytes)."""
    small = RNG.integers(0, 256, (96, 96), dtype=np.uint8)
    tiny = RNG.integers(0, 256, (8, 8), dtype=np.uint8)
    big = RNG.integers(0, 256, (4, 1, 2048, 2048), dtype=np.uint8)
    faces = RNG.integers(60, 120, (1800, 1, 96, 96), dtype=np.uint8)
    cv_clahe = cv2.createCLAHE(2.0, (8, 8))
    cases = {
        "eq96": ("equalize_hist one (96, 96) uint8 vs cv2.equalizeHist",
                 lambda: gpu_histeq.equalize_hist(small), lambda: cv2.equalizeHist(small),
                 2000, 1.5, None),
        "clahe96": ("clahe(a, 2.0, (8, 8)) one (96, 96) uint8 vs cv2 CLAHE.apply",
                    lambda: gpu_histeq.clahe(small, 2.0, (8, 8)), lambda: cv_clahe.apply(small),
                    300, 1.5, None),
        "eq8": ("equalize_hist one (8, 8) uint8 vs cv2.equalizeHist",
                lambda: gpu_histeq.equalize_hist(tiny), lambda: cv2.equalizeHist(tiny),
                5000, 5.0, None),
        "eq2048": ("equalize_hist (4, 1, 2048, 2048) uint8 vs cv2 loop",
                   lambda: gpu_histeq.equalize_hist(big), lambda: cv2_loop(big), 3, 0.6,
                   3 * big.nbytes),
        "clahe1800": ("clahe(a, 2.0, (8, 8)) (1800, 1, 96, 96) uint8 vs cv2 CLAHE.apply loop",
                      lambda: gpu_histeq.clahe(faces, 2.0, (8, 8)),
                      lambda: [cv_clahe.apply(p[0]) for p in faces], 2, 0.45, None),
        "eq1800": ("equalize_hist (1800, 1, 96, 96) uint8 vs cv2 loop",
                   lambda: gpu_histeq.equalize_hist(faces), lambda: cv2_loop(faces), 5, None,
                   3 * faces.nbytes),
    }
    try:
        import torch
        from torchvision.transforms.v2 import functional as tvf

        from gpu_histeq.transforms import EqualizeHist
        tensor = torch.from_numpy(small[None].copy())
        transform = EqualizeHist(method="pil")
        cases["pil96"] = ("transforms.EqualizeHist(method='pil') one (1, 96, 96) uint8 tensor vs "
                          "torchvision F.equalize", lambda: transform(tensor),
                          lambda: tvf.equalize(tensor), 2000, 0.3, None)
        assert torch.equal(transform(tensor), tvf.equalize(tensor))
    except ImportError as error:
        print(f"pil96 skipped: {error}", file=sys.stderr)
    np.testing.assert_array_equal(gpu_histeq.equalize_hist(small), cv2.equalizeHist(small))
    np.testing.assert_array_equal(gpu_histeq.equalize_hist(tiny), cv2.equalizeHist(tiny))
    np.testing.assert_array_equal(gpu_histeq.clahe(small, 2.0, (8, 8)), cv_clahe.apply(small))
    np.testing.assert_array_equal(gpu_histeq.equalize_hist(big), cv2_loop(big))
    np.testing.assert_array_equal(gpu_histeq.equalize_hist(faces), cv2_loop(faces))
    np.testing.assert_array_equal(gpu_histeq.clahe(faces[:50], 2.0, (8, 8))[:, 0],
                                  np.stack([cv_clahe.apply(p[0]) for p in faces[:50]]))
    return cases


def breakdown(rounds):
    """Where one small call's microseconds go: CPU time per call of each layer, from the
    compiled entry point up to the public function (checks, dispatch, wrapping)."""
    from gpu_histeq import _cpu, _engine
    from gpu_histeq import equalize as public
    rows = []
    for shape in ((8, 8), (96, 96)):
        image = RNG.integers(0, 256, shape, dtype=np.uint8)
        out = np.empty_like(image)
        npixels = image.size
        layers = [
            ("compiled entry point (`_cpu._MODULE.equalize_levels`)",
             lambda: _cpu._MODULE.equalize_levels(image, None, 1, npixels, None, 0, out)),
            ("+ engine step (`_engine.equalize_small`: the switch read, the dispatch)",
             lambda: _engine.equalize_small(np, image, "opencv", out)),
            ("+ checks and result (`equalize.equalize_hist`)",
             lambda: public.equalize_hist(image)),
            ("+ adapters (`gpu_histeq.equalize_hist`, the public name)",
             lambda: gpu_histeq.equalize_hist(image)),
            ("`cv2.equalizeHist`", lambda: cv2.equalizeHist(image)),
        ]
        for name, function in layers:
            for _ in range(100):
                function()
            cpu = min(timed(function, 5000)[1] for _ in range(rounds))
            rows.append(f"| {shape} | {name} | {cpu * 1e6:.2f} |")
    return rows


def large_breakdown(rounds):
    """Where the (1800, 1, 96, 96) uint8 call's time goes: the CPU time of the count alone, of
    the whole compiled equalization in one call on one thread, of the public call on one
    thread, and the public call's wall-clock time on all threads."""
    from gpu_histeq import _cpu
    faces = RNG.integers(60, 120, (1800, 96 * 96), dtype=np.uint8)
    out, counts = np.empty_like(faces), np.zeros((1800, 256), np.int64)
    images = faces.reshape(1800, 1, 96, 96)

    def one_thread(function):
        def call():
            with gpu_histeq.thread_limit(1):
                function()
        return call

    layers = [
        ("count alone (`count_u8`, one call, one thread)", lambda: _cpu._FUNCTIONS["count_u8"](
            faces.ctypes.data, None, 1800, 96 * 96, None, counts.ctypes.data), 1),
        ("count, table and remap (`equalize_levels`, one call, one thread)",
         lambda: _cpu._MODULE.equalize_levels(faces, None, 1800, 96 * 96, None, 0, out), 1),
        ("`equalize_hist`, one thread", one_thread(lambda: gpu_histeq.equalize_hist(images)), 1),
        (f"`equalize_hist`, {_planes.thread_count()} threads (wall clock)",
         lambda: gpu_histeq.equalize_hist(images), 0),
    ]
    rows = []
    for name, function, cpu in layers:
        function()
        best = min(timed(function, 1)[cpu] for _ in range(4 * rounds))
        rows.append(f"| {name} | {best * 1e3:.2f} | {best * 1e9 / faces.size:.3f} |")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    # (the large cases first: they need both cores, which a shared machine gives more often
    # right after the quiet moment a run is started in)
    parser.add_argument("--cases", default="eq1800,eq2048,clahe1800,eq96,pil96,clahe96,eq8")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    cases = case_list()
    bandwidth = copy_bandwidth(args.rounds)
    results, large = {}, []
    for name in args.cases.split(","):
        if name in cases:
            _, ours, peer, calls, _, _ = cases[name]
            results[name] = compare(ours, peer, args.rounds, calls)
            if name == "eq1800":
                large = large_breakdown(args.rounds)
    bandwidth = max(bandwidth, copy_bandwidth(args.rounds))  # the less disturbed of two runs
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    rows = []
    for name, ((mine, mine_cpu), (theirs, theirs_cpu)) in results.items():
        title, ours, peer, calls, target, floor = cases[name]
        ratio = mine / theirs
        scale, unit = (1e6, "us") if mine < 1e-3 else (1e3, "ms")
        fraction = "" if floor is None else f"{floor / bandwidth / mine:.0%}"
        verdict = "" if target is None else ("yes" if ratio <= target else "NO")
        rows.append(f"| {title} | {mine * scale:.2f} {unit} | {theirs * scale:.2f} {unit} | "
                    f"{ratio:.2f}x | {'' if target is None else f'<= {target}x'} | {verdict} | "
                    f"{mine_cpu * scale:.2f} / {theirs_cpu * scale:.2f} {unit} = "
                    f"{mine_cpu / theirs_cpu:.2f}x | {fraction} |")
    text = "\n".join([
        "# CPU speed at both ends (issue 24)", "",
        f"Command: `python benchmarks/bench_small.py {' '.join(sys.argv[1:])}`".rstrip() + "  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"gpu_histeq threads {_planes.thread_count()}, OpenCV threads {cv2.getNumThreads()}; "
        f"load at the end: `{load}`  ",
        f"Copy bandwidth (read + write) in this run: {bandwidth / 1e9:.2f} GB/s; memory floor = "
        "two reads and one write of the pixels at that rate.", "",
        "Best of the rounds per side, alternating in one process; ratio = gpu_histeq / peer.", "",
        "| case | gpu_histeq | peer | ratio | target | met | CPU time (all threads) | "
        "of the memory floor |", "|---|---|---|---|---|---|---|---|", *rows, "",
        "CPU time is `time.process_time` over the same calls, best round: what the calls cost "
        "the machine, less disturbed by other processes than the wall-clock time on a shared "
        "machine.", ""])
    text += "\n".join([
        "", "## Where a small call's time goes", "",
        "CPU time per call (`time.process_time`, best of the rounds), each layer including the "
        "ones above it in the table:", "",
        "| image | layer | us per call |", "|---|---|---:|", *breakdown(args.rounds), ""])
    if large:
        text += "\n".join([
            "", "## Where the (1800, 1, 96, 96) call's time goes", "",
            "CPU time per call (`time.process_time`, best of the rounds) unless marked; the "
            f"floor of this run is {3 * 1800 * 96 * 96 / bandwidth * 1e3:.2f} ms:", "",
            "| step | ms | ns per pixel |", "|---|---:|---:|", *large, ""])
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
