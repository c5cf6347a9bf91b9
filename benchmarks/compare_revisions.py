"""Is a revision slower than another? The same cases, two source trees, alternating processes.

Each round runs one process per tree (``PYTHONPATH`` set to it, its compiled extension built
in place); each process times every case round-robin with the ``cv2.equalizeHist`` loop as a
yardstick, and reports each case's median as a ratio to that loop in the same process, so load
on this shared machine cancels out. The table gives, per case, the median ratio of each tree
over the rounds and the change.

Usage: python benchmarks/compare_revisions.py BEFORE_TREE AFTER_TREE [--rounds 3] [--repeats 9]
       [--out benchmarks/results/NAME.md]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

CASES = r'''
import json, statistics, sys, time
import numpy as np, cv2
from gpu_histeq import apply_lut, clahe, equalize_adapthist, equalize_hist, histogram, match_histograms
rng = np.random.default_rng(0)
u8 = rng.integers(60, 120, (1800, 1, 96, 96), dtype=np.uint8)
f32 = u8.astype(np.float32) / 255
f64 = rng.random((1000, 1, 96, 96))
u16 = rng.integers(0, 4000, (16, 512, 512), dtype=np.uint16)
lut = np.arange(256, dtype=np.uint8)[::-1].copy()
cases = {
    "equalize_hist uint8 (1800, 1, 96, 96)": lambda: equalize_hist(u8),
    "equalize_hist float32 (1800, 1, 96, 96)": lambda: equalize_hist(f32),
    "equalize_hist float64 (1000, 1, 96, 96)": lambda: equalize_hist(f64),
    "equalize_hist uint16 (16, 512, 512)": lambda: equalize_hist(u16),
    "histogram float32": lambda: histogram(f32),
    "apply_lut uint8": lambda: apply_lut(u8, lut),
    "clahe uint8": lambda: clahe(u8, 40.0, (8, 8)),
    "equalize_adapthist (300, 96, 96)": lambda: equalize_adapthist(u8[:300, 0]),
    "match_histograms (300, 1, 96, 96)": lambda: match_histograms(u8[:300], u8[0, 0]),
    "yardstick": lambda: [cv2.equalizeHist(p[0]) for p in u8],
}
for f in cases.values():
    f()
times = {k: [] for k in cases}
for _ in range(int(sys.argv[1])):
    for k, f in cases.items():
        t = time.perf_counter(); f(); times[k].append(time.perf_counter() - t)
ref = statistics.median(times["yardstick"])
print(json.dumps({k: statistics.median(v) / ref for k, v in times.items() if k != "yardstick"}))
'''


def run(tree, repeats):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    out = subprocess.run([sys.executable, "-c", CASES, str(repeats)], env=env, cwd="/",
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out")
    args = parser.parse_args()
    ratios = {"before": [], "after": []}
    for _ in range(args.rounds):
        ratios["before"].append(run(args.before, args.repeats))
        ratios["after"].append(run(args.after, args.repeats))
    lines = [f"`python benchmarks/compare_revisions.py {args.before} {args.after} --rounds "
             f"{args.rounds} --repeats {args.repeats}`", "",
             "Median time as a ratio to the cv2.equalizeHist loop in the same process "
             "(lower is faster), median over rounds.", "",
             "| case | before | after | after / before |", "|---|---:|---:|---:|"]
    for case in ratios["before"][0]:
        before = statistics.median(r[case] for r in ratios["before"])
        after = statistics.median(r[case] for r in ratios["after"])
        lines.append(f"| {case} | {before:.3f} | {after:.3f} | {after / before:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
