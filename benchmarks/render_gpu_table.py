"""Render the README's GPU table from a ``bench_gpu.py`` results file.

Usage::

    python benchmarks/render_gpu_table.py benchmarks/results/gpu-<date>-<device>.json \
        [benchmarks/results/gpu-<date>-<device>-cvcuda.json] [--readme README.md]

Without ``--readme`` the table is printed. With it, the text between the lines
``<!-- gpu-table:start -->`` and ``<!-- gpu-table:end -->`` of that file is replaced. A second
results file (the optional CV-CUDA call's) adds the timings of implementations the first lacks,
case by case; both must come from the same device.
"""

import argparse
import json
import re
from pathlib import Path

PEERS = ("gpu_histeq", "gpu_histeq_portable", "torchvision", "kornia", "cucim", "cvcuda")
START, END = "<!-- gpu-table:start -->", "<!-- gpu-table:end -->"


def table(results):
    """Markdown: one row per case, median ms per implementation, the fused path's distance to its
    floor, and its first call (kernel compilation included)."""
    lines = [f"Measured on {results['device']} (driver {results['driver']}, CuPy {results['cupy']}), "
             f"copy bandwidth {results['bandwidth_gbps']:.0f} GB/s; median ms over CUDA events; "
             "floor = input read once + output written once at that bandwidth; '-' = not run "
             "(the results' .md says why).", "",
             "| case | floor ms | " + " | ".join(PEERS) + " | % of floor | gpu_histeq first call ms |",
             "|---|---|" + "---|" * len(PEERS) + "---|---|"]
    for case in results["cases"]:
        times = case["timings_ms"]
        cells = [f"{times[p]:.3f}" if p in times else "-" for p in PEERS]
        share = f"{100 * case['floor_ms'] / times['gpu_histeq']:.0f}%" if "gpu_histeq" in times else "-"
        first = f"{case['first_call_ms']:.0f}" if case.get("first_call_ms") is not None else "-"
        lines.append(f"| {case['case']} {tuple(case['shape'])} {case['dtype']} | {case['floor_ms']:.3f} | "
                     + " | ".join(cells) + f" | {share} | {first} |")
    return "\n".join(lines) + "\n"


def merge(results, extra, name):
    """Add `extra`'s timings of implementations that `results` lacks, case by case (in place)."""
    if extra["device"] != results["device"]:
        raise SystemExit(f"{name} was measured on {extra['device']}, not {results['device']}")
    cases = {case["case"]: case for case in results["cases"]}
    for case in extra["cases"]:
        if case["case"] not in cases:
            continue
        target = cases[case["case"]]
        for impl, ms in case["timings_ms"].items():
            if impl not in target["timings_ms"]:
                target["timings_ms"][impl] = ms
                target["missing"].pop(impl, None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="results files; later ones fill implementations the first lacks")
    parser.add_argument("--readme")
    args = parser.parse_args(argv)
    results = json.loads(Path(args.results[0]).read_text())
    for name in args.results[1:]:
        merge(results, json.loads(Path(name).read_text()), name)
    if not any("gpu_histeq" in case["timings_ms"] for case in results["cases"]):
        raise SystemExit(f"{args.results[0]} has no gpu_histeq timing: nothing to put in a table")
    rendered = table(results)
    if not args.readme:
        print(rendered, end="")
        return
    readme = Path(args.readme)
    text = readme.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{readme} has no {START} ... {END} block")
    readme.write_text(pattern.sub(lambda _: f"{START}\n{rendered}{END}", text))


if __name__ == "__main__":
    main()
