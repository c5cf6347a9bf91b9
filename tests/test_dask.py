"""Dask arrays: lazy in, lazy out, equal bit for bit to the in-memory functions.

The full matrix of dtypes, methods, chunkings, axes and masks runs on the synchronous scheduler
(the tasks are the same functions, minus the transport); a representative set runs on a real
``dask.distributed.LocalCluster`` with worker processes on the loopback interface (one cluster
for the module); the backend test runs every chunk type (NumPy, CuPy when a GPU is usable).
"""

import numpy as np
import pytest

import gpu_histeq as gh

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")

from conftest import assert_backend, to_numpy  # noqa: E402

RNG = np.random.default_rng(5)
SHAPE = (6, 2, 16, 12)
UINT8 = RNG.integers(40, 170, SHAPE, dtype=np.uint8)
FLOAT32 = RNG.normal(size=SHAPE).astype(np.float32)
INT16 = (RNG.integers(-300, 300, SHAPE)).astype(np.int16)
UINT16 = RNG.integers(1000, 5000, SHAPE, dtype=np.uint16)
MASK = RNG.random(SHAPE[-2:]) > 0.25

#: chunks that keep images whole, split them (rechunked whole), and split them into pieces
#: smaller than one image (two passes over the chunks as they are)
CHUNKS = {"whole": (4, 2, 16, 12), "split": (4, 1, 8, 6), "pieces": (3, 1, 8, 12)}
#: a chunk limit below every chunk here, so the input's own chunks decide between rechunking
#: whole images and two passes (as Dask's default 128 MiB does for chunks of that size)
INPUT_CHUNKS_DECIDE = {"array.chunk-size": "1B"}
#: per-image, per-channel over the dataset, everything at once, an odd choice of image axes
AXES = {"images": (-2, -1), "channel": (0, 2, 3), "dataset": (0, 1, 2, 3), "odd": (1, 3)}


@pytest.fixture(scope="module")
def client():
    # the dashboard (and Dask's HTTP routes) on a free port: 8787 may be another user's
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster) as client:
        yield client


def _cases():
    for images, method in ((UINT8, "opencv"), (UINT8, "pil"), (FLOAT32, "skimage"),
                           (INT16, "skimage"), (UINT16, "opencv")):
        yield pytest.param(images, method, id=f"{images.dtype}-{method}")


@pytest.mark.parametrize("images, method", list(_cases()))
@pytest.mark.parametrize("chunks", CHUNKS.values(), ids=CHUNKS.keys())
def test_equalize_equals_in_memory(images, method, chunks):
    lazy = da.from_array(images, chunks=chunks)
    futures = {}
    with dask.config.set(INPUT_CHUNKS_DECIDE):
        for name, axes in AXES.items():
            for masked in (False, True):
                mask = None
                if masked:
                    mask = MASK if axes != (1, 3) else np.broadcast_to(MASK, images.shape)
                result = gh.equalize_hist(lazy, axes=axes, mask=mask, method=method)
                assert isinstance(result, da.Array)
                futures[name, masked] = (result, gh.equalize_hist(images, axes=axes, mask=mask,
                                                                   method=method))
    computed = dask.compute(*[lazy for lazy, _ in futures.values()], scheduler="sync")
    for (key, (_, expected)), got in zip(futures.items(), computed):
        assert got.dtype == expected.dtype, key
        np.testing.assert_array_equal(got, expected, err_msg=str(key))


@pytest.mark.parametrize("function", [gh.histogram, gh.cumulative_distribution])
@pytest.mark.parametrize("images", [UINT8, FLOAT32, INT16], ids=["uint8", "float32", "int16"])
def test_histogram_and_cdf_equal_in_memory(function, images):
    lazy = da.from_array(images, chunks=CHUNKS["pieces"])
    pending, expected = [], []
    for axes in AXES.values():
        for mask in (None, np.broadcast_to(MASK, images.shape)):
            pending.extend(function(lazy, axes=axes, mask=mask))
            expected.extend(function(images, axes=axes, mask=mask))
    for got, want in zip(dask.compute(*pending, scheduler="sync"), expected):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_apply_lut_per_plane_and_shared():
    lazy = da.from_array(UINT8, chunks=CHUNKS["split"])
    per_plane = RNG.integers(0, 10_000, SHAPE[:2] + (256,))
    shared = RNG.random(256)
    got = dask.compute(gh.apply_lut(lazy, per_plane), gh.apply_lut(lazy, shared),
                       gh.apply_lut(lazy, da.from_array(per_plane, chunks=(3, 1, 256))),
                       scheduler="sync")
    np.testing.assert_array_equal(got[0], gh.apply_lut(UINT8, per_plane))
    np.testing.assert_array_equal(got[1], gh.apply_lut(UINT8, shared))
    np.testing.assert_array_equal(got[2], gh.apply_lut(UINT8, per_plane))


def test_on_a_cluster(client):
    """Worker processes run every kind of task: whole images, two passes, reductions, tables."""
    mask = np.broadcast_to(MASK, SHAPE)
    cases = [
        (gh.equalize_hist, UINT8, dict(), "split"),
        (gh.equalize_hist, UINT8, dict(axes=(0, 2, 3), mask=MASK), "pieces"),
        (gh.equalize_hist, FLOAT32, dict(axes=(0, 1, 2, 3), mask=mask), "pieces"),
        (gh.equalize_hist, INT16, dict(axes=(1, 3)), "pieces"),
        (gh.equalize_hist, UINT8, dict(method="pil"), "pieces"),
        (gh.histogram, INT16, dict(mask=mask), "pieces"),
        (gh.cumulative_distribution, FLOAT32, dict(axes=(0, 2, 3)), "pieces"),
        (gh.apply_lut, UINT8, dict(lut=RNG.random(256)), "split"),
    ]
    pending, expected = [], []
    for function, images, kwargs, chunks in cases:
        with dask.config.set(INPUT_CHUNKS_DECIDE):
            lazy = function(da.from_array(images, chunks=CHUNKS[chunks]), **kwargs)
        pending.append(lazy)
        expected.append(function(images, **kwargs))
    assert dask.base.get_scheduler() == client.get  # the cluster computes, not a local pool
    for got, want in zip(dask.compute(*pending), expected):
        got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
        for part, wanted in zip(got, want):
            assert part.dtype == wanted.dtype
            np.testing.assert_array_equal(part, wanted)


def test_dataset_wide_is_a_tree_reduction_then_one_table(client):
    images = RNG.integers(0, 256, (64, 16, 16), dtype=np.uint8)
    lazy = da.from_array(images, chunks=(2, 16, 16))  # 32 chunks: several reduction levels
    result = gh.equalize_hist(lazy, axes=(0, 1, 2))
    assert result.chunks == lazy.chunks  # applied blockwise, no rechunk
    layers = result.__dask_graph__().layers
    assert sum("sum" in name for name in layers) >= 2  # the tree's partial sums
    np.testing.assert_array_equal(result.compute(), gh.equalize_hist(images, axes=(0, 1, 2)))


def test_lazy_until_computed():
    def fail():
        raise RuntimeError("computed too early")

    pixels = da.from_delayed(dask.delayed(fail)(), shape=(4, 8, 8), dtype=np.uint8)
    for axes in ((-2, -1), (0, 1, 2)):
        result = gh.equalize_hist(pixels, axes=axes)  # builds the graph only
        counts, centers = gh.histogram(pixels.astype(np.float32), axes=axes)
        with pytest.raises(RuntimeError, match="computed too early"):
            result.compute(scheduler="sync")
        with pytest.raises(RuntimeError, match="computed too early"):
            counts.compute(scheduler="sync")


@pytest.mark.parametrize("call, error, match", [
    (lambda x: gh.equalize_hist(x.astype(bool)), TypeError, "`images` must have an integer"),
    (lambda x: gh.equalize_hist(x, axes=(5,)), ValueError, "`axes`"),
    (lambda x: gh.equalize_hist(x, method="pil", nbins=3), ValueError, "`nbins`"),
    (lambda x: gh.equalize_hist(x, method="nope"), ValueError, "`method`"),
    (lambda x: gh.equalize_hist(x, out=np.empty(x.shape, x.dtype)), TypeError, "`out`"),
    (lambda x: gh.equalize_hist(x, mask=np.ones((3, 3), bool)), ValueError, "`mask`"),
    (lambda x: gh.equalize_hist(x, mask=np.ones(x.shape, np.uint8)), TypeError, "`mask`"),
    (lambda x: gh.apply_lut(x, np.zeros((2, 256))), ValueError, "`lut`"),
    (lambda x: gh.histogram(x, nbins=0), ValueError, "`nbins`"),
])
def test_bad_arguments_fail_at_once(call, error, match):
    with pytest.raises(error, match=match):
        call(da.from_array(UINT8[:, 0], chunks=(2, 8, 6)))


@pytest.mark.parametrize("chunks", [(2, 8, 6), (6, 16, 12)])
def test_data_errors_surface_at_compute(chunks):
    bad = FLOAT32[:, 0].copy()
    bad[3, 4, 5] = np.nan
    result = gh.equalize_hist(da.from_array(bad, chunks=chunks), axes=(0, 1, 2))
    with pytest.raises(ValueError, match="NaN"):
        result.compute(scheduler="sync")
    mask = np.ones(bad.shape, bool)
    mask[2] = False
    lazy = gh.equalize_hist(da.from_array(UINT8[:, 0], chunks=chunks), mask=mask)
    with pytest.raises(ValueError, match="`mask` selects no pixel"):
        lazy.compute(scheduler="sync")


def test_empty_batch():
    empty = da.from_array(np.zeros((0, 3, 8, 8), np.uint8), chunks=(1, 1, 8, 8))
    result = gh.equalize_hist(empty)
    assert isinstance(result, da.Array) and result.shape == (0, 3, 8, 8)
    assert result.compute().dtype == np.uint8


@pytest.mark.parametrize("axes", [(-2, -1), (0, 1, 2)])
def test_chunk_backend_is_kept(xp, axes):
    images = xp.asarray(UINT8[:, 0])
    lazy = da.from_array(images, chunks=(3, 8, 12), asarray=False)
    result = gh.equalize_hist(lazy, axes=axes)
    assert type(result._meta) is xp.ndarray
    computed = result.compute(scheduler="sync")
    assert_backend(computed, xp)
    np.testing.assert_array_equal(to_numpy(computed), gh.equalize_hist(UINT8[:, 0], axes=axes))


def test_clahe_adapthist_and_matching_map_whole_images():
    """Per-image operations: chunks rechunked to whole images, then the in-memory function.

    Called through ``gpu_histeq._interop.dask`` (the public functions route dask arrays there once
    their modules have the two-line hook).
    """
    from gpu_histeq._interop import dask as _dask

    lazy = da.from_array(UINT8, chunks=CHUNKS["split"])
    reference = RNG.integers(0, 256, (9, 7), dtype=np.uint8)
    per_image = RNG.integers(0, 256, (6, 1, 9, 7), dtype=np.uint8)
    cases = []
    if hasattr(gh, "clahe"):
        cases.append((_dask.clahe(lazy, 2.0, (2, 2)), gh.clahe(UINT8, 2.0, (2, 2))))
    if hasattr(gh, "equalize_adapthist"):
        cases.append((_dask.equalize_adapthist(lazy, kernel_size=8),
                      gh.equalize_adapthist(UINT8, kernel_size=8)))
    if hasattr(gh, "match_histograms"):
        cases.append((_dask.match_histograms(lazy, reference), gh.match_histograms(UINT8, reference)))
        cases.append((_dask.match_histograms(lazy, da.from_array(per_image, chunks=(2, 1, 9, 7))),
                      gh.match_histograms(UINT8, per_image)))
    if not cases:
        pytest.skip("no CLAHE / matching in this gpu_histeq")
    computed = dask.compute(*[lazy for lazy, _ in cases], scheduler="sync")
    for (result, expected), got in zip(cases, computed):
        assert isinstance(result, da.Array) and result.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_one_image_without_batch_axes_has_its_result_type():
    """One ``(H, W)`` image (or ``(H, W, 3)`` with `channel_axis`) has no batch axis to empty for
    the result's type: the graph gets it from zero-size planes. ``match_histograms`` raised
    dask's "You must specify the meta or dtype" here; now every per-image function builds its
    graph with the in-memory result's dtype and computes the in-memory result."""
    image = UINT8[0, 0]
    lazy = da.from_array(image, chunks=(8, 6))  # one image split over four chunks
    reference = RNG.integers(0, 256, (9, 7), dtype=np.uint8)
    colour = RNG.random((16, 12, 3)).astype(np.float32)
    colour_reference = RNG.random((5, 8, 3)).astype(np.float32)
    cases = [
        (gh.match_histograms(lazy, reference), gh.match_histograms(image, reference)),
        (gh.match_histograms(lazy, da.from_array(reference, chunks=(5, 4))),
         gh.match_histograms(image, reference)),
        (gh.match_histograms(da.from_array(colour, chunks=(8, 12, 2)), colour_reference,
                             channel_axis=-1),
         gh.match_histograms(colour, colour_reference, channel_axis=-1)),
        (gh.clahe(lazy, 2.0, (2, 2)), gh.clahe(image, 2.0, (2, 2))),
        (gh.equalize_adapthist(lazy, kernel_size=8), gh.equalize_adapthist(image, kernel_size=8)),
    ]
    assert [expected.dtype for _, expected in cases] == [np.float64, np.float64, np.float32,
                                                         np.uint8, np.float64]
    computed = dask.compute(*[result for result, _ in cases], scheduler="sync")
    for (result, expected), got in zip(cases, computed):
        assert isinstance(result, da.Array) and result.dtype == expected.dtype
        assert type(result._meta) is np.ndarray and result._meta.dtype == expected.dtype
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


def test_adaptive_and_matching_public_functions_accept_dask_and_torch():
    """clahe, equalize_adapthist and match_histograms route dask arrays and tensors too."""
    import gpu_histeq
    images = np.random.default_rng(21).integers(0, 256, (6, 40, 40), dtype=np.uint8)
    lazy = da.from_array(images, chunks=(2, 40, 40))
    for name, args in [("clahe", ()), ("equalize_adapthist", ()), ("match_histograms", (images[0],))]:
        function = getattr(gpu_histeq, name)
        result = function(lazy, *args)
        assert isinstance(result, da.Array)
        np.testing.assert_array_equal(result.compute(scheduler="synchronous"), function(images, *args))
    torch = pytest.importorskip("torch")
    tensor = gpu_histeq.clahe(torch.from_numpy(images))
    assert isinstance(tensor, torch.Tensor)
    np.testing.assert_array_equal(tensor.numpy(), gpu_histeq.clahe(images))
