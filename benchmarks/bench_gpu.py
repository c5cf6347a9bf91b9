"""GPU benchmark: gpu_histeq's fused kernels against its portable path and the GPU peers.

One process, one device. Every implementation equalizes the same device-resident batch; times are
CUDA-event medians from ``cupyx.profiler.benchmark`` after warm-up, and each implementation's
first call (kernel compilation included) is timed on its own. The bandwidth floor of a case is
its minimum traffic (the input read once and the output written once) over the bandwidth of a
device-to-device copy measured in the same run.

Writes ``benchmarks/results/gpu-<date>-<device>.json`` (schema of issue 3) and a Markdown table
beside it. Peers that cannot be imported or do not take a case are recorded with the reason.

Usage::

    python benchmarks/bench_gpu.py [--cases seed-u8,u16] [--budget-s 20] [--out benchmarks/results]
"""

import argparse
import datetime
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The first call must pay for compiling the kernels, not for reading an earlier run's cache.
os.environ.setdefault("CUPY_CACHE_DIR", tempfile.mkdtemp(prefix="gpu-histeq-bench-cache-"))

import cupy  # noqa: E402
import numpy as np  # noqa: E402
from cupyx.profiler import benchmark  # noqa: E402

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


def make_batch(shape, dtype, seed=0):
    """A device batch with a narrow, uneven histogram (what equalization is for)."""
    rng = cupy.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.beta(2.0, 5.0, shape, dtype=np.float64).astype(dtype)  # values in [0, 1]
    top = 4096 if dtype == np.uint16 else 256  # 12-bit sensor data in uint16
    return (rng.beta(2.0, 5.0, shape) * (top * 0.6) + top * 0.1).astype(dtype)


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


def time_call(fn, batch, budget_s):
    """First call (ms, wall clock with a device sync) and median CUDA-event time (ms)."""
    start = time.perf_counter()
    output = fn(batch)
    cupy.cuda.Device().synchronize()
    first_s = time.perf_counter() - start
    repeats = int(min(50, max(3, budget_s / max(first_s, 1e-6))))
    warmups = 1 if first_s > 0.5 else 3  # the first call already warmed a slow implementation
    result = benchmark(fn, (batch,), n_repeat=repeats, n_warmup=warmups)
    return output, first_s * 1e3, float(np.median(result.gpu_times[0])) * 1e3, repeats


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
    except (OSError, subprocess.CalledProcessError, IndexError):
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        driver = str(cupy.cuda.runtime.driverGetVersion())
    return name, driver


def run_case(name, shape, dtype, bandwidth, budget_s, implementations):
    batch = make_batch(shape, dtype)
    floor_bytes = batch.nbytes * 2  # read once, write once (same dtype out, float32 -> float32)
    case = {"case": name, "shape": list(shape), "dtype": np.dtype(dtype).name,
            "floor_ms": floor_bytes / (bandwidth * 1e9) * 1e3, "timings_ms": {}, "first_call_ms": None,
            "first_call_ms_by_impl": {}, "repeats": {}, "matches": {}, "missing": {}}
    references = {}
    for impl in implementations:
        try:
            fn, method = globals()[f"impl_{impl}"](batch)
            output, first_ms, median_ms, repeats = time_call(fn, batch, budget_s)
        except Skip as reason:
            case["missing"][impl] = str(reason)
            continue
        except Exception as error:  # a peer that fails on this case is recorded, not fatal
            case["missing"][impl] = f"{type(error).__name__}: {error}"
            continue
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
        del output
        cupy.get_default_memory_pool().free_all_blocks()
        print(f"  {impl:20s} {median_ms:10.3f} ms  (first {first_ms:9.1f} ms, {repeats} runs)"
              f"  {case['matches'][impl]}", flush=True)
    for impl, reason in case["missing"].items():
        print(f"  {impl:20s} missing: {reason}", flush=True)
    return case


def markdown(results):
    """The results as Markdown: the README's table (median ms per implementation and the floor:
    input read once + output written once at the copy bandwidth), bit-exactness, what did not run."""
    lines = [table(results).rstrip("\n")]
    lines += ["", "Bit-exactness against gpu_histeq (portable path as reference):", ""]
    for case in results["cases"]:
        for impl, verdict in case["matches"].items():
            lines.append(f"- {case['case']} / {impl}: {verdict}")
    missing = {(c["case"], i): r for c in results["cases"] for i, r in c["missing"].items()}
    if missing:
        lines += ["", "Not run:", ""] + [f"- {c} / {i}: {r}" for (c, i), r in missing.items()]
    lines += ["", f"Command: `{results['command']}`", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(c[0] for c in CASES),
                        help="comma-separated case names (default: all)")
    parser.add_argument("--implementations", default=",".join(IMPLEMENTATIONS))
    parser.add_argument("--budget-s", type=float, default=5.0,
                        help="timed seconds per implementation and case (3 to 50 repeats)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    wanted = args.cases.split(",")
    implementations = [i for i in args.implementations.split(",") if i]
    name, driver = device_info()
    bandwidth = copy_bandwidth()
    print(f"{name}, driver {driver}, CuPy {cupy.__version__}: copy {bandwidth:.0f} GB/s", flush=True)
    results = {"device": name, "driver": driver, "cupy": cupy.__version__,
               "command": " ".join(["python", "benchmarks/bench_gpu.py", *(argv or sys.argv[1:])]),
               "bandwidth_gbps": bandwidth, "cases": []}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"gpu-{datetime.date.today().isoformat()}-{re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-')}"
    for case_name, shape, dtype in CASES:
        if case_name not in wanted:
            continue
        print(f"{case_name} {shape} {np.dtype(dtype).name}", flush=True)
        results["cases"].append(run_case(case_name, shape, dtype, bandwidth, args.budget_s,
                                         implementations))
        cupy.get_default_memory_pool().free_all_blocks()
        (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")  # after each case
        (out / f"{stem}.md").write_text(markdown(results))
    print(f"wrote {out / stem}.json and .md")


if __name__ == "__main__":
    main()
