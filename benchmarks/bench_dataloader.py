"""Threads inside torch DataLoader workers (issue 22): busy threads and CPU time of an epoch.

Four DataLoader workers (fork) each apply ``gpu_histeq.transforms.EqualizeHist()`` to one
sample at a time: ``(3, 512, 512)`` uint8 images, whose planes make two blocks, so a version
that starts threads per call runs two per worker. While the epoch runs, the main process samples
``/proc/<worker>/task/*/stat`` every millisecond: how many of the workers' threads are runnable
(state R: on a core or waiting for one) and how many exist. The epoch's wall time and the
workers' CPU time (``RUSAGE_CHILDREN``) are reported too.

Each source tree runs in its own process (``PYTHONPATH`` set to it, its extension built in
place), alternating over the rounds; the table gives the median per tree.

Usage: python benchmarks/bench_dataloader.py BEFORE_TREE AFTER_TREE [--rounds 3]
       [--out benchmarks/results/dataloader-threads.md]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

RUN = r'''
import json, multiprocessing, os, resource, statistics, threading, time
import numpy as np, torch

started = multiprocessing.Value("l", 0)  # threads started in the workers (inherited by fork)
main_pid = os.getpid()
_start = threading.Thread.start
def counted_start(self):
    if os.getpid() != main_pid:  # in a worker
        with started.get_lock():
            started.value += 1
    _start(self)
threading.Thread.start = counted_start
from torch.utils.data import DataLoader, Dataset
import gpu_histeq
from gpu_histeq.transforms import EqualizeHist

class Images(Dataset):
    def __init__(self):
        self.data = torch.from_numpy(np.random.default_rng(0).integers(
            0, 256, (32, 3, 512, 512), dtype=np.uint8))
        self.transform = EqualizeHist()
    def __len__(self):
        return 384
    def __getitem__(self, index):
        return self.transform(self.data[index % 32])

def sample(pids, samples, stop):
    while not stop.is_set():
        runnable = alive = 0
        for pid in pids:
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except FileNotFoundError:
                continue
            alive += len(tasks)
            for tid in tasks:
                try:
                    with open(f"/proc/{pid}/task/{tid}/stat") as handle:
                        state = handle.read().rsplit(")", 1)[1].split()[0]
                except (FileNotFoundError, ProcessLookupError):
                    continue
                runnable += state == "R"
        samples.append((runnable, alive))
        time.sleep(0.001)

loader = DataLoader(Images(), batch_size=16, num_workers=4, multiprocessing_context="fork")
before = resource.getrusage(resource.RUSAGE_CHILDREN)
start = time.perf_counter()
iterator = iter(loader)
samples, stop = [], threading.Event()
sampler = threading.Thread(target=sample, args=([w.pid for w in iterator._workers], samples, stop))
sampler.start()
count = sum(batch.shape[0] for batch in iterator)
wall = time.perf_counter() - start
stop.set(); sampler.join()
del iterator
after = resource.getrusage(resource.RUSAGE_CHILDREN)
busy = [r for r, _ in samples if r]
print(json.dumps({"images": count, "wall_s": wall,
                  "worker_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
                  "runnable_max": max(r for r, _ in samples), "runnable_mean": statistics.mean(busy) if busy else 0,
                  "threads_max": max(a for _, a in samples), "samples": len(samples),
                  "threads_started": started.value}))
'''


def run(tree):
    env = dict(os.environ, PYTHONPATH=tree, PYTHONDONTWRITEBYTECODE="1")
    env.pop("GPU_HISTEQ_NUM_THREADS", None)
    env.pop("OMP_NUM_THREADS", None)
    output = subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True, text=True,
                            check=True, cwd=tree).stdout  # "-c" puts the working directory first
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    results = {"before": [], "after": []}
    for _ in range(args.rounds):
        for name in results:
            results[name].append(run(getattr(args, name)))
            print(name, results[name][-1], flush=True)
    keys = ["wall_s", "worker_cpu_s", "runnable_max", "runnable_mean", "threads_max",
            "threads_started"]
    rows = [f"| {name} (`{getattr(args, name)}`) | "
            + " | ".join(f"{statistics.median(r[k] for r in runs):.2f}" for k in keys) + " |"
            for name, runs in results.items()]
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    text = "\n".join([
        "# Threads in DataLoader workers (issue 22)", "",
        f"Command: `python benchmarks/bench_dataloader.py {' '.join(sys.argv[1:])}`  ",
        f"{os.cpu_count()} CPUs; load at the end: `{load}`  ",
        "4 fork workers, `EqualizeHist()` per (3, 512, 512) uint8 sample, 384 samples, batches "
        "of 16; medians over the rounds. Runnable threads: the workers' threads in state R "
        "(on a core or waiting for one), sampled every millisecond while the epoch runs "
        "(mean over the samples with any).",
        "Threads started: `threading.Thread.start` calls in the workers during the epoch "
        "(each also runs torch's queue feeder thread).", "",
        "| tree | wall s | workers' CPU s | runnable threads, max | runnable threads, mean | "
        "threads alive, max | threads started |", "|---|---|---|---|---|---|---|", *rows, ""])
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
