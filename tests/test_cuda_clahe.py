"""CLAHE on CUDA (``gpu_histeq/_cuda/clahe.cu``) equals the portable path bit for bit, and cv2.

Every case runs :func:`gpu_histeq.clahe` on CuPy planes twice: through the CUDA kernels (the
default for CuPy input) and inside :func:`gpu_histeq._engine.portable`, and compares the bytes;
on the emulated CuPy it also checks which kernels were launched (the one-launch kernel of small
uint8 planes, that of small uint16 planes -- no 65536-entry table --, or the tile tables and the
blend) and that the portable tile counting was not reached. A few cases are also compared with
``cv2.createCLAHE`` directly.
"""

import numpy as np
import pytest

from conftest import is_emulated
from gpu_histeq import _engine, adaptive, clahe, equalize_hist

cv2 = pytest.importorskip("cv2")

#: The kernels of each CUDA path: one launch per plane batch ("small": uint8 tables in shared
#: memory, or uint16 sorted tiles, no 65536-entry table), uint16 tiles sorted one block each and a
#: blend by binary search ("tiles"), tile tables and their blend ("tiled").
PATHS = {"small": ("gpu_histeq_clahe_small", "gpu_histeq_clahe_ranked"),
         "tiles": ("gpu_histeq_clahe_rank_tiles", "gpu_histeq_clahe_ranked_blend"),
         "tiled": ("gpu_histeq_clahe_tables", "gpu_histeq_clahe_blend")}


def launches(cp):
    """Launches of each CLAHE kernel so far on the emulated CuPy (None on a real GPU)."""
    if not is_emulated(cp):
        return None
    counts = {k: 0 for names in PATHS.values() for k in names}
    for name, n in cp.LAUNCHES.items():
        if name.split("<")[0] in counts:
            counts[name.split("<")[0]] += n
    return counts


def run_cuda(cp, monkeypatch, images, *args, path=None, **kwargs):
    """clahe() on the kernels: the portable tile count must not run, the kernels of one path
    must (of `path` when given; uint8 planes have no "tiles" path and take "tiled")."""
    def refuse(*_, **__):
        raise AssertionError("the portable CLAHE path ran instead of the CUDA kernels")

    before = launches(cp)
    with monkeypatch.context() as patch:
        patch.setattr(adaptive, "count_tiles", refuse)
        out = clahe(images, *args, **kwargs)
    after = launches(cp)
    if after is not None:
        ran = {k: after[k] - before[k] for k in after}
        taken = [p for p, names in PATHS.items() if any(ran[k] for k in names)]
        assert len(taken) == 1, ran
        first, second = PATHS[taken[0]]
        if taken[0] == "small":  # the dtype's own one-launch kernel
            assert ran[first if images.dtype == np.uint8 else second] > 0, ran
        else:
            assert ran[first] == ran[second] > 0, ran
        if path is not None:
            assert taken[0] == ("tiled" if path == "tiles" and images.dtype == np.uint8
                                else path), ran
    return out


@pytest.fixture(params=["small", "tiles", "tiled"])
def path(request, monkeypatch):
    """Which CUDA path planes take: small planes one launch; others (forced here for every
    plane) the sorted tiles (uint16 tiles of at most 16384 pixels) or the tile tables."""
    from gpu_histeq._cuda import _clahe
    if request.param != "small":
        monkeypatch.setattr(_clahe, "SMALL_PIXELS", 0)
        monkeypatch.setattr(_clahe, "RANKED_BYTES", 0)
    if request.param == "tiled":
        monkeypatch.setattr(_clahe, "TILE_SORT_BYTES", 0)
    return request.param


def run_portable(images, *args, **kwargs):
    with _engine.portable():
        return clahe(images, *args, **kwargs)


def assert_same(result, expected):
    result, expected = result.get(), expected.get()
    assert result.dtype == expected.dtype and result.shape == expected.shape
    mismatch = np.flatnonzero(result.ravel() != expected.ravel())
    assert mismatch.size == 0, f"{mismatch.size} pixels differ, first at {mismatch[:5]}"


def make(dtype, kind, shape, seed=0):
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    values = {"random": lambda: rng.integers(0, top, shape, endpoint=True),
              "narrow": lambda: rng.integers(top // 3, top // 3 + 40, shape),
              "constant": lambda: np.full(shape, top // 5),
              "extremes": lambda: rng.choice([0, top], shape),
              "gradient": lambda: np.broadcast_to(
                  (np.arange(shape[-1]) * top // max(shape[-1] - 1, 1)), shape)}[kind]()
    return np.ascontiguousarray(values, dtype=dtype)


#: (shape, clip, grid): 1x1 planes, tiles of one pixel, one tile per plane, grids that do not
#: divide the image (OpenCV pads both axes), grids larger than the image, clip 0 and huge clips.
GEOMETRIES = [
    ((3, 1, 1), 2.0, (1, 1)),
    ((2, 1, 1), 2.0, (8, 8)),
    ((2, 8, 8), 2.0, (8, 8)),
    ((2, 64, 48), 3.0, (1, 1)),
    ((3, 97, 61), 2.0, (8, 8)),
    ((2, 45, 70), 0.0, (3, 5)),
    ((2, 5, 3), 1.0, (7, 9)),
    ((1, 33, 130), 40.0, (2, 16)),
    ((2, 96, 96), 0.01, (4, 4)),
]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("kind", ["random", "narrow", "constant", "extremes", "gradient"])
@pytest.mark.parametrize("shape, clip, grid", GEOMETRIES)
def test_kernels_equal_portable_path(cp, monkeypatch, path, dtype, kind, shape, clip, grid):
    if dtype == np.uint8 and path == "tiles":
        pytest.skip("uint8 planes have no sorted-tiles path (the tiled case runs them)")
    host = make(dtype, kind, shape)
    images = cp.asarray(host)
    result = run_cuda(cp, monkeypatch, images, clip, grid, path=path)
    assert_same(result, run_portable(images, clip, grid))
    np.testing.assert_array_equal(host, images.get())  # input untouched


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape, clip, grid", [((2, 97, 61), 2.0, (8, 8)), ((3, 1, 1), 2.0, (3, 3)),
                                              ((1, 50, 40), 0.0, (2, 3)), ((2, 20, 20), 4.0, (5, 5))])
def test_kernels_equal_cv2(cp, monkeypatch, path, dtype, shape, clip, grid):
    host = make(dtype, "random", shape, seed=3)
    result = run_cuda(cp, monkeypatch, cp.asarray(host), clip, grid).get()
    expected = np.stack([cv2.createCLAHE(clip, grid).apply(plane) for plane in host])
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("path, scratch, kernel", [
    ("tiled", 64 * 65536 * 2, "gpu_histeq_clahe_tables"),  # one plane's 64 tables
    ("tiles", 64 * (4 * 25 + 16), "gpu_histeq_clahe_rank_tiles"),  # its entries and tile records
])
def test_planes_run_in_groups(cp, monkeypatch, path, scratch, kernel):
    """Tile tables, or uint16 sorted tiles, bound the planes per launch: with room for one
    plane's scratch, four planes take four launches of each kernel, and still equal cv2."""
    from gpu_histeq._cuda import _clahe
    monkeypatch.setattr(_clahe, "SCRATCH_BYTES", scratch)
    monkeypatch.setattr(_clahe, "RANKED_BYTES", 0)  # not one launch
    if path == "tiled":
        monkeypatch.setattr(_clahe, "TILE_SORT_BYTES", 0)
    host = make(np.uint16, "random", (4, 40, 40), seed=5)
    before = launches(cp)
    result = run_cuda(cp, monkeypatch, cp.asarray(host), 2.0, (8, 8), path=path).get()
    after = launches(cp)
    if after is not None:
        assert after[kernel] - before[kernel] == 4
    expected = np.stack([cv2.createCLAHE(2.0, (8, 8)).apply(plane) for plane in host])
    np.testing.assert_array_equal(result, expected)


def test_large_tile_grids_take_the_tiled_path(cp, monkeypatch):
    """More tiles than the shared tables hold (16 x 9 > 128), or planes over 65536 pixels: the
    tile tables and the blend, for uint8 too."""
    host = make(np.uint8, "random", (2, 40, 70), seed=13)
    images = cp.asarray(host)
    result = run_cuda(cp, monkeypatch, images, 2.0, (9, 16), path="tiled")
    assert_same(result, run_portable(images, 2.0, (9, 16)))
    host = make(np.uint8, "narrow", (1, 300, 230), seed=17)
    images = cp.asarray(host)
    result = run_cuda(cp, monkeypatch, images, 3.0, (8, 8), path="tiled")
    np.testing.assert_array_equal(result.get()[0], cv2.createCLAHE(3.0, (8, 8)).apply(host[0]))


def test_uint16_paths_by_size_equal_cv2(cp, monkeypatch):
    """uint16 planes whose tiles' sorted values fit the shared memory (_clahe.ranked_shared_bytes
    within RANKED_BYTES) take gpu_histeq_clahe_ranked alone: 96 x 96 with 8 x 8 tiles needs
    37.5 KiB. 120 x 120 (56.3 KiB) sorts each 225-pixel tile in its own block and blends by
    binary search; 8 x 8 tiles of 1080p (32400 pixels, 64 KiB of keys) take the tile tables.
    Each equals cv2, with clips that clip nothing, some values and almost every value."""
    from gpu_histeq._cuda import _clahe
    assert _clahe.ranked_shared_bytes((8, 8), (12, 12)) == (16 * 64 + 4 * 9216 + 2 * 256, 256)
    assert _clahe.ranked_shared_bytes((8, 8), (15, 15))[0] > _clahe.RANKED_BYTES
    cases = (((3, 96, 96), "small", (0.0, 2.0, 400.0)), ((1, 120, 120), "tiles", (0.0, 2.0, 400.0)),
             ((1, 1080, 1920), "tiled", (2.0,)))
    for seed, (shape, path, clips) in enumerate(cases):
        for kind in ("random", "narrow", "extremes"):
            host = make(np.uint16, kind, shape, seed=seed)
            for clip in clips:
                out = run_cuda(cp, monkeypatch, cp.asarray(host), clip, (8, 8), path=path).get()
                expected = np.stack([cv2.createCLAHE(clip, (8, 8)).apply(p) for p in host])
                np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("shape, wide", [((1, 255, 257), False), ((1, 256, 256), True)])
def test_uint16_tile_tables_count_in_16_bits_below_65536_pixels(cp, monkeypatch, shape, wide):
    """The tile tables of uint16 tiles under 65536 pixels hold their own counts (two 16-bit
    counts per 32-bit atomic: a constant 65535-pixel tile reaches 65535 without carrying);
    65536 pixels and more count in a uint32 scratch (the only allocation besides the tables)."""
    allocated = []
    if is_emulated(cp):
        original = cp.empty
        monkeypatch.setattr(cp, "empty", lambda *a, **k: allocated.append(a) or original(*a, **k))
    for kind in ("constant", "extremes", "random"):
        host = make(np.uint16, kind, shape, seed=4)
        for clip in (0.0, 2.0):
            out = run_cuda(cp, monkeypatch, cp.asarray(host), clip, (1, 1), path="tiled").get()
            np.testing.assert_array_equal(out[0], cv2.createCLAHE(clip, (1, 1)).apply(host[0]))
    if is_emulated(cp):
        scratch = [a for a in allocated if len(a) > 1 and np.dtype(a[1]) == np.uint32]
        assert bool(scratch) == wide, allocated


def test_channel_axis_and_luminance(cp, monkeypatch):
    """Channels are batch planes of the kernels; the luma of RGB goes through them as well."""
    host = make(np.uint8, "random", (2, 30, 41, 3), seed=7)
    images = cp.asarray(host)
    per_channel = run_cuda(cp, monkeypatch, images, 2.0, (4, 4), channel_axis=-1)
    assert_same(per_channel, run_portable(images, 2.0, (4, 4), channel_axis=-1))
    luma = run_cuda(cp, monkeypatch, images, 2.0, (4, 4), channel_axis=-1, luminance=True)
    assert_same(luma, run_portable(images, 2.0, (4, 4), channel_axis=-1, luminance=True))
    ycrcb = [cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb) for rgb in host]
    for y in ycrcb:
        y[..., 0] = cv2.createCLAHE(2.0, (4, 4)).apply(np.ascontiguousarray(y[..., 0]))
    expected = np.stack([cv2.cvtColor(y, cv2.COLOR_YCrCb2RGB) for y in ycrcb])
    np.testing.assert_array_equal(luma.get(), expected)


def test_non_contiguous_and_empty_input(cp, monkeypatch):
    """A strided view is copied into planes first (same result); an empty batch launches nothing."""
    host = make(np.uint8, "random", (3, 40, 50), seed=9)
    images = cp.asarray(host)[:, ::2, ::3]
    assert_same(run_cuda(cp, monkeypatch, images, 2.0, (3, 3)), run_portable(images, 2.0, (3, 3)))
    empty = cp.zeros((0, 16, 16), np.uint8)
    out = clahe(empty, 2.0, (4, 4))
    assert out.shape == (0, 16, 16) and out.dtype == np.uint8


@pytest.mark.parametrize("images, kwargs, error, match", [
    (np.zeros((2, 8, 8), np.int16), {}, TypeError, "uint8 or uint16"),
    (np.zeros((2, 8, 8), np.uint8), {"clip_limit": -1.0}, ValueError, "clip_limit"),
    (np.zeros((2, 8, 8), np.uint8), {"tile_grid": (0, 2)}, ValueError, "tile_grid"),
])
def test_errors_are_the_portable_errors(cp, images, kwargs, error, match):
    device = cp.asarray(images)
    with pytest.raises(error, match=match):
        clahe(device, **kwargs)
    with _engine.portable(), pytest.raises(error, match=match):
        clahe(device, **kwargs)


def test_equalize_hist_is_untouched(cp):
    """The CLAHE dispatch does not change the global equalization of the same planes."""
    host = make(np.uint8, "random", (2, 32, 32), seed=11)
    np.testing.assert_array_equal(equalize_hist(cp.asarray(host)).get(),
                                  np.stack([cv2.equalizeHist(p) for p in host]))


def _static_shared_bytes(cubin):
    """``{mangled kernel: static shared bytes}`` from the ``.nv.shared.<kernel>`` sections of an
    ELF64 cubin."""
    import struct
    shoff, = struct.unpack_from("<Q", cubin, 0x28)
    entsize, count, names_index = struct.unpack_from("<HHH", cubin, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", cubin, shoff + i * entsize) for i in range(count)]
    names = sections[names_index][4]
    found = {}
    for name, _, _, _, _, size in sections:
        label = cubin[names + name:cubin.index(b"\0", names + name)].decode()
        if label.startswith(".nv.shared."):
            found[label[len(".nv.shared."):]] = size
    return found


@pytest.mark.parametrize("architecture", ["sm_75", "sm_90"])
def test_shared_memory_within_48_kib(cp, architecture):
    """Static shared memory of each CLAHE kernel as NVRTC compiles it, plus the most dynamic
    shared memory its launcher asks for (the small kernel: SMALL_TILES tables of 256 bytes; the
    uint16 ones: RANKED_BYTES, TILE_SORT_BYTES),
    stays within the 48 KiB a block gets without opting in."""
    nvrtc = pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-bindings (NVRTC) is not installed")
    from gpu_histeq._cuda import _sources
    expressions = list(_sources.INSTANTIATIONS["clahe.cu"])
    _, program = nvrtc.nvrtcCreateProgram(_sources.source("clahe.cu").encode(), b"clahe.cu", 0, [], [])
    try:
        for name in expressions:
            nvrtc.nvrtcAddNameExpression(program, name.encode())
        options = [o.encode() for o in _sources.OPTIONS] + [f"--gpu-architecture={architecture}".encode()]
        (status,) = nvrtc.nvrtcCompileProgram(program, len(options), options)
        assert status == nvrtc.nvrtcResult.NVRTC_SUCCESS
        lowered = {n: nvrtc.nvrtcGetLoweredName(program, n.encode())[1].decode() for n in expressions}
        _, size = nvrtc.nvrtcGetCUBINSize(program)
        cubin = b" " * size
        nvrtc.nvrtcGetCUBIN(program, cubin)
    finally:
        nvrtc.nvrtcDestroyProgram(program)
    static = _static_shared_bytes(cubin)
    small = "gpu_histeq_clahe_small<unsigned char>"
    ranked = "gpu_histeq_clahe_ranked<unsigned short>"
    rank_tiles = "gpu_histeq_clahe_rank_tiles<unsigned short>"
    tables = "gpu_histeq_clahe_tables<unsigned char>"
    assert static[lowered[small]] >= 8 * 256 * 4 and static[lowered[tables]] >= 8 * 256 * 4
    from gpu_histeq._cuda._clahe import RANKED_BYTES, SMALL_TILES, TILE_SORT_BYTES  # `cp`'s
    for name, mangled in lowered.items():
        dynamic = {small: SMALL_TILES * 256, ranked: RANKED_BYTES,
                   rank_tiles: TILE_SORT_BYTES}.get(name, 0)
        assert static.get(mangled, 0) + dynamic <= 48 * 1024, (name, static.get(mangled))
