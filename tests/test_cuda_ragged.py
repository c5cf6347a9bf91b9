"""The CUDA kernels over packed planes of different sizes (ragged batches) agree bit for bit with
the portable packed path and with the per-image calls.

``_cuda.equalize_packed``, ``_cuda.packed_counts`` and ``_cuda.apply_packed`` take one 1-d buffer
with per-plane offsets (plane ``p`` at ``starts[p]:starts[p + 1]``), as
:mod:`gpu_histeq._interop._packed` does. Each case compares them with ``_packed.equalize`` /
``histograms`` / ``apply_tables`` (inside :func:`gpu_histeq._engine.portable`) and, for
equalization, with :func:`gpu_histeq.equalize_hist` of every plane's pixels alone. The lists mix
0-pixel and 1-pixel planes, sizes that are no multiple of 16 bytes (so most planes start off a
16-byte pack and peel their head), a plane over ``SMALL_PIXELS`` (the multi-block kernels) and
many small ones (the one-block kernels). The ``cp`` fixture runs them on a GPU when one is
usable, else emulated on the CPU (tests/emulation); here only the emulated run has been made.
"""

import numpy as np
import pytest

from conftest import assert_declined, assert_wrote, is_emulated, raised_in_kernel_path
from gpu_histeq import _cuda, _engine, equalize_hist
from gpu_histeq._interop import _packed
from test_cuda_kernels import assert_same_bits, flushed_reference, result_dtype

#: Plane sizes of the default list: empty, 1-pixel, odd, 16-byte multiples, one over
#: SMALL_PIXELS (65536), then many small ones.
SIZES = [0, 1, 17, 256, 0, 1003, 65536 + 37, 5, 4096, 0, 31] + list(range(2, 80, 7))
#: The one-block kernels keep the planes of a launch in shared memory when the largest fits
#: (32 KiB of uint8, 38 KiB of floats): SIZES fit, a plane of 40000 pixels does not.
SIZE_LISTS = {"cached": SIZES, "uncached": SIZES[:3] + [40000] + SIZES[3:]}
#: Levels or bins per method and dtype: (method, dtype, nbins).
CASES = [("opencv", np.uint8, 256), ("pil", np.uint8, 256), ("skimage", np.uint8, 256),
         ("opencv", np.uint16, 65536), ("skimage", np.uint16, 100),
         ("skimage", np.float32, 256), ("skimage", np.float64, 256),
         ("skimage", np.float32, 1000), ("skimage", np.float64, 7)]
CASE_IDS = [f"{m}-{np.dtype(d)}-{b}" for m, d, b in CASES]
#: Elements of padding on each side of every result: 256 bytes keeps the allocator's alignment.
GUARD_BYTES = 256


def packed_list(dtype, sizes, seed=0):
    """``(values, mask, starts)`` on the host: one plane per size, kinds in turn (random over
    the dtype or a normal, a narrow range, two levels, constant); every non-empty plane selects
    its first pixel."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    starts = _packed.plane_starts(sizes)
    planes = []
    for k, n in enumerate(sizes):
        kind = k % 4
        if dtype.kind == "f":
            plane = [rng.normal(0.0, 3.0, n), 1.0 + rng.integers(0, 40, n) * 1e-3,
                     rng.choice([-0.25, 0.75], n), np.full(n, 0.3)][kind]
        else:
            top = int(np.iinfo(dtype).max)
            plane = [rng.integers(0, top, n, endpoint=True), rng.integers(60, 120, n),
                     rng.choice([3, top // 2], n), np.full(n, 17)][kind]
        planes.append(np.asarray(plane).astype(dtype))
    values = np.concatenate(planes) if planes else np.zeros(0, dtype)
    mask = rng.random(values.size) < 0.4
    mask[starts[:-1][np.diff(starts) > 0]] = True
    return values, mask, starts


def guarded(cp, size, dtype, fill=7):
    """``(buffer, result)``: `result` of `size` elements inside a `fill`-ed buffer with a guard
    of GUARD_BYTES on each side, so a write outside the planes shows."""
    pad = GUARD_BYTES // np.dtype(dtype).itemsize
    buffer = cp.full(size + 2 * pad, fill, dtype)
    return buffer, buffer[pad:pad + size]


def assert_guards(buffer, dtype, fill=7):
    pad = GUARD_BYTES // np.dtype(dtype).itemsize
    host = np.asarray(buffer.get())
    assert (host[:pad] == fill).all() and (host[host.size - pad:] == fill).all(), \
        "a kernel wrote outside the packed planes"


@pytest.fixture
def kernels(cp):
    """gpu_histeq._cuda._kernels, imported once `cp` is the cupy module (it imports cupy)."""
    from gpu_histeq._cuda import _kernels
    return _kernels


def _launches(cp):
    return sum(cp.LAUNCHES.values()) if is_emulated(cp) else None


def _outcome(call):
    try:
        return call(), None
    except ValueError as error:
        return None, error


def check_equalize(cp, values, mask, starts, method, nbins, per_image=True):
    """equalize_packed == _packed.equalize (bits or error) and == equalize_hist per plane;
    returns the result, or the error both raised."""
    dtype = result_dtype(method, values.dtype)
    flushed = flushed_reference(cp, values)
    values = cp.asarray(values)
    mask = None if mask is None else cp.asarray(mask)
    with np.errstate(all="ignore"), _engine.portable(), flushed:
        expected, expected_error = _outcome(
            lambda: _packed.equalize(cp, values, mask, starts, method, nbins, dtype))
    buffer, result = guarded(cp, values.size, dtype)
    before = _launches(cp)
    with np.errstate(all="ignore"):
        taken, error = _outcome(
            lambda: _cuda.equalize_packed(values, mask, starts, method, nbins, result))
    assert (type(error), str(error)) == (type(expected_error), str(expected_error))
    if error is not None:
        assert raised_in_kernel_path(error), f"{error!r} was not raised by the kernel path"
        return error
    assert_wrote(taken)
    if before is not None and values.size:
        assert _launches(cp) > before, "no kernel ran"
    assert_guards(buffer, dtype)
    assert_same_bits(result, expected)
    if per_image:
        for p in range(len(starts) - 1):
            a, b = int(starts[p]), int(starts[p + 1])
            image = values[a:b].reshape(1, b - a)
            selected = None if mask is None else mask[a:b].reshape(1, b - a)
            with np.errstate(all="ignore"):
                alone = equalize_hist(image, nbins, mask=selected, method=method)
            assert_same_bits(result[a:b], alone.reshape(-1))
    return result


@pytest.mark.parametrize("sizes", list(SIZE_LISTS))
@pytest.mark.parametrize("masked", [False, True], ids=["all", "mask"])
@pytest.mark.parametrize("method, dtype, nbins", CASES, ids=CASE_IDS)
def test_equalize_packed_equals_portable_and_per_image(cp, method, dtype, nbins, masked, sizes):
    values, mask, starts = packed_list(dtype, SIZE_LISTS[sizes])
    check_equalize(cp, values, mask if masked else None, starts, method, nbins)


@pytest.mark.parametrize("seed", range(6))
def test_random_lists(cp, seed):
    """Random lengths (0 to 40 planes of 0 to 5000 pixels, zeros and ones likelier), a random
    case and mask: the same two comparisons."""
    rng = np.random.default_rng(100 + seed)
    sizes = rng.choice([0, 1, 2, 15, 16, 17], rng.integers(0, 41)).tolist()
    sizes = [n if rng.random() < 0.4 else int(rng.integers(0, 5000)) for n in sizes]
    method, dtype, nbins = CASES[seed * 4 % len(CASES)]
    values, mask, starts = packed_list(dtype, sizes, seed=seed)
    check_equalize(cp, values, mask if seed % 2 else None, starts, method, nbins)


@pytest.mark.parametrize("method, dtype, nbins", CASES, ids=CASE_IDS)
def test_multi_block_kernels_on_many_groups(cp, kernels, method, dtype, nbins, monkeypatch):
    """Every plane through the multi-block kernels (no one-block kernel), scratch in groups of
    a few planes and 1-d grids of at most 3 planes: the group and block bookkeeping."""
    monkeypatch.setattr(kernels, "SMALL_PIXELS", -1)
    monkeypatch.setattr(kernels._planes, "CHUNK_BINS", 5 * max(nbins, 256))
    monkeypatch.setattr(kernels, "MAX_GRID_BLOCKS", 3 * 65535)
    sizes = [0, 3, 4000, 0, 257, 1, 9001, 64, 33, 0]
    values, mask, starts = packed_list(dtype, sizes, seed=2)
    for selected in (None, mask):
        check_equalize(cp, values, selected, starts, method, nbins, per_image=False)


@pytest.mark.parametrize("method, dtype, nbins", [CASES[0], CASES[3], CASES[5], CASES[6]],
                         ids=[CASE_IDS[0], CASE_IDS[3], CASE_IDS[5], CASE_IDS[6]])
def test_unaligned_buffers(cp, kernels, method, dtype, nbins):
    """Values, mask and result whose bases are off a pack: every pixel one by one."""
    values, mask, starts = packed_list(dtype, [5, 0, 300, 70000, 1], seed=3)
    base = cp.asarray(np.concatenate([values[:1], values]))[1:]
    mask_base = cp.asarray(np.concatenate([mask[:3], mask]))[3:]
    out_dtype = result_dtype(method, dtype)
    assert not kernels.packed_aligned(base, mask_base, cp.empty(1, out_dtype))
    with np.errstate(all="ignore"), _engine.portable(), flushed_reference(cp, values):
        expected = _packed.equalize(cp, base, mask_base, starts, method, nbins, out_dtype)
    result = cp.empty(values.size + 1, out_dtype)[1:]
    with np.errstate(all="ignore"):
        assert_wrote(_cuda.equalize_packed(base, mask_base, starts, method, nbins, result))
    assert_same_bits(result, expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_empty_lists_and_planes(cp, dtype):
    method = "opencv" if dtype == np.uint8 else "skimage"
    out = result_dtype(method, dtype)
    for sizes in ([], [0], [0, 0, 0]):
        starts = _packed.plane_starts(sizes)
        values = cp.zeros(0, dtype)
        assert_wrote(_cuda.equalize_packed(values, None, starts, method, 256, cp.empty(0, out)))
        counts = _cuda.packed_counts(values, None, starts, _packed.binning(
            cp, values, None, starts, 256, method == "opencv"))
        assert_wrote(counts)
        assert counts.shape == (len(sizes), 256) and not counts.get().any()
    values, _, starts = packed_list(dtype, [0, 1, 0])  # a single pixel between empty planes
    check_equalize(cp, values, None, starts, method, 256)


def test_nan_raises_as_portably(cp):
    values, mask, starts = packed_list(np.float32, SIZES, seed=4)
    values[int(starts[6]) + 60000] = np.nan  # inside the plane the multi-block kernels take
    error = check_equalize(cp, values, None, starts, "skimage", 256)
    assert isinstance(error, ValueError) and "NaN or infinity" in str(error)
    values, mask, starts = packed_list(np.float64, SIZES, seed=4)
    values[int(starts[-2]) + 1] = np.inf  # a small plane; the pixel may be masked out
    error = check_equalize(cp, values, mask, starts, "skimage", 256)
    assert isinstance(error, ValueError) and "NaN or infinity" in str(error)


def test_repeated_edges_raise_as_portably(cp):
    values, _, starts = packed_list(np.float32, [40, 0, 3], seed=5)
    values[40:] = np.float32(1e8)  # a constant plane too narrow for 256 bins at 1e8
    error = check_equalize(cp, values, None, starts, "skimage", 256)
    assert isinstance(error, ValueError) and "edges" in str(error)


def test_irregular_plane_declines(cp):
    """A float64 plane whose bins are a few subnormals wide needs numpy.interp's own search:
    the documented "irregular" decline after the kernels ran, and the portable path redoes
    every plane."""
    tiny = np.array([0.0, 392553, 396459, 1000000]) * 5e-324
    values = np.concatenate([np.linspace(0, 1, 50), tiny, np.linspace(-3, 2, 7)])
    starts = _packed.plane_starts([50, 4, 7])
    result = cp.empty(values.size, np.float64)
    before = _launches(cp)
    assert_declined(_cuda.equalize_packed(cp.asarray(values), None, starts, "skimage", 256,
                                          result), "irregular")
    if before is not None:
        assert _launches(cp) > before, "declined as irregular without running the kernels"


def test_uncovered_cases_decline(cp):
    """Cases outside the kernels' claim: ``Declined("uncovered")``, decided before any launch."""
    starts = _packed.plane_starts([3, 5])
    before = _launches(cp)
    u8 = cp.empty(8, np.uint8)
    answers = [
        _cuda.equalize_packed(cp.zeros(8, np.int64), None, starts, "skimage", 256,
                              cp.empty(8, np.float64)),  # int8 to uint32 are covered
        _cuda.equalize_packed(cp.zeros(16, np.uint8)[::2], None, starts, "opencv", 256, u8),
        _cuda.equalize_packed(cp.zeros(8, np.float32), None, starts, "opencv", 256,
                              cp.empty(8, np.float32)),
        _cuda.apply_packed(cp.zeros(8, np.float32), starts, cp.zeros((2, 4), np.uint8), u8),
        _cuda.apply_packed(cp.zeros(8, np.uint8), starts, cp.zeros((3, 256), np.uint8), u8)]
    for bad in ([0, 5, 3], [0, 3, 9], [-1, 3, 8]):  # decreasing, past the end, before the start
        bad = np.asarray(bad, np.int64)
        values = cp.zeros(8, np.uint8)
        answers += [
            _cuda.equalize_packed(values, None, bad, "opencv", 256, u8),
            _cuda.packed_counts(values, None, bad,
                                _packed.binning(cp, values, None, starts, 256, True)),
            _cuda.apply_packed(values, bad, cp.zeros((2, 256), np.uint8), u8)]
    for answer in answers:
        assert_declined(answer, "uncovered")
    if before is not None:
        assert _launches(cp) == before, "an uncovered case launched a kernel"


@pytest.mark.parametrize("masked", [False, True], ids=["all", "mask"])
@pytest.mark.parametrize("dtype, nbins, level_indexed", [
    (np.uint8, 256, True), (np.uint8, 256, False), (np.uint16, 65536, True),
    (np.uint16, 256, False), (np.float32, 256, False), (np.float64, 2000, False)],
    ids=["u8-levels", "u8-low", "u16-levels", "u16-low", "f32-256", "f64-2000"])
def test_packed_counts_equal_portable(cp, dtype, nbins, level_indexed, masked):
    host, host_mask, starts = packed_list(dtype, SIZES, seed=6)
    values = cp.asarray(host)
    mask = cp.asarray(host_mask) if masked else None
    bins = _packed.binning(cp, values, mask, starts, nbins, level_indexed)
    with _engine.portable():
        expected = _packed.histograms(cp, values, mask, starts, bins)
    counts = _cuda.packed_counts(values, mask, starts, bins)
    assert_wrote(counts)
    assert_same_bits(counts, expected)


@pytest.mark.parametrize("dtype, table_dtype, length", [
    (np.uint8, np.uint8, 256), (np.uint8, np.float32, 200), (np.uint16, np.int64, 65536),
    (np.uint16, np.uint8, 300)])
@pytest.mark.parametrize("shared", [False, True], ids=["per-plane", "shared"])
def test_apply_packed_equals_portable(cp, kernels, dtype, table_dtype, length, shared,
                                     monkeypatch):
    monkeypatch.setattr(kernels, "MAX_GRID_BLOCKS", 7 * 65535)  # launches of 7 planes
    rng = np.random.default_rng(7)
    starts = _packed.plane_starts(SIZES)
    values = cp.asarray(rng.integers(0, length, int(starts[-1])).astype(dtype))
    nplanes = 1 if shared else len(SIZES)
    tables = cp.asarray(rng.integers(0, 250, (nplanes, length)).astype(table_dtype))
    with _engine.portable():
        expected = _packed.apply_tables(cp, values, starts, tables)
    buffer, result = guarded(cp, values.size, table_dtype)
    assert_wrote(_cuda.apply_packed(values, starts, tables, result))
    assert_guards(buffer, table_dtype)
    assert_same_bits(result, expected)
