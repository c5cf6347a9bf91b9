"""Dask past one machine's memory: the dataset-wide path reads its input again instead of holding
it, and chunk layouts that split images are rechunked to whole images of Dask's chunk size.

The spill test runs a real ``dask.distributed`` worker (in this process, so its spill buffer can
be read) with a memory limit far below the dataset: its managed-memory threshold (``target``)
moves results to disk as soon as more than a few chunks are held, so "nothing spilled" means
"a few chunks at a time". A control graph that keeps every chunk until a reduction is complete
spills under the same limit, which shows the test can fail.
"""

import collections

import numpy as np
import pytest

import gpu_histeq as gh

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")
zarr = pytest.importorskip("zarr")

RNG = np.random.default_rng(25)
#: 32 MiB in 128 chunks of 256 KiB; the worker may hold 0.6 x 8 MiB (about 19 chunks)
DATASET = RNG.integers(3, 200, (2048, 128, 128), dtype=np.uint8)
CHUNKS = (16, 128, 128)
MEMORY = {"distributed.worker.memory.target": 0.6,  # managed memory (sizeof of held results)
          "distributed.worker.memory.spill": False,  # process memory: this whole pytest process
          "distributed.worker.memory.pause": False,
          "distributed.worker.memory.terminate": False}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("scale") / "images.zarr"
    target = zarr.open_array(str(path), mode="w", shape=DATASET.shape, chunks=CHUNKS,
                             dtype=DATASET.dtype)
    target[:] = DATASET
    return path


def _spilled(build, source, out):
    """Bytes the worker wrote to disk while storing ``build(da.from_zarr(source))`` in `out`."""
    with dask.config.set(MEMORY), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                     memory_limit="8MiB",
                                     dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster):
        build(da.from_zarr(str(source))).to_zarr(str(out))
        (worker,) = cluster.workers.values()
        return worker.data.cumulative_metrics.get(("disk-write", "bytes"), 0)


def test_dataset_wide_spills_nothing(dataset, tmp_path):
    """(``method="skimage"``, whose float64 result is 8 times the input, reads its input three
    times: see the test below.)"""
    spilled = _spilled(lambda x: gh.equalize_hist(x, axes=(0, 1, 2)), dataset,
                       tmp_path / "out.zarr")
    assert spilled == 0
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"))[:],
                                  gh.equalize_hist(DATASET, axes=(0, 1, 2)))


def _held_until_reduced(images):
    """The layout the dataset-wide path must avoid: one set of chunks feeds a reduction and
    then a blockwise step that waits for it."""
    total = images.sum(dtype=np.int64)
    return da.map_blocks(lambda chunk, total: chunk + np.uint8(total % 2), images, total,
                         dtype=images.dtype)


def test_control_holding_every_chunk_spills(dataset, tmp_path):
    spilled = _spilled(_held_until_reduced, dataset, tmp_path / "out.zarr")
    assert spilled > DATASET.nbytes // 2  # most of the dataset went to disk


READS = collections.Counter()


def _counted(block, block_info=None):
    READS[block_info[0]["chunk-location"]] += 1
    return block


@pytest.mark.parametrize("method, mask, passes", [
    ("opencv", None, 2), ("pil", None, 2), ("skimage", None, 3),
    ("skimage", RNG.random((16, 12)) > 0.3, 3)])
def test_each_pass_reads_the_input_again(method, mask, passes):
    """Every input chunk is computed once per pass (ranges, counts, remap): nothing is kept."""
    images = RNG.integers(0, 256, (10, 16, 12), dtype=np.uint8)
    lazy = da.from_array(images, chunks=(2, 8, 12)).map_blocks(_counted, dtype=images.dtype)
    READS.clear()
    result = gh.equalize_hist(lazy, axes=(0, 1, 2), method=method, mask=mask)
    assert not READS  # still lazy
    got = result.compute(scheduler="sync")
    assert dict(READS) == {(i, j, 0): passes for i in range(5) for j in range(2)}
    np.testing.assert_array_equal(got, gh.equalize_hist(images, axes=(0, 1, 2), method=method,
                                                        mask=mask))


def test_remap_reads_a_clone_bound_to_the_histogram():
    images = da.from_array(RNG.integers(0, 256, (8, 16, 16), dtype=np.uint8), chunks=(2, 16, 16))
    result = gh.equalize_hist(images, axes=(0, 1, 2))
    graph = dict(result.__dask_graph__())
    getters = [key for key in graph if isinstance(key, tuple) and "array-" in key[0]
               and key[0] != images.name]
    assert images.name in {key[0] for key in graph if isinstance(key, tuple)}  # histogram pass
    assert len(getters) == images.npartitions  # the remap's own copies of the input chunks
    dependencies = dask.core.get_dependencies(graph, getters[0])
    assert any("checkpoint" in str(key) for key in dependencies)  # ...wait for the histogram


def test_split_images_are_rechunked_to_dask_chunk_size():
    images = RNG.integers(0, 256, (300, 32, 32), dtype=np.uint8)
    lazy = da.from_array(images, chunks=(1, 16, 16))  # 1,200 chunks, each a quarter image
    with dask.config.set({"array.chunk-size": "64KiB"}):
        result = gh.equalize_hist(lazy)
        adaptive = gh.clahe(lazy, 2.0, (2, 2))
    assert result.chunks == ((64,) * 4 + (44,), (32,), (32,))  # 64 images of 1 KiB per chunk
    assert adaptive.chunks == result.chunks
    np.testing.assert_array_equal(result.compute(scheduler="sync"), gh.equalize_hist(images))
    np.testing.assert_array_equal(adaptive.compute(scheduler="sync"),
                                  gh.clahe(images, 2.0, (2, 2)))


def test_tall_thin_chunks_become_large_chunks():
    images = RNG.integers(0, 256, (2000, 16, 16), dtype=np.uint8)
    lazy = da.from_array(images, chunks=(1000, 4, 4))
    with dask.config.set({"array.chunk-size": "1MiB"}):
        result = gh.equalize_hist(lazy)
    assert result.chunks == ((2000,), (16,), (16,))  # not 1,000 images of 16 bytes per chunk
    np.testing.assert_array_equal(result.compute(scheduler="sync"), gh.equalize_hist(images))


def test_images_larger_than_a_chunk_warn_and_take_two_passes():
    images = RNG.integers(0, 256, (4, 64, 64), dtype=np.uint8)
    lazy = da.from_array(images, chunks=(1, 32, 32))
    with dask.config.set({"array.chunk-size": "2KiB"}), \
            pytest.warns(da.PerformanceWarning, match=r"split images of 4096 bytes.*16 chunks"):
        result = gh.equalize_hist(lazy)
    assert result.chunks == lazy.chunks
    np.testing.assert_array_equal(result.compute(scheduler="sync"), gh.equalize_hist(images))


def test_whole_image_chunks_and_dataset_wide_do_not_warn():
    images = RNG.integers(0, 256, (4, 64, 64), dtype=np.uint8)
    with dask.config.set({"array.chunk-size": "2KiB"}):  # warnings are errors here
        per_image = gh.equalize_hist(da.from_array(images, chunks=(1, 64, 64)))
        dataset = gh.equalize_hist(da.from_array(images, chunks=(1, 32, 32)), axes=(0, 1, 2))
    assert per_image.chunks == ((1,) * 4, (64,), (64,))
    np.testing.assert_array_equal(dataset.compute(scheduler="sync"),
                                  gh.equalize_hist(images, axes=(0, 1, 2)))
