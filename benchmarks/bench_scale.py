"""Equalizing a zarr dataset larger than the Dask cluster's memory, and the CLI on the same data.

Writes a zarr array ``(N, 96, 96)`` uint8 (deterministic low-contrast faces-like images, zstd,
chunks of ``--chunk-images`` images) larger than the ``LocalCluster``'s total memory limit, then
runs, one after another on that cluster (``--workers`` processes x 1 thread, ``--memory-limit``
each, Dask's default spill thresholds) and in the same time slot:

* a raw copy, ``da.from_zarr(src).to_zarr(dst)``, first and again after the other cluster
  runs: the floor every other run is divided by (the mean of the two);
* per image, ``equalize_hist(x).to_zarr(dst)``;
* dataset-wide, ``equalize_hist(x, axes=(0, 1, 2)).to_zarr(dst)`` (one table for the dataset:
  the histogram pass, then a remap pass that reads the input again);
* with ``--holding``, the same dataset-wide graph built as before issue 25 (the remap reuses the
  histogram pass's chunks, so the workers hold or spill them until the histogram is complete);
* the CLI, ``gpu-histeq equalize src.zarr -o out.zarr`` and ``--axes=all``, as subprocesses
  (all cores of this machine, not the cluster).

For each: seconds, the ratio to the raw copy, the peak resident memory of each worker (sampled
every 0.2 s; of the process for the CLI) and the bytes the workers spilled to disk. Outputs are
checked bit for bit against the in-memory API (per image: chunk by chunk; dataset-wide: the
in-memory call on the whole array, which needs twice the dataset's size in RAM once).

Usage::

    python benchmarks/bench_scale.py [--gb 1.2] [--memory-limit 256MiB] [--workers 2]
        [--chunk-images 1000] [--holding] [--cli-before TREE] [--dir /tmp]
        [--results benchmarks/results/scale.md]
"""

import argparse
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import numpy as np

import gpu_histeq
from gpu_histeq import equalize_hist

IMAGE = (96, 96)


def make_dataset(zarr, path, nbytes, chunk_images, seed=0):
    """A deterministic uint8 zarr stack of at least `nbytes`: smooth faces-like images (a
    gradient and a blob) in a narrow range, with noise, so that zstd has something to do."""
    count = -(-int(nbytes) // int(np.prod(IMAGE)))
    target = zarr.open_array(str(path), mode="w", shape=(count,) + IMAGE, dtype=np.uint8,
                             chunks=(chunk_images,) + IMAGE)
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:IMAGE[0], 0:IMAGE[1]].astype(np.float32) / IMAGE[0]
    blob = np.exp(-((rows - 0.5) ** 2 + (cols - 0.5) ** 2) * 8).astype(np.float32)
    for start in range(0, count, chunk_images):
        stop = min(start + chunk_images, count)
        n = stop - start
        low = rng.integers(40, 110, (n, 1, 1)).astype(np.float32)
        span = rng.integers(20, 70, (n, 1, 1)).astype(np.float32)
        noise = rng.integers(0, 6, (n,) + IMAGE).astype(np.float32)
        images = low + span * (0.4 * rows + 0.6 * blob) + noise
        target[start:stop] = images.astype(np.uint8)
    return count


class WorkerMemory:
    """Peak resident memory of each worker, sampled on a thread while the block runs."""

    def __init__(self, client, interval=0.2):
        self.client, self.interval, self.peak = client, interval, {}

    @staticmethod
    def _rss():
        import psutil
        return psutil.Process().memory_info().rss

    @contextlib.contextmanager
    def sample(self):
        self.peak, stop = {}, threading.Event()

        def poll():
            while not stop.is_set():
                with contextlib.suppress(Exception):
                    for worker, rss in self.client.run(self._rss).items():
                        self.peak[worker] = max(self.peak.get(worker, 0), rss)
                stop.wait(self.interval)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()


def spilled(client):
    """Bytes written to disk by all workers so far (cumulative)."""
    def written(dask_worker):
        return dask_worker.data.cumulative_metrics.get(("disk-write", "bytes"), 0)
    return sum(client.run(written).values())


def size(nbytes):
    """``0 B``, ``3.3 KiB``, ``1320 MiB``: small spills stay visible."""
    if nbytes < 2**20:
        return f"{nbytes / 2**10:.1f} KiB" if nbytes else "0 B"
    return f"{nbytes / 2**20:.0f} MiB"


#: The source tree of this benchmark: the gpu_histeq that the CLI runs unless told otherwise.
TREE = Path(__file__).resolve().parents[1]


def run_cli(argv, tree=TREE):
    """Seconds and peak RSS (bytes) of ``python -m gpu_histeq.cli *argv`` in a subprocess that
    imports the gpu_histeq of source `tree` (first on its path, and run from elsewhere: with
    ``-m`` the current directory would come first: it runs in the input's folder).

    The peak is the child's ``VmHWM`` (its own address space's high-water mark), polled every
    0.05 s until it exits: ``ru_maxrss`` would also count this process's pages at the fork.
    """
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(tree)] + env.get("PYTHONPATH", "").split(os.pathsep))
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "gpu_histeq.cli", *map(str, argv)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                               cwd=Path(argv[1]).resolve().parent)
    status, peak = Path(f"/proc/{process.pid}/status"), 0
    while process.poll() is None:
        with contextlib.suppress(OSError):  # gone meanwhile
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):  # absent once the process has exited
                    peak = max(peak, int(line.split()[1]) * 1024)
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    err = process.stderr.read().decode()
    process.stderr.close()
    if process.returncode:
        raise RuntimeError(f"gpu-histeq failed: {err}")
    return seconds, peak


def check_per_image(zarr, source, result, step):
    src, out = zarr.open_array(str(source)), zarr.open_array(str(result))
    for start in range(0, src.shape[0], step):
        stop = min(start + step, src.shape[0])
        if not np.array_equal(out[start:stop], equalize_hist(src[start:stop])):
            raise AssertionError(f"{result}: images {start}:{stop} differ from the in-memory call")


def check_equal(zarr, result, expected, step):
    out = zarr.open_array(str(result))
    for start in range(0, out.shape[0], step):
        if not np.array_equal(out[start:start + step], expected[start:start + step]):
            raise AssertionError(f"{result}: images {start}:{start + step} differ")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gb", type=float, default=1.2, help="dataset size in GB (1e9 bytes)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="256MiB")
    parser.add_argument("--chunk-images", type=int, default=1000)
    parser.add_argument("--holding", action="store_true",
                        help="also run the dataset-wide graph as built before issue 25")
    parser.add_argument("--cli-before", metavar="TREE",
                        help="also run the CLI rows with the gpu_histeq of this source tree "
                             "(e.g. an export of the main branch with its built extension)")
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--results", default="benchmarks/results/scale.md")
    args = parser.parse_args()

    import dask
    import dask.array as da
    import zarr
    from dask.distributed import Client, LocalCluster
    from dask.utils import parse_bytes

    from gpu_histeq._interop import dask as dask_interop

    folder = Path(args.dir) / f"bench_scale_{os.getpid()}"
    folder.mkdir(parents=True)
    load_before = os.getloadavg()
    try:
        source = folder / "src.zarr"
        count = make_dataset(zarr, source, args.gb * 1e9, args.chunk_images)
        nbytes = count * int(np.prod(IMAGE))
        stored = sum(f.stat().st_size for f in source.rglob("*") if f.is_file())
        limit = parse_bytes(args.memory_limit)
        if nbytes <= limit * args.workers:
            print(f"warning: {nbytes} bytes fit in the cluster's {limit * args.workers}",
                  file=sys.stderr)

        def out(name):
            path = folder / f"{name}.zarr"
            shutil.rmtree(path, ignore_errors=True)
            return path

        rows = []
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          memory_limit=args.memory_limit,
                          dashboard_address="127.0.0.1:0") as cluster, \
                Client(cluster) as client:
            memory = WorkerMemory(client)
            # warm-up: imports and the compiled path in every worker, the dataset's pages
            equalize_hist(da.from_zarr(str(source))[:args.workers * args.chunk_images]
                          ).to_zarr(str(out("warm-up")))

            def on_cluster(label, build, name):
                before = spilled(client)
                os.sync()  # no write-back of an earlier run (or of the dataset) in this one
                with memory.sample():
                    start = time.perf_counter()
                    build(da.from_zarr(str(source))).to_zarr(str(out(name)))
                    seconds = time.perf_counter() - start
                rows.append((label, seconds, max(memory.peak.values()),
                             spilled(client) - before))
                print(rows[-1], flush=True)

            on_cluster("raw copy `da.from_zarr(src).to_zarr(dst)`", lambda x: x, "copy")
            on_cluster("per image `equalize_hist(x).to_zarr(dst)`", equalize_hist, "per_image")
            on_cluster("dataset-wide `equalize_hist(x, axes=(0, 1, 2))`",
                       lambda x: equalize_hist(x, axes=(0, 1, 2)), "dataset")
            if args.holding:
                with mock.patch.object(dask_interop, "_read_again",
                                       lambda images, mask, after: (images, mask)):
                    on_cluster("dataset-wide, graph as before issue 25 (remap reuses the "
                               "histogram's chunks)", lambda x: equalize_hist(x, axes=(0, 1, 2)),
                               "holding")
            on_cluster("raw copy again (the ratios divide by the mean of both copies)",
                       lambda x: x, "copy")
        trees = [(TREE, "")] + ([(Path(args.cli_before).resolve(), ", before (`--cli-before`)")]
                                if args.cli_before else [])
        for tree, suffix in trees:
            for label, argv, name in [
                    ("CLI `gpu-histeq equalize src.zarr -o out.zarr`", [], "cli"),
                    ("CLI `... --axes=all`", ["--axes", "all"], "cli_all")]:
                name += "_before" if suffix else ""
                os.sync()
                seconds, peak = run_cli(["equalize", source, "-o", out(name), "-q", *argv],
                                        tree)
                rows.append((label + suffix, seconds, peak, None))
                print(rows[-1], flush=True)
        load_after = os.getloadavg()

        before = ["_before"] if args.cli_before else []
        for name in ["per_image", "cli"] + ["cli" + b for b in before]:
            check_per_image(zarr, source, folder / f"{name}.zarr", 10 * args.chunk_images)
        expected = equalize_hist(zarr.open_array(str(source))[:], axes=(0, 1, 2))
        for name in (["dataset", "cli_all"] + (["holding"] if args.holding else [])
                     + ["cli_all" + b for b in before]):
            check_equal(zarr, folder / f"{name}.zarr", expected, 10 * args.chunk_images)
        del expected
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    copies = [seconds for label, seconds, _, _ in rows if label.startswith("raw copy")]
    copy = sum(copies) / len(copies)
    command = "python benchmarks/bench_scale.py " + " ".join(sys.argv[1:])
    lines = [
        "# Scale: a zarr dataset larger than the Dask cluster's memory",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Data: `({count}, 96, 96)` uint8 zarr, {nbytes / 1e9:.2f} GB ({stored / 1e9:.2f} GB "
        f"stored, zstd), chunks of {args.chunk_images} images "
        f"({args.chunk_images * 9216 / 2**20:.0f} MiB). Cluster: "
        f"`LocalCluster({args.workers} worker processes x 1 thread, "
        f"memory_limit={args.memory_limit!r})`, {args.workers * limit / 2**30:.2f} GiB in all, "
        f"Dask's default spill thresholds; the CLI runs as a subprocess on all cores. Machine: "
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, NumPy {np.__version__}, Dask {dask.__version__}, "
        f"zarr {zarr.__version__}, gpu_histeq {gpu_histeq.__version__}, device: CPU. "
        f"Load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after: the "
        "machine was shared, so the ratios (same time slot) matter more than the seconds. "
        "One run each; every output equals the in-memory API bit for bit (checked).",
        "",
        "| run | seconds | vs raw copy (mean) | peak memory (worker / CLI process) | spilled |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, seconds, peak, spill in rows:
        lines.append(f"| {label} | {seconds:.1f} | {seconds / copy:.2f}x | "
                     f"{peak / 2**20:.0f} MiB | {'-' if spill is None else size(spill)} |")
    lines.append("")
    text = "\n".join(lines)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
