"""The CLI past memory: ``.npz`` members streamed in slabs, zarr slabs aligned to the input's
chunks and (de)compressed on several threads; outputs equal to the in-memory API bit for bit."""

import io
import re
import tracemalloc
import zipfile

import numpy as np
import pytest

import gpu_histeq as gh
from gpu_histeq.cli._cleanup import CliError
from gpu_histeq.cli.readers import NpzSource, open_source
from cli_support import run_cli

RNG = np.random.default_rng(26)
STACK = RNG.integers(20, 230, (23, 12, 10), dtype=np.uint8)
FLOATS = RNG.normal(size=(23, 2, 12, 10)).astype(np.float32)


def _savez(path, compressed=False, **arrays):
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
@pytest.mark.parametrize("images, axes", [(STACK, None), (STACK, "all"), (FLOATS, "0,2,3")],
                         ids=["per-image", "dataset", "float-channels"])
def test_npz_streamed_equals_in_memory(tmp_path, capsys, compressed, images, axes):
    source = _savez(tmp_path / "in.npz", compressed, images=images)
    argv = ["equalize", source, "-o", tmp_path / "out.npy", "--chunk-size", 4]
    if axes is not None:
        argv += ["--axes", axes]
    status, _, err = run_cli(capsys, *argv, inputs=[source], folder=tmp_path)
    assert status == 0, err
    axes = None if axes is None else (
        tuple(range(images.ndim)) if axes == "all" else tuple(int(a) for a in axes.split(",")))
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"),
                                  gh.equalize_hist(images, axes=axes))


def test_npz_slabs_read_in_any_order_and_again(tmp_path):
    source = NpzSource(_savez(tmp_path / "two.npz", True, a=STACK, b=FLOATS), key="b")
    try:
        assert (source.shape, source.dtype, source.key) == (FLOATS.shape, FLOATS.dtype, "b")
        for start, stop in [(0, 5), (5, 9), (15, 23), (2, 4), (0, 23), (23, 23)]:
            np.testing.assert_array_equal(source.read(start, stop, reuse=True),
                                          FLOATS[start:stop])
    finally:
        source.close()


def test_fortran_ordered_member(tmp_path):
    path = _savez(tmp_path / "f.npz", True, images=np.asfortranarray(FLOATS))
    source = open_source(path)
    try:
        np.testing.assert_array_equal(source.read(3, 11), FLOATS[3:11])
    finally:
        source.close()


def test_deflated_bomb_is_read_one_slab_at_a_time(tmp_path):
    """96 MiB of zeros in a member of about 100 KB: memory is one slab plus a read piece."""
    rows, row = 3 * 1024, (128, 256)
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("images.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, {
                "descr": "|u1", "fortran_order": False, "shape": (rows,) + row})
            zeros = bytes(row[0] * row[1] * 64)
            for _ in range(rows // 64):
                member.write(zeros)
    assert path.stat().st_size < 1 << 20
    source = open_source(path)
    tracemalloc.start()
    try:
        total = 0
        for start in range(0, rows, 256):  # slabs of 8 MiB
            total += int(source.read(start, start + 256, reuse=True).sum())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        source.close()
    assert total == 0
    assert peak < 8 * 2**20 + 4 * NpzSource.PIECE  # not 96 MiB


def _corrupt_deflate(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(16)
    path.write_bytes(bytes(data))


def _short_member(path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<u2", "fortran_order": False, "shape": (50, 12, 10)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", header.getvalue() + bytes(100))


def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


@pytest.mark.parametrize("damage, match", [
    (_corrupt_deflate, r"cannot read .*bad\.npz: (Bad CRC-32|Error -3)"),
    (_short_member, r"cannot read .*bad\.npz: member images\.npy holds 228 bytes, its header "
                    r"needs 12128 \(truncated\?\)"),
    (_truncated, r"cannot read .*bad\.npz: "),
], ids=["corrupt", "short-member", "truncated-zip"])
def test_damaged_npz_errors_name_the_file(tmp_path, capsys, damage, match):
    path = _savez(tmp_path / "bad.npz", True, images=RNG.integers(0, 4000, (400, 12, 10),
                                                                  dtype=np.uint16))
    damage(path)
    status, _, err = run_cli(capsys, "equalize", path, "-o", tmp_path / "out.npy",
                             "--chunk-size", 50, folder=tmp_path)
    assert status == 1
    assert re.search(match, err), err
    assert not (tmp_path / "out.npy").exists()


def test_npz_key_errors_name_the_file(tmp_path):
    path = _savez(tmp_path / "two.npz", images=STACK, other=STACK[:1])
    with pytest.raises(CliError, match=r"two\.npz holds 2 arrays \['images', 'other'\]"):
        open_source(path)
    with pytest.raises(CliError, match=r"--key 'nope': .*two\.npz has no such array"):
        open_source(path, key="nope")
    objects = tmp_path / "objects.npz"
    np.savez(objects, images=np.array([{}, []], dtype=object))
    with pytest.raises(CliError, match=r"cannot read .*objects\.npz: images holds Python objects"):
        open_source(objects)


# --------------------------------------------------------------------------------- zarr input

ZARR_STACK = RNG.integers(0, 256, (230, 12, 10), dtype=np.uint8)
STORED_ROWS = 20  # 12 stored chunks, the last one short


@pytest.fixture
def decodes(monkeypatch):
    """Every chunk zarr decompresses (zstd, zarr's default), with the thread that asked."""
    zarr = pytest.importorskip("zarr")
    from zarr.codecs import ZstdCodec

    decoded = []
    original = ZstdCodec._decode_sync

    def counting(self, chunk_bytes, chunk_spec):
        decoded.append(chunk_spec.shape)
        return original(self, chunk_bytes, chunk_spec)

    monkeypatch.setattr(ZstdCodec, "_decode_sync", counting)
    return zarr, decoded


def _zarr_input(zarr, path, images=ZARR_STACK):
    target = zarr.open_array(str(path), mode="w", shape=images.shape, dtype=images.dtype,
                             chunks=(STORED_ROWS,) + images.shape[1:])
    target[:] = images
    return path


@pytest.mark.parametrize("axes, method, passes", [(None, None, 1), ("all", None, 2),
                                                  ("all", "skimage", 3)])
def test_zarr_slabs_are_whole_chunks_decompressed_once_per_pass(
        tmp_path, capsys, monkeypatch, decodes, axes, method, passes):
    zarr, decoded = decodes
    from gpu_histeq.cli import readers, streaming

    source = _zarr_input(zarr, tmp_path / "in.zarr")
    # slabs of 3 stored chunks (60 rows): 4 slabs, so there is a next slab to read ahead
    monkeypatch.setattr(streaming, "CHUNK_BYTES", 3 * STORED_ROWS * 120)
    monkeypatch.setattr(streaming, "CHUNKS_PER_SLAB", 2)
    threads, read = [], readers.Source.read

    def recording(self, start, stop, reuse=False):
        threads.append((start, stop, __import__("threading").current_thread().name))
        return read(self, start, stop, reuse)

    monkeypatch.setattr(readers.Source, "read", recording)
    argv = ["equalize", source, "-o", tmp_path / "out.zarr"]
    argv += [] if axes is None else ["--axes", axes]
    argv += [] if method is None else ["--method", method]
    decoded.clear()
    status, _, err = run_cli(capsys, *argv, folder=tmp_path)
    assert status == 0, err
    assert len(decoded) == 12 * passes  # each stored chunk once per pass
    assert [(start, stop) for start, stop, _ in threads] == [
        (0, 60), (60, 120), (120, 180), (180, 230)] * passes
    # the first slab of a pass is read at once, the next ones while the previous is processed
    assert [name.startswith("gpu-histeq-read") for _, _, name in threads] == \
        [False, True, True, True] * passes
    out = zarr.open_array(str(tmp_path / "out.zarr"))
    assert out.chunks == (STORED_ROWS, 12, 10)  # chunked like the input
    expected_axes = None if axes is None else (0, 1, 2)
    np.testing.assert_array_equal(out[:], gh.equalize_hist(ZARR_STACK, axes=expected_axes,
                                                           method=method))


def test_misaligned_chunk_size_decompresses_chunks_twice(tmp_path, capsys, decodes):
    """The control: --chunk-size 25 (honoured as given) cuts stored chunks of 20."""
    zarr, decoded = decodes
    source = _zarr_input(zarr, tmp_path / "in.zarr")
    decoded.clear()
    status, _, err = run_cli(capsys, "equalize", source, "-o", tmp_path / "out.zarr",
                             "--chunk-size", 25, folder=tmp_path)
    assert status == 0, err
    # 10 slabs decompress 19 input chunks (9 slabs read two), and the 7 output chunks that two
    # slabs write are read back to be completed: 26 decompressions, not 12
    assert len(decoded) == 19 + 7
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"))[:],
                                  gh.equalize_hist(ZARR_STACK))


def test_slab_rows_are_multiples_of_the_stored_chunks(monkeypatch):
    from gpu_histeq.cli import streaming

    monkeypatch.setattr(streaming, "CHUNKS_PER_SLAB", 4)
    image = (96, 96)  # 9,216 bytes
    # the layout: chunks of 10,000 images (92 MB): 2 per slab, within 256 MiB
    assert streaming.rows_per_chunk((3_500_000,) + image, 1, None, 10_000) == 20_000
    # small chunks: about 64 MiB of them (73 chunks of 0.9 MB)
    assert streaming.rows_per_chunk((3_500_000,) + image, 1, None, 100) == 7_300
    # at least CHUNKS_PER_SLAB chunks, but not more than the input holds
    assert streaming.rows_per_chunk((3_500_000,) + image, 1, None, 5_000) == 20_000
    assert streaming.rows_per_chunk((12_000,) + image, 1, None, 5_000) == 15_000
    # one chunk larger than the cap is still one slab; --chunk-size wins; no stored chunks
    assert streaming.rows_per_chunk((100_000,) + image, 8, None, 50_000) == 50_000
    assert streaming.rows_per_chunk((100_000,) + image, 1, 333, 10_000) == 333
    assert streaming.rows_per_chunk((100_000,) + image, 1, None, None) == 7_281
