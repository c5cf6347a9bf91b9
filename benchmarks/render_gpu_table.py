"""Render the README's GPU table from a ``bench_gpu.py`` results file.

Usage::

    python benchmarks/render_gpu_table.py benchmarks/results/gpu-<date>-<device>.json [--readme README.md]

Without ``--readme`` the table is printed. With it, the text between the lines
``<!-- gpu-table:start -->`` and ``<!-- gpu-table:end -->`` of that file is replaced.
"""

import argparse
import json
import re
from pathlib import Path

PEERS = ("gpu_histeq", "gpu_histeq_portable", "torchvision", "kornia", "cucim", "cvcuda")
START, END = "<!-- gpu-table:start -->", "<!-- gpu-table:end -->"


def table(results):
    """Markdown: one row per case, median ms per implementation, the fused path's distance to floor."""
    lines = [f"Measured on {results['device']} (driver {results['driver']}, CuPy {results['cupy']}), "
             f"copy bandwidth {results['bandwidth_gbps']:.0f} GB/s; median ms over CUDA events.", "",
             "| case | floor ms | " + " | ".join(PEERS) + " | % of floor |",
             "|---|---|" + "---|" * len(PEERS) + "---|"]
    for case in results["cases"]:
        times = case["timings_ms"]
        cells = [f"{times[p]:.3f}" if p in times else "-" for p in PEERS]
        share = f"{100 * case['floor_ms'] / times['gpu_histeq']:.0f}%" if "gpu_histeq" in times else "-"
        lines.append(f"| {case['case']} {tuple(case['shape'])} {case['dtype']} | {case['floor_ms']:.3f} | "
                     + " | ".join(cells) + f" | {share} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--readme")
    args = parser.parse_args(argv)
    rendered = table(json.loads(Path(args.results).read_text()))
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
