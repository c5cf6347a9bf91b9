"""GPU benchmark: gpu_histeq's fused kernels against its portable path and the GPU peers.

One process, one device. Every implementation equalizes the same device-resident batch; times are
CUDA-event medians from ``cupyx.profiler.benchmark`` after warm-up, and each implementation's
first call (kernel compilation included: the kernel cache starts empty) is timed on its own. The
bandwidth floor of a case is its minimum traffic (the input read once and the output written
once) over the bandwidth of a device-to-device copy measured in the same run.

Writes ``gpu-<date>-<device>[-TAG].json`` (schema of issue 3) and a Markdown table beside it,
after every implementation, so a run stopped at a limit keeps what it finished. Peers that cannot
be imported, do not take a case, fail, or do not fit the time left are recorded with the reason.

``--time-limit-s`` bounds the whole run: each implementation gets ``--budget-s`` of timed runs at
most (``max_duration``), one whose first call was slow gets one timed run, and one whose time on
an earlier case predicts more than the time left is skipped with that estimate as its reason.

Usage::

    python benchmarks/bench_gpu.py [--cases seed-u8,u16] [--budget-s 3] [--time-limit-s 150]
                                   [--out benchmarks/results] [--tag cvcuda] [--dry-run]
"""

import argparse
import datetime
import importlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gpu_histeq import _engine, equalize_hist  # noqa: E402
from render_gpu_table import PEERS as IMPLEMENTATIONS, table  # noqa: E402  (benchmarks/)

#: name, shape, dtype: the cases of issue 3.
CASES = [
    ("seed-u8", (1800, 1, 96, 96), np.uint8),
    ("cvcuda-config-u8", (16, 1080, 1920), np.uint8),
    ("large-u8", (10000, 1, 256, 256), np.uint8),
    ("u16", (64, 2048, 2048), np.uint16),
    ("float32", (1800, 1, 96, 96), np.float32),
]

#: Seconds kept back from the time limit for writing results and freeing memory.
RESERVE_S = 5.0

cupy = None  # imported by load_cupy() after the arguments are parsed (--help and --dry-run need no GPU)
benchmark = None


def load_cupy():
    """Import CuPy with an empty kernel cache, so that first calls pay for compiling."""
    global cupy, benchmark
    os.environ["CUPY_CACHE_DIR"] = tempfile.mkdtemp(prefix="gpu-histeq-bench-cache-")
    try:
        cupy = importlib.import_module("cupy")
        benchmark = importlib.import_module("cupyx.profiler").benchmark
        cupy.zeros(1).sum().item()
    except Exception as error:  # ImportError, or CuPy without a usable device
        raise SystemExit(f"bench_gpu.py needs CuPy and a CUDA GPU: {type(error).__name__}: {error}") from None


def make_batch(shape, dtype, seed=0):
    """A device batch with a narrow, uneven histogram (what equalization is for)."""
    rng = cupy.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.beta(2.0, 5.0, shape, dtype=np.float64).astype(dtype)  # values in [0, 1]
    top = 4096 if dtype == np.uint16 else 256  # 12-bit sensor data in uint16
    return (rng.beta(2.0, 5.0, shape) * (top * 0.6) + top * 0.1).astype(dtype)


def floor_bytes(shape, dtype):
    """Least traffic of equalizing a batch: read once, write once (same dtype out)."""
    return 2 * math.prod(shape) * np.dtype(dtype).itemsize


# ---- implementations: each returns (fn(batch) -> output, reference method) or raises Skip

class Skip(Exception):
    """This implementation does not run this case; the message says why."""


def _require(module, peer):
    """Import `module` for `peer`, or skip that peer's row."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise Skip(f"{peer} not importable: {error}") from None


def _torch():
    return _require("torch", "torch")


def impl_gpu_histeq(batch):
    return (lambda x: equalize_hist(x)), None


def impl_gpu_histeq_portable(batch):
    def run(x):
        with _engine.portable():
            return equalize_hist(x)
    return run, None


def impl_torchvision(batch):
    torch = _torch()
    functional = _require("torchvision.transforms.v2.functional", "torchvision")
    if batch.dtype not in (np.uint8, np.float32):
        raise Skip(f"torchvision equalize takes uint8 or float images, not {batch.dtype}")
    method = "pil" if batch.dtype == np.uint8 else "skimage"
    return (lambda x: functional.equalize(torch.from_dlpack(x))), method


def impl_kornia(batch):
    torch = _torch()
    kornia = _require("kornia", "kornia")
    if batch.dtype != np.float32:
        # kornia equalizes float images in [0, 1]; the conversion is timed as part of the call
        if batch.dtype != np.uint8:
            raise Skip(f"kornia equalize takes float images in [0, 1], not {batch.dtype}")
        return (lambda x: kornia.enhance.equalize(torch.from_dlpack(x).float() / 255)), "pil"
    return (lambda x: kornia.enhance.equalize(torch.from_dlpack(x))), "skimage"


def impl_cucim(batch):
    cucim_equalize = _require("cucim.skimage.exposure", "cuCIM").equalize_hist

    def run(x):  # cuCIM has no batch axis: one call per image
        images = x.reshape((-1,) + x.shape[-2:])
        return cupy.stack([cucim_equalize(image) for image in images]).reshape(x.shape)
    return run, "skimage"


def impl_cvcuda(batch):
    torch = _torch()
    cvcuda = _require("cvcuda", "CV-CUDA")
    if batch.dtype != np.uint8:
        raise Skip(f"CV-CUDA histogrameq takes uint8 images, not {batch.dtype}")

    def run(x):
        images = torch.from_dlpack(x).reshape((-1,) + x.shape[-2:] + (1,))  # NHWC, one channel
        result = cvcuda.histogrameq(cvcuda.as_tensor(images, "NHWC"), dtype=cvcuda.Type.U8)
        return torch.as_tensor(result.cuda(), device="cuda").reshape(x.shape)
    return run, "opencv"


def as_cupy(output):
    if isinstance(output, cupy.ndarray):
        return output
    return cupy.from_dlpack(output.contiguous())


def compare(output, batch, method, references):
    """'bit-exact with method=...' or how far the output is from that method's."""
    if method not in references:
        with _engine.portable():  # the portable path is the reference; the fused one equals it
            references[method] = equalize_hist(batch, method=method)
    expected = references[method]
    output = as_cupy(output)
    if output.shape != expected.shape:
        return f"shape {output.shape} differs from {expected.shape}"
    if output.dtype != expected.dtype:
        scale = 255.0 if expected.dtype == np.uint8 and output.dtype.kind == "f" else 1.0
        difference = float(cupy.abs(output.astype(np.float64) * scale - expected.astype(np.float64)).max())
        return f"differs from method={method!r}: max |difference| {difference:.3g} ({output.dtype} output)"
    different = int(cupy.count_nonzero(output != expected))
    if different == 0:
        return f"bit-exact with method={method!r}"
    return f"differs from method={method!r} at {different} of {output.size} values"


# ---- timing

def plan_runs(first_s, budget_s):
    """(warm-ups, timed runs) after a first call of `first_s` seconds, for `budget_s` seconds.

    >>> plan_runs(0.001, 3.0)
    (3, 50)
    >>> plan_runs(0.2, 3.0)
    (3, 11)
    >>> plan_runs(0.9, 3.0)
    (1, 3)
    >>> plan_runs(2.0, 3.0)
    (0, 1)
    """
    if 2 * first_s > budget_s:
        return 0, 1  # a slow call: one timed run, the first call was its warm-up
    warmups = 1 if first_s > 0.5 else 3  # the first call already warmed a slow implementation
    return warmups, int(min(50, max(3, budget_s / max(first_s, 1e-6) - warmups - 1)))


def time_call(fn, batch, budget_s):
    """First call (ms, wall clock with a device sync), median CUDA-event time (ms), timed runs."""
    start = time.perf_counter()
    output = fn(batch)
    cupy.cuda.Device().synchronize()
    first_s = time.perf_counter() - start
    warmups, repeats = plan_runs(first_s, budget_s)
    result = benchmark(fn, (batch,), n_repeat=repeats, n_warmup=warmups, max_duration=budget_s)
    times = np.asarray(result.gpu_times)[0]
    return output, first_s * 1e3, float(np.median(times)) * 1e3, int(times.size)


def fused_probe():
    """Wrap ``gpu_histeq._cuda.equalize`` to learn whether the fused kernels took a call."""
    from gpu_histeq import _cuda
    original = getattr(_cuda, "equalize", None)
    taken = []

    def probe(*args, **kwargs):
        answer = original(*args, **kwargs)
        taken.append(bool(answer))
        return answer

    def restore():
        _cuda.equalize = original
        return None if not taken else all(taken)

    if original is not None:
        _cuda.equalize = probe
    return restore


def copy_bandwidth(nbytes=1 << 30):
    """Bytes read plus written per second by a device-to-device copy (GB/s)."""
    source = cupy.ones(nbytes, np.uint8)
    target = cupy.empty_like(source)
    result = benchmark(cupy.copyto, (target, source), n_repeat=20, n_warmup=3)
    return 2 * nbytes / float(np.median(result.gpu_times[0])) / 1e9


def device_info():
    try:
        line = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, check=True).stdout.splitlines()[0]
        name, driver = (part.strip() for part in line.split(",", 1))
    except (OSError, subprocess.CalledProcessError, IndexError, ValueError):
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        driver = str(cupy.cuda.runtime.driverGetVersion())
    return name, driver


def free_memory():
    cupy.get_default_memory_pool().free_all_blocks()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


class Clock:
    """Seconds left of an optional time limit, and per-implementation rates to predict a call."""

    def __init__(self, limit_s=None):
        self.end = None if limit_s is None else time.monotonic() + limit_s
        self.rates = {}  # implementation -> (seconds per floor byte of its median call, case)

    def left(self):
        return math.inf if self.end is None else self.end - time.monotonic() - RESERVE_S

    def too_long(self, impl, nbytes):
        """Why `impl` cannot run a case of `nbytes` in the time left, or None."""
        left = self.left()
        if left < 1.0:
            return "time limit reached"
        if impl not in self.rates:
            return None
        rate, case = self.rates[impl]
        needed = 2 * rate * nbytes  # a first call and one timed run, at the speed of an earlier case
        if needed > left:
            return f"time limit: about {needed:.0f} s expected (from {case}), {left:.0f} s left"
        return None


def empty_case(name, shape, dtype, bandwidth):
    return {"case": name, "shape": list(shape), "dtype": np.dtype(dtype).name,
            "floor_ms": floor_bytes(shape, dtype) / (bandwidth * 1e9) * 1e3, "timings_ms": {},
            "first_call_ms": None, "first_call_ms_by_impl": {}, "repeats": {}, "matches": {},
            "missing": {}}


def run_case(case, shape, dtype, budget_s, implementations, clock, save):
    """Time every implementation on one batch; `save()` after each."""
    nbytes = floor_bytes(shape, dtype)
    batch = make_batch(shape, dtype)
    references = {}
    for impl in implementations:
        reason = clock.too_long(impl, nbytes)
        if reason:
            case["missing"][impl] = reason
            print(f"  {impl:20s} missing: {reason}", flush=True)
            continue
        restore = fused_probe() if impl == "gpu_histeq" else None
        try:
            fn, method = globals()[f"impl_{impl}"](batch)
            output, first_ms, median_ms, repeats = time_call(
                fn, batch, min(budget_s, max(clock.left() / 4, 0.5)))
        except Skip as skip:
            case["missing"][impl] = str(skip)
        except Exception as error:  # a peer that fails on this case is recorded, not fatal
            case["missing"][impl] = f"{type(error).__name__}: {error}"
        else:
            clock.rates[impl] = (median_ms / 1e3 / nbytes, case["case"])
            case["timings_ms"][impl] = median_ms
            case["first_call_ms_by_impl"][impl] = first_ms
            case["repeats"][impl] = repeats
            if impl == "gpu_histeq":
                case["first_call_ms"] = first_ms
            default = "opencv" if np.dtype(dtype).kind == "u" else "skimage"
            try:
                case["matches"][impl] = compare(output, batch, method or default, references)
            except Exception as error:
                case["matches"][impl] = f"not compared ({type(error).__name__}: {error})"
            if median_ms < case["floor_ms"]:
                case["matches"][impl] += (" -- faster than the copy floor: its work is not on the "
                                          "timed stream, the time is not valid")
            del output
        finally:
            if restore is not None:
                fused = restore()
                case["fused_kernels"] = {True: "taken", False: "declined (portable path ran)",
                                         None: "not reached"}[fused]
        free_memory()
        if impl in case["missing"]:
            print(f"  {impl:20s} missing: {case['missing'][impl]}", flush=True)
        else:
            print(f"  {impl:20s} {case['timings_ms'][impl]:10.3f} ms  (first "
                  f"{case['first_call_ms_by_impl'][impl]:9.1f} ms, {case['repeats'][impl]} runs)"
                  f"  {case['matches'][impl]}", flush=True)
        save()
    del batch, references


def markdown(results):
    """The results as Markdown: the README's table (median ms per implementation and the floor:
    input read once + output written once at the copy bandwidth), first calls, bit-exactness,
    what did not run."""
    lines = [table(results).rstrip("\n")]
    lines += ["", "First call (ms, wall clock, kernel compilation included; the cache starts empty):", ""]
    for case in results["cases"]:
        firsts = ", ".join(f"{impl} {ms:.0f}" for impl, ms in case["first_call_ms_by_impl"].items())
        fused = f"; fused kernels {case['fused_kernels']}" if "fused_kernels" in case else ""
        lines.append(f"- {case['case']}: {firsts or 'none ran'}{fused}")
    lines += ["", "Bit-exactness against gpu_histeq (portable path as reference):", ""]
    for case in results["cases"]:
        for impl, verdict in case["matches"].items():
            lines.append(f"- {case['case']} / {impl}: {verdict}")
    missing = {(c["case"], i): r for c in results["cases"] for i, r in c["missing"].items()}
    if missing:
        lines += ["", "Not run:", ""] + [f"- {c} / {i}: {r}" for (c, i), r in missing.items()]
    if results.get("stopped"):
        lines += ["", f"Stopped early: {results['stopped']}"]
    lines += ["", f"Command: `{results['command']}`", ""]
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [c[0] for c in CASES]
    parser.add_argument("--cases", default=",".join(names),
                        help="comma-separated case names, run in this order (default: all)")
    parser.add_argument("--implementations", default=",".join(IMPLEMENTATIONS))
    parser.add_argument("--budget-s", type=float, default=5.0,
                        help="timed seconds per implementation and case (1 to 50 runs)")
    parser.add_argument("--time-limit-s", type=float, default=None,
                        help="wall-clock seconds for the whole run; what does not fit is recorded as not run")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--tag", default="", help="suffix of the result files' names (e.g. cvcuda)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the cases, implementations and budgets, import nothing, run nothing")
    args = parser.parse_args(argv)
    args.cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(args.cases) - set(names))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(names)}")
    args.implementations = [i for i in args.implementations.split(",") if i]
    unknown = sorted(set(args.implementations) - set(IMPLEMENTATIONS))
    if unknown:
        parser.error(f"unknown implementation(s) {', '.join(unknown)}; known: {', '.join(IMPLEMENTATIONS)}")
    if args.budget_s <= 0 or (args.time_limit_s is not None and args.time_limit_s <= 0):
        parser.error("--budget-s and --time-limit-s must be positive")
    if args.tag and not re.fullmatch(r"[A-Za-z0-9_.-]+", args.tag):
        parser.error(f"--tag must be letters, digits, '.', '_' or '-', got {args.tag!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    shapes = {name: (shape, dtype) for name, shape, dtype in CASES}
    if args.dry_run:
        limit = "none" if args.time_limit_s is None else f"{args.time_limit_s:g} s"
        print(f"time limit {limit}; up to {args.budget_s:g} s of timed runs per implementation and case")
        for name in args.cases:
            shape, dtype = shapes[name]
            print(f"{name} {shape} {np.dtype(dtype).name}: {floor_bytes(shape, dtype) / 1e6:.0f} MB "
                  f"read + written; {', '.join(args.implementations)}")
        return
    clock = Clock(args.time_limit_s)
    load_cupy()
    name, driver = device_info()
    bandwidth = copy_bandwidth()
    print(f"{name}, driver {driver}, CuPy {cupy.__version__}: copy {bandwidth:.0f} GB/s", flush=True)
    results = {"device": name, "driver": driver, "cupy": cupy.__version__,
               "command": " ".join(["python", "benchmarks/bench_gpu.py", *(argv if argv is not None else sys.argv[1:])]),
               "bandwidth_gbps": bandwidth, "time_limit_s": args.time_limit_s, "budget_s": args.budget_s,
               "cuda_path_enabled": _engine.cuda_enabled(), "cases": []}
    if not results["cuda_path_enabled"]:
        print("warning: the CUDA path is switched off (GPU_HISTEQ_PORTABLE / GPU_HISTEQ_CUDA): "
              "the gpu_histeq row times the portable path", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"gpu-{datetime.date.today().isoformat()}-{re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-')}"
    stem += f"-{args.tag}" if args.tag else ""

    def save():
        (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
        (out / f"{stem}.md").write_text(markdown(results))

    for case_name in args.cases:
        shape, dtype = shapes[case_name]
        case = empty_case(case_name, shape, dtype, bandwidth)
        results["cases"].append(case)
        if clock.left() < 1.0:
            case["missing"] = {impl: "time limit reached" for impl in args.implementations}
            print(f"{case_name}: not run (time limit reached)", flush=True)
            save()
            continue
        print(f"{case_name} {shape} {np.dtype(dtype).name}", flush=True)
        try:
            run_case(case, shape, dtype, args.budget_s, args.implementations, clock, save)
            free_memory()
        except Exception as error:  # the batch could not be made, or the device is unusable now
            results["stopped"] = f"{case_name}: {type(error).__name__}: {error}"
            print(f"stopped: {results['stopped']}", flush=True)
            save()
            break
        save()
    print(f"wrote {out / stem}.json and .md", flush=True)


if __name__ == "__main__":
    main()
