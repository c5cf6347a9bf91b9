"""Host time per public call on CuPy input, kernels stubbed: what the host's Python work costs.

No GPU is used. Each case runs a public function on the stand-in CuPy of ``tests/emulation/``
(``fake_cupy``) inside :func:`fake_cupy.stubbed_launches`: every kernel launch checks its grid,
block and shared memory and returns at once, so a call's time is gpu_histeq's own host work --
validation, dispatch, planes, engine selection, kernel lookups, argument packing, allocation --
plus the stub's few checks. After warm-up calls (kernel builds, caches) each case is timed call
by call (``time.perf_counter_ns``) and the median and best are reported in microseconds.

What this does not measure: the stand-in's arrays are NumPy arrays, so its allocations
(``cupy.empty`` and friends: a NumPy buffer aligned to 256 bytes) cost what NumPy's cost here;
real CuPy allocates from its memory pool and its launches pack arguments and call the driver
(``cuLaunchKernel``): neither can be measured without a GPU, so the numbers here are the
Python work of gpu_histeq with those two replaced by the stand-in's, not a GPU call's host time.

Not here: ``histogram`` and ``cumulative_distribution``, whose one synchronisation reads what
their range kernel writes (the result's width, or the float status word) and so cannot run on
garbage from a stubbed launch (the kernels would have to run, and their emulated time would
swamp the host's).

``--profile CASE`` prints the cProfile table of many calls of one case (where the time goes).
``--root DIR`` imports ``gpu_histeq`` from another checkout (the "before" column: main's code)
while the stand-in CuPy and its stub stay this checkout's.

Usage::

    python benchmarks/bench_host_overhead.py [--calls 2000] [--cases equalize-u8-1,...]
        [--profile equalize-u8-1] [--root DIR] [--json PATH]
"""

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent.parent


def _cases():
    """``{name: (note, make)}``; ``make(cp, g)`` returns the call to time."""
    rng = np.random.default_rng(0)

    def host(shape, dtype, high=None):
        dtype = np.dtype(dtype)
        if dtype.kind == "f":
            return rng.random(shape).astype(dtype)
        top = np.iinfo(dtype).max if high is None else high
        return rng.integers(0, top, shape, endpoint=True, dtype=dtype)

    def equalize(shape, dtype, **options):
        def make(cp, g):
            x = cp.asarray(host(shape, dtype))
            return lambda: g.equalize_hist(x, **options)
        return make

    def clahe(shape):
        def make(cp, g):
            x = cp.asarray(host(shape, np.uint8))
            return lambda: g.clahe(x, 2.0, (8, 8))
        return make

    def match(shape):
        def make(cp, g):
            x, ref = cp.asarray(host(shape, np.uint8)), cp.asarray(host(shape[-2:], np.uint8))
            return lambda: g.match_histograms(x, ref)
        return make

    def lut(shape):
        def make(cp, g):
            x = cp.asarray(host(shape, np.uint8))
            table = cp.asarray(host((*shape[:-2], 256), np.uint8))
            return lambda: g.apply_lut(x, table)
        return make

    def adapthist(shape):
        def make(cp, g):
            x = cp.asarray(host(shape, np.uint8))
            return lambda: g.equalize_adapthist(x, 32)
        return make

    return {
        "equalize-u8-1": ("equalize_hist (1,96,96) uint8", equalize((1, 96, 96), np.uint8)),
        "equalize-u8-256": ("equalize_hist (256,1,96,96) uint8",
                            equalize((256, 1, 96, 96), np.uint8)),
        "equalize-u8-1080p": ("equalize_hist (8,1,1080,1920) uint8",
                              equalize((8, 1, 1080, 1920), np.uint8)),
        "equalize-u16": ("equalize_hist (256,1,96,96) uint16",
                         equalize((256, 1, 96, 96), np.uint16)),
        "equalize-f32": ("equalize_hist (256,1,96,96) float32",
                         equalize((256, 1, 96, 96), np.float32)),
        "luminance-u8": ("equalize_hist (256,96,96,3) uint8, channel_axis=-1, luminance=True",
                         equalize((256, 96, 96, 3), np.uint8, channel_axis=-1, luminance=True)),
        "clahe-u8": ("clahe (256,1,96,96) uint8, clip 2, 8x8", clahe((256, 1, 96, 96))),
        "match-u8": ("match_histograms (256,96,96) uint8, one reference", match((256, 96, 96))),
        "apply_lut-u8": ("apply_lut (256,96,96) uint8, per-plane 256 tables", lut((256, 96, 96))),
        "equalize-f16": ("equalize_hist (256,1,96,96) float16",
                         equalize((256, 1, 96, 96), np.float16)),
        "adapthist-u8": ("equalize_adapthist (8,256,256) uint8, kernel_size 32",
                         adapthist((8, 256, 256))),
    }


def _install(root):
    """Import gpu_histeq from `root` and the stand-in cupy from this checkout; returns both."""
    sys.path[:0] = [str(root), str(HERE / "tests")]
    from emulation import build, fake_cupy
    sys.modules["cupy"] = fake_cupy
    build.build_sources()
    import gpu_histeq
    if Path(gpu_histeq.__file__).resolve().parent != (Path(root) / "gpu_histeq").resolve():
        raise SystemExit(f"gpu_histeq imported from {gpu_histeq.__file__}, not from {root}")
    return gpu_histeq, fake_cupy


def time_case(call, calls, warmup=50):
    """``(median_us, best_us, launches_per_call)`` of `call`, kernels stubbed."""
    from emulation import fake_cupy
    with fake_cupy.stubbed_launches() as stubbed:
        for _ in range(warmup):
            call()
        before = sum(stubbed.values())
        samples = []
        clock = time.perf_counter_ns
        gc.collect()
        for _ in range(calls):
            start = clock()
            call()
            samples.append(clock() - start)
        launches = (sum(stubbed.values()) - before) / calls
    return statistics.median(samples) / 1e3, min(samples) / 1e3, launches


def stand_in_costs(cp, calls):
    """Median us of the stand-in's own primitives that a call's time includes: allocating a
    (256, 9216) uint8 array (NumPy's allocator, aligned to 256 bytes) and one stubbed launch
    (its grid, block and shared memory checks). Real CuPy's pool allocation and launch (argument
    packing, ``cuLaunchKernel``) cost something else, unmeasured here."""
    from gpu_histeq._cuda import _kernels, _sources
    function = _kernels.kernel("levels.cu", _sources.INSTANTIATIONS["levels.cu"][0])

    def launch():
        function((256,), (256,), (), shared_mem=0)
    return {"allocation (256, 9216) uint8": time_case(lambda: cp.empty((256, 9216), np.uint8),
                                                      calls)[0],
            "stubbed launch": time_case(launch, calls)[0]}


def profile(call, calls):
    import cProfile
    import pstats
    from emulation import fake_cupy
    with fake_cupy.stubbed_launches():
        for _ in range(50):
            call()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(calls):
            call()
        profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(25)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--cases", default="")
    parser.add_argument("--profile", default="")
    parser.add_argument("--root", default=str(HERE))
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    g, fake_cupy = _install(Path(args.root))
    cases = _cases()
    if args.profile:
        profile(cases[args.profile][1](fake_cupy, g), args.calls)
        return
    names = [n for n in args.cases.split(",") if n] or list(cases)
    rows = {}
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("| case | call | median host us | best host us | stubbed launches |")
    print("|---|---|---:|---:|---:|")
    for name in names:
        note, make = cases[name]
        call = make(fake_cupy, g)
        calls = args.calls if "1080p" not in name else max(50, args.calls // 10)
        median, best, launches = time_case(call, calls)
        rows[name] = {"call": note, "median_us": round(median, 1), "best_us": round(best, 1),
                      "launches": launches, "calls": calls}
        print(f"| {name} | {note} | {median:.1f} | {best:.1f} | {launches:g} |", flush=True)
    costs = stand_in_costs(fake_cupy, args.calls)
    for name, us in costs.items():
        print(f"stand-in {name}: {us:.1f} us (median)")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rows["stand-in"] = {name: round(us, 2) for name, us in costs.items()}
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
