"""GPU cost model: what each public call on CuPy input costs, counted on the emulated CuPy.

No GPU is used. Every case runs a public function on ``tests/emulation/fake_cupy.py`` (the real
kernel text and launchers on the CPU, CuPy's array operations as NumPy's) inside
``tests/emulation/counting.py``'s :func:`counting`, after one warm-up call, and records:

* raw kernel launches (the fused CUDA kernels) and array-operation launches (each CuPy
  function, method, ufunc or operator that makes or writes an array);
* host synchronisations, with the ``file:line`` in gpu_histeq of each;
* host -> device and device -> host bytes (uploads listed with their sites);
* device allocations, their bytes and the peak of live bytes;
* device bytes moved against the floor (input bytes + output bytes);
* the modelled time: 4 us per launch, 10 us per synchronisation, 3.0 TB/s of device memory,
  25 GB/s over PCIe.

The shapes are those of issue 19 with fewer planes where the portable path would need gigabytes
on the CPU running it (the counts per call do not depend on the number of planes, except where a
path splits planes into blocks; the ratios to the floor do not either). ``--small`` runs the
reduced shapes that ``tests/test_gpu_budget.py`` holds to their budgets.

Usage::

    python benchmarks/gpu_model.py [--small] [--cases clahe-1080p,apply_lut-u8] [--out DIR]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def _cases(small):
    """``{name: (shape note, make)}``; ``make(cp)`` returns ``(call, floor_bytes, path_kernels)``
    where ``path_kernels`` names the kernel prefix whose launch proves the fused path."""
    import gpu_histeq as g
    rng = np.random.default_rng(0)

    def n(full, reduced):
        return reduced if small else full

    def images(cp, shape, dtype, low=0, high=None):
        dtype = np.dtype(dtype)
        if dtype.kind == "f":
            host = rng.random(shape).astype(dtype)
        else:
            top = np.iinfo(dtype).max if high is None else high
            host = rng.integers(max(low, np.iinfo(dtype).min), top, shape, endpoint=True,
                                dtype=dtype)
        return cp.asarray(host)

    def clahe_case(shape, dtype, clip=2.0, grid=(8, 8), **options):
        def make(cp):
            x = images(cp, shape, dtype)
            return (lambda: g.clahe(x, clip, grid, **options)), 2 * x.nbytes
        return make

    def equalize_case(shape, dtype, low=0, high=None, **options):
        def make(cp):
            x = images(cp, shape, dtype, low, high)
            out_bytes = x.size * (np.dtype(dtype).itemsize if options.get("method") in
                                  ("opencv", "pil") or options.get("luminance") else 8)
            if np.dtype(dtype) in (np.float16, np.float32):
                out_bytes = x.size * 4
            return (lambda: g.equalize_hist(x, **options)), x.nbytes + out_bytes
        return make

    def histogram_case(dtype, function):
        """``(note, make, kernel)`` of `function` on (P, 96, 96) planes of `dtype`."""
        shape = (n(256, 32), 96, 96)

        def make(cp):
            x = images(cp, shape, dtype, high=200 if np.dtype(dtype).kind != "f" else None)
            table, centers = function(x)  # the floor: input + both outputs
            return (lambda: function(x)), x.nbytes + table.nbytes + centers.nbytes
        kernel = "uniform" if np.dtype(dtype).kind == "f" else "level"
        return f"{shape} {np.dtype(dtype).name}", make, f"gpu_histeq_{kernel}_histogram"

    def lut_case(shape, dtype, length):
        def make(cp):
            x = images(cp, shape, dtype, high=length - 1)
            lut = images(cp, (*shape[:-2], length), np.uint8)
            return (lambda: g.apply_lut(x, lut)), x.nbytes + x.size + lut.nbytes
        return make

    def adapthist_case(shape, dtype):
        def make(cp):
            x = images(cp, shape, dtype)
            return (lambda: g.equalize_adapthist(x, clip_limit=0.01)), x.nbytes + x.size * 8
        return make

    def match_case(shape, per_plane, dtype=np.uint8):
        def make(cp):
            x = images(cp, shape, dtype)
            ref = images(cp, shape if per_plane else shape[-2:], dtype)
            out = x.size * (4 if np.dtype(dtype) == np.float32 else 8)
            return (lambda: g.match_histograms(x, ref)), x.nbytes + ref.nbytes + out
        return make

    def ragged_case(count, dtype):
        def make(cp):
            sizes = [(64 + 7 * i, 80 + 5 * i) for i in range(count)]
            xs = [images(cp, s, dtype) for s in sizes]
            nbytes = sum(x.nbytes for x in xs)
            return (lambda: g.equalize_hist(xs)), 2 * nbytes
        return make

    return {
        "clahe-1080p-u8": (f"({n(2, 1)},1,1080,1920) uint8, clip 2, 8x8",
                           clahe_case((n(2, 1), 1, 1080, 1920), np.uint8), "gpu_histeq_clahe"),
        "clahe-96-u8": (f"({n(256, 64)},1,96,96) uint8, clip 2, 8x8",
                        clahe_case((n(256, 64), 1, 96, 96), np.uint8), "gpu_histeq_clahe"),
        "clahe-96-u16": (f"({n(64, 8)},1,96,96) uint16, clip 2, 8x8",
                         clahe_case((n(64, 8), 1, 96, 96), np.uint16), "gpu_histeq_clahe"),
        "clahe-1080p-u16": (f"({n(2, 1)},1,1080,1920) uint16, clip 2, 8x8",
                            clahe_case((n(2, 1), 1, 1080, 1920), np.uint16), "gpu_histeq_clahe"),
        "clahe-256-u16": (f"({n(16, 4)},1,256,256) uint16, clip 2, 8x8",
                          clahe_case((n(16, 4), 1, 256, 256), np.uint16), "gpu_histeq_clahe"),
        "adapthist-f64": (f"({n(8, 2)},256,256) float64",
                          adapthist_case((n(8, 2), 256, 256), np.float64), "gpu_histeq_adapt"),
        "adapthist-u8": (f"({n(8, 2)},256,256) uint8",
                         adapthist_case((n(8, 2), 256, 256), np.uint8), "gpu_histeq_adapt"),
        "match-shared": (f"({n(64, 8)},96,96) uint8, one reference",
                         match_case((n(64, 8), 96, 96), False), "gpu_histeq_match"),
        "match-per-plane": (f"({n(64, 8)},96,96) uint8, per-plane references",
                            match_case((n(64, 8), 96, 96), True), "gpu_histeq_match"),
        "match-per-plane-f32": (f"({n(64, 8)},96,96) float32, per-plane references",
                                match_case((n(64, 8), 96, 96), True, np.float32),
                                "gpu_histeq_match"),
        "luminance-u8": (f"({n(256, 32)},96,96,3) uint8, luminance=True",
                         equalize_case((n(256, 32), 96, 96, 3), np.uint8, channel_axis=-1,
                                       luminance=True, method="opencv"),
                         "gpu_histeq_equalize_luma_small_u8"),
        "luminance-u8-large": (f"({n(8, 2)},300,300,3) uint8, luminance=True",
                               equalize_case((n(8, 2), 300, 300, 3), np.uint8, channel_axis=-1,
                                             luminance=True, method="opencv"),
                               "gpu_histeq_luma_histogram"),
        "luminance-u16": (f"({n(64, 8)},96,96,3) uint16 skimage, luminance=True",
                          equalize_case((n(64, 8), 96, 96, 3), np.uint16, channel_axis=-1,
                                        luminance=True, method="skimage"),
                          "gpu_histeq_equalize_luma_ranked"),  # by rank: no 65536 bins
        "luminance-u16-large": (f"({n(8, 2)},300,300,3) uint16 skimage, luminance=True",
                                equalize_case((n(8, 2), 300, 300, 3), np.uint16, channel_axis=-1,
                                              luminance=True, method="skimage"),
                                "gpu_histeq_luma_histogram"),  # past _ranks.SHARED_PIXELS
        "clahe-luminance-u16": (f"({n(64, 8)},96,96,3) uint16, clip 2, 8x8, luminance=True",
                                clahe_case((n(64, 8), 96, 96, 3), np.uint16, channel_axis=-1,
                                           luminance=True), "gpu_histeq_split_luma"),
        "clahe-luminance-u8": (f"({n(256, 32)},96,96,3) uint8, clip 2, 8x8, luminance=True",
                               clahe_case((n(256, 32), 96, 96, 3), np.uint8, channel_axis=-1,
                                          luminance=True), "gpu_histeq_split_luma"),
        "luminance-f32": (f"({n(256, 32)},96,96,3) float32, luminance=True",
                          equalize_case((n(256, 32), 96, 96, 3), np.float32, channel_axis=-1,
                                        luminance=True), "gpu_histeq_equalize_luma_small_float"),
        "histogram-u8": histogram_case(np.uint8, g.histogram),
        "cdf-u8": histogram_case(np.uint8, g.cumulative_distribution),
        "histogram-i16": histogram_case(np.int16, g.histogram),
        "histogram-f32": histogram_case(np.float32, g.histogram),
        "cdf-f32": histogram_case(np.float32, g.cumulative_distribution),
        "cdf-f16": histogram_case(np.float16, g.cumulative_distribution),
        "histogram-u16": histogram_case(np.uint16, g.histogram),
        "apply_lut-u8": (f"({n(256, 32)},96,96) uint8, per-plane 256 tables",
                         lut_case((n(256, 32), 96, 96), np.uint8, 256), "gpu_histeq_remap"),
        "apply_lut-u16": (f"({n(64, 8)},96,96) uint16, per-plane 65536 tables",
                          lut_case((n(64, 8), 96, 96), np.uint16, 65536), "gpu_histeq_remap"),
        "equalize-u8": (f"({n(256, 32)},1,96,96) uint8 opencv",
                        equalize_case((n(256, 32), 1, 96, 96), np.uint8, method="opencv"),
                        "gpu_histeq_equalize_small_u8"),
        "equalize-u16": (f"({n(256, 32)},1,96,96) uint16 opencv",
                         equalize_case((n(256, 32), 1, 96, 96), np.uint16, method="opencv"),
                         "gpu_histeq_equalize_ranked"),  # small planes: by rank
        "equalize-f32": (f"({n(256, 32)},1,96,96) float32 skimage",
                         equalize_case((n(256, 32), 1, 96, 96), np.float32),
                         "gpu_histeq_equalize_small_float"),
        "equalize-i16": (f"({n(256, 32)},1,96,96) int16 skimage",
                         equalize_case((n(256, 32), 1, 96, 96), np.int16),
                         "gpu_histeq_equalize_ranked"),  # small planes: by rank
        "equalize-i16-large": (f"({n(8, 2)},1,300,300) int16 skimage",
                               equalize_case((n(8, 2), 1, 300, 300), np.int16),
                               "gpu_histeq_level"),  # past _ranks.SHARED_PIXELS: by level, bin v + 32768
        "equalize-i32": (f"({n(256, 32)},1,96,96) int32 skimage",
                         equalize_case((n(256, 32), 1, 96, 96), np.int32, low=-5000, high=5000),
                         "gpu_histeq_equalize_ranked"),
        "equalize-i8": (f"({n(256, 32)},1,96,96) int8 skimage",
                        equalize_case((n(256, 32), 1, 96, 96), np.int8),
                        "gpu_histeq_equalize_ranked"),  # small planes: by rank
        "equalize-i8-large": (f"({n(8, 2)},1,300,300) int8 skimage",
                              equalize_case((n(8, 2), 1, 300, 300), np.int8),
                              "gpu_histeq_level"),  # sign bit flipped, uint8 levels
        "equalize-f16": (f"({n(256, 32)},1,96,96) float16 skimage",
                         equalize_case((n(256, 32), 1, 96, 96), np.float16),
                         "gpu_histeq_equalize_small_float"),
        "ragged-u8": (f"{n(64, 16)} uint8 images of different sizes, opencv",
                      ragged_case(n(64, 16), np.uint8), "gpu_histeq_"),
    }


def measure(make, cp):
    """Run the case once to warm up (kernel builds, caches), then count one call."""
    from emulation.counting import counting
    call, floor = make(cp)
    call()
    with counting() as tally:
        result = call()
    del result
    return tally, floor


def row(name, note, tally, floor, fused_prefix):
    fused = fused_prefix is not None and any(k.startswith(fused_prefix) for k in tally.kernels)
    return {
        "case": name, "shape": note,
        "path": "fused" if fused else ("portable" if not tally.kernels else "partly fused"),
        "kernel_launches": tally.kernel_launches, "kernels": dict(tally.kernels),
        "operation_launches": tally.operation_launches, "operations": dict(tally.operations),
        "launches": tally.launches, "syncs": len(tally.syncs), "sync_sites": tally.sync_sites(),
        "h2d_bytes": tally.h2d_bytes, "d2h_bytes": tally.d2h_bytes,
        "uploads": [list(u) for u in tally.uploads],
        "allocations": tally.allocations, "allocated_bytes": tally.allocated_bytes,
        "peak_bytes": tally.peak_bytes, "device_bytes": tally.device_bytes,
        "floor_bytes": floor, "bytes_over_floor": round(tally.device_bytes / floor, 2),
        "modelled_us": round(tally.modelled_us(), 1),
    }


def run(names=None, small=False):
    """Rows of the named cases (all by default), with the stand-in cupy installed meanwhile."""
    from emulation import build, fake_cupy
    saved = sys.modules.get("cupy")
    sys.modules["cupy"] = fake_cupy
    try:
        build.build_sources()
        cases = _cases(small)
        rows = []
        for name in names or cases:
            note, make, prefix = cases[name]
            with np.errstate(all="ignore"):
                tally, floor = measure(make, fake_cupy)
            rows.append(row(name, note, tally, floor, prefix))
        return rows
    finally:
        if saved is None:
            sys.modules.pop("cupy", None)
        else:
            sys.modules["cupy"] = saved


def markdown(rows, command):
    lines = ["# GPU cost model (emulated CuPy; counted, not measured)", "",
             "Counted per call on `tests/emulation/fake_cupy.py` by `tests/emulation/counting.py`"
             " after one warm-up call. Model: 4 us per launch, 10 us per host synchronisation, "
             "3.0 TB/s device memory, 25 GB/s PCIe. **No GPU ran this.** Floor = input + output "
             "bytes.", "", f"Command: `{command}`", "",
             "| case | shape | path | kernels | array ops | syncs | H->D bytes | allocs (peak) "
             "| bytes / floor | modelled us |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['shape']} | {r['path']} | {r['kernel_launches']} | "
                     f"{r['operation_launches']} | {r['syncs']} | {r['h2d_bytes']} | "
                     f"{r['allocations']} ({r['peak_bytes'] / 2**20:.1f} MiB) | "
                     f"{r['bytes_over_floor']} | {r['modelled_us']} |")
    lines += ["", "## Synchronisation sites", ""]
    for r in rows:
        if r["sync_sites"]:
            sites = ", ".join(f"`{s}` x{c}" for s, c in r["sync_sites"].items())
            lines.append(f"- {r['case']}: {sites}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the reduced shapes of the CI test")
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    rows = run(args.cases.split(",") if args.cases else None, args.small)
    command = "python benchmarks/gpu_model.py" + (" --small" if args.small else "") + (
        f" --cases {args.cases}" if args.cases else "")
    out = Path(args.out)
    (out / "gpu-model.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    (out / "gpu-model.md").write_text(markdown(rows, command))
    print(markdown(rows, command))


if __name__ == "__main__":
    main()
