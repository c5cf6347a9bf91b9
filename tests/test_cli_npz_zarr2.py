"""The CLI's last silent gaps in the file round trip: an ``.npz`` output streamed member by
member (memory: one slab), byte for byte what numpy writes; zarr v2 inputs and sharded zarr v3
inputs missing a chunk (a chunk file, or a chunk absent inside its shard) refused unless
``--fill-missing-chunks``; a damaged chunk's error naming the input."""

import os
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import gpu_histeq as gh
from gpu_histeq.cli.writers import NpzSink
from cli_support import leftovers, run_cli

RNG = np.random.default_rng(2026)
STACK = RNG.integers(20, 230, (10, 12, 9), dtype=np.uint8)


def _one_line(err, text):
    assert err.count("\n") == 1 and err.startswith("gpu-histeq: error: "), err
    assert text in err, err


def _member_header(path, name):
    """``(version, shape, fortran_order, dtype)`` of an ``.npz`` member's ``.npy`` header."""
    with zipfile.ZipFile(path) as archive, archive.open(name) as member:
        version = np.lib.format.read_magic(member)
        read = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}[version]
        return (version, *read(member, max_header_size=1 << 20))


# ------------------------------------------------------------------------------ .npz output

WIDE = np.dtype([(f"f{i}", "u1") for i in range(6000)])  # a header past 65535 bytes: 2.0


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
@pytest.mark.parametrize("dtype, shape", [
    ("|u1", (7, 5, 3)), (">u2", (7, 4)), ("<f8", (7, 2, 3, 2)), (">c8", (7, 3)),
    ("<i4", (0, 4, 4)), (WIDE, (3,))], ids=["u1", ">u2", "f8", ">c8", "empty", "header-2.0"])
def test_npz_sink_writes_what_savez_writes(tmp_path, compressed, dtype, shape):
    """Slab by slab, the member's bytes equal numpy.savez(_compressed)'s: same name, header
    (version, dtype with its byte order, fortran_order False, shape) and values."""
    dtype = np.dtype(dtype)
    values = RNG.integers(0, 250, (int(np.prod(shape)) * dtype.itemsize,), dtype=np.uint8)
    array = values.view(dtype).reshape(shape)
    sink = NpzSink(tmp_path / "out.npz", shape, dtype, key="faces", compressed=compressed)
    for start in range(0, shape[0], 2):
        sink.write(start, min(start + 2, shape[0]), array[start:start + 2])
    sink.finish()
    saver = np.savez_compressed if compressed else np.savez
    if dtype == WIDE:
        with pytest.warns(UserWarning, match="format 2.0"):
            saver(tmp_path / "numpy.npz", faces=array)
    else:
        saver(tmp_path / "numpy.npz", faces=array)
    with zipfile.ZipFile(tmp_path / "out.npz") as ours, \
            zipfile.ZipFile(tmp_path / "numpy.npz") as theirs:
        assert ours.namelist() == theirs.namelist() == ["faces.npy"]
        info = ours.getinfo("faces.npy")
        assert info.compress_type == (zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED)
        assert ours.read("faces.npy") == theirs.read("faces.npy")
        assert ours.testzip() is None
    version, got_shape, fortran, got_dtype = _member_header(tmp_path / "out.npz", "faces.npy")
    assert (version, got_shape, fortran, got_dtype) == (
        (2, 0) if dtype == WIDE else (1, 0), shape, False, dtype)
    with np.load(tmp_path / "out.npz", max_header_size=1 << 20) as loaded:
        assert loaded["faces"].dtype == dtype
        np.testing.assert_array_equal(loaded["faces"], array)


def test_npz_sink_refuses_an_incomplete_result(tmp_path):
    sink = NpzSink(tmp_path / "out.npz", (4, 3), np.uint8)
    sink.write(0, 2, np.zeros((2, 3), np.uint8))
    with pytest.raises(RuntimeError, match="wrote 2 of 4 entries"):
        sink.finish()
    assert sink.file.closed


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_npz_output_streams_one_slab_at_a_time(tmp_path, capsys, compressed):
    """24 MiB through the CLI in slabs of 1 MiB: peak traced memory stays a few slabs (the
    writer built the whole 24 MiB array before); a deflated input gives a deflated output."""
    images = (np.arange(768 * 128 * 256, dtype=np.uint32) * 2654435761 >> 27).astype(
        np.uint8).reshape(768, 128, 256)  # 32 levels: quick to deflate
    source = tmp_path / "in.npz"
    (np.savez_compressed if compressed else np.savez)(source, faces=images)
    tracemalloc.start()
    try:
        status, _, err = run_cli(capsys, "equalize", source, tmp_path / "out.npz",
                                 "--chunk-size", 32, folder=tmp_path)  # (inputs: read whole)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 0, err
    assert peak < 8 << 20, peak  # the result is 24 MiB
    with zipfile.ZipFile(tmp_path / "out.npz") as archive:
        assert archive.getinfo("faces.npy").compress_type == (
            zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED)
    with np.load(tmp_path / "out.npz") as loaded:
        assert loaded.files == ["faces"]
        np.testing.assert_array_equal(loaded["faces"], gh.equalize_hist(images))


@pytest.mark.parametrize("axes", [None, "all"], ids=["per-image", "dataset"])
def test_npz_output_from_other_inputs(tmp_path, capsys, axes):
    """A .npy input writes member ``images`` (stored); a zarr group's array its own key."""
    np.save(tmp_path / "in.npy", STACK)
    flags = [] if axes is None else ["--axes", axes]
    expected = gh.equalize_hist(STACK, axes=None if axes is None else (0, 1, 2))
    status, _, err = run_cli(capsys, "equalize", tmp_path / "in.npy", tmp_path / "a.npz",
                             "--chunk-size", 3, *flags, folder=tmp_path)
    assert status == 0, err
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        assert [(i.filename, i.compress_type) for i in archive.infolist()] == [
            ("images.npy", zipfile.ZIP_STORED)]
    with np.load(tmp_path / "a.npz") as loaded:
        np.testing.assert_array_equal(loaded["images"], expected)
    zarr = pytest.importorskip("zarr")
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("scans/raw", shape=STACK.shape, dtype=STACK.dtype,
                       chunks=(4, 12, 9))[...] = STACK
    status, _, err = run_cli(capsys, "equalize", tmp_path / "g.zarr", tmp_path / "b.npz",
                             "--key", "scans/raw", *flags, folder=tmp_path)
    assert status == 0, err
    with np.load(tmp_path / "b.npz") as loaded:
        assert loaded.files == ["scans/raw"]
        np.testing.assert_array_equal(loaded["scans/raw"], expected)


def test_a_failed_npz_write_leaves_nothing(tmp_path, capsys, monkeypatch):
    """An error in the middle of the member (a full disk): one line, no output, no temporary
    file; an existing output given with --force stays as it was."""
    np.save(tmp_path / "in.npy", STACK)
    (tmp_path / "out.npz").write_bytes(b"precious")
    written, original = [], NpzSink.write

    def write(self, start, stop, block):
        if written:
            raise OSError(28, "No space left on device", str(self.path))
        written.append(start)
        original(self, start, stop, block)

    monkeypatch.setattr(NpzSink, "write", write)
    status, _, err = run_cli(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.npz",
                             "--chunk-size", 2, "--force", inputs=[tmp_path / "in.npy"],
                             folder=tmp_path)
    assert status == 1 and written == [0]
    _one_line(err, "No space left on device")
    assert (tmp_path / "out.npz").read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == ["in.npy", "out.npz"]


def test_force_replaces_an_npz_whole(tmp_path, capsys):
    np.save(tmp_path / "in.npy", STACK)
    np.savez(tmp_path / "out.npz", images=np.zeros(3), other=np.ones(2))
    status, _, err = run_cli(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.npz",
                             "--force", "--chunk-size", 4, folder=tmp_path)
    assert status == 0, err
    with np.load(tmp_path / "out.npz") as loaded:
        assert loaded.files == ["images"]
        np.testing.assert_array_equal(loaded["images"], gh.equalize_hist(STACK))


# ------------------------------------------------------------------ zarr: missing chunks

@pytest.fixture
def zarr():
    module = pytest.importorskip("zarr")
    if not hasattr(module, "create_array"):
        pytest.skip("zarr 3 writes these stores")
    return module


@pytest.mark.parametrize("separator", [".", "/"])
@pytest.mark.parametrize("fill", [False, True], ids=["refused", "filled"])
def test_a_zarr_v2_input_missing_a_chunk(tmp_path, capsys, zarr, separator, fill):
    data = STACK.copy()
    array = zarr.create_array(str(tmp_path / "in.zarr"), shape=data.shape, dtype=data.dtype,
                              chunks=(2, 12, 9), zarr_format=2, fill_value=3,
                              chunk_key_encoding={"name": "v2", "separator": separator})
    array[...] = data
    chunk = tmp_path / "in.zarr" / separator.join(["3", "0", "0"])
    os.remove(chunk)
    flags = ["--fill-missing-chunks"] if fill else []
    inputs = sorted(p for p in (tmp_path / "in.zarr").rglob("*") if p.is_file())
    status, _, err = run_cli(capsys, "equalize", tmp_path / "in.zarr", tmp_path / "out.npy",
                             *flags, inputs=inputs, folder=tmp_path)
    if not fill:
        assert status == 1 and not (tmp_path / "out.npy").exists()
        _one_line(err, f"cannot read {tmp_path / 'in.zarr'}: its chunk {chunk} is missing (zarr "
                  "would read it as the fill value 3); give --fill-missing-chunks to accept that")
        return
    assert status == 0, err
    data[6:8] = 3
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), gh.equalize_hist(data))


def test_a_zarr_v2_array_in_a_group_without_a_fill_value(tmp_path, capsys, zarr):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=2)
    array = group.create_array("a", shape=STACK.shape, dtype=STACK.dtype, chunks=(5, 12, 9),
                               fill_value=None)
    array[...] = STACK
    os.remove(tmp_path / "g.zarr" / "a" / "1.0.0")
    status, _, err = run_cli(capsys, "equalize", tmp_path / "g.zarr", tmp_path / "out.npy",
                             "--key", "a", folder=tmp_path)
    assert status == 1
    _one_line(err, f"its chunk {tmp_path / 'g.zarr' / 'a' / '1.0.0'} is missing (zarr would read "
              "it as 0 (it has no fill value))")


@pytest.mark.parametrize("location", ["end", "start"])
@pytest.mark.parametrize("fill", [False, True], ids=["refused", "filled"])
def test_a_chunk_missing_inside_a_shard(tmp_path, capsys, zarr, location, fill):
    """A shard file present, one inner chunk absent from its index (zarr leaves out a chunk
    equal to the fill value): named with its shard, whichever end the index is at."""
    data = STACK.copy()
    data[6, 6:] = 9  # the second inner chunk along Y of image 6 equals the fill value
    if location == "end":  # zarr's default
        layout = {"chunks": (1, 6, 9), "shards": (4, 12, 9)}
    else:
        layout = {"chunks": (4, 12, 9), "compressors": None, "serializer": zarr.codecs.
                  ShardingCodec(chunk_shape=(1, 6, 9), index_location="start")}
    array = zarr.create_array(str(tmp_path / "in.zarr"), shape=data.shape, dtype=data.dtype,
                              fill_value=9, **layout)
    assert array.shards == (4, 12, 9)
    array[...] = data
    flags = ["--fill-missing-chunks"] if fill else []
    status, _, err = run_cli(capsys, "equalize", tmp_path / "in.zarr", tmp_path / "out.npy",
                             *flags, folder=tmp_path)
    if fill:
        assert status == 0, err
        np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), gh.equalize_hist(data))
        return
    assert status == 1 and not (tmp_path / "out.npy").exists()
    shard = tmp_path / "in.zarr" / "c" / "1" / "0" / "0"
    _one_line(err, f"cannot read {tmp_path / 'in.zarr'}: its chunk (6, 1, 0) is missing from the "
              f"shard {shard} (zarr would read it as the fill value 9); give "
              "--fill-missing-chunks to accept that")


def test_a_partial_last_shard_is_complete(tmp_path, capsys, zarr):
    """10 images in shards of 4: the last shard's chunks past the array's end are never stored
    and are not asked for."""
    array = zarr.create_array(str(tmp_path / "in.zarr"), shape=STACK.shape, dtype=STACK.dtype,
                              chunks=(1, 12, 9), shards=(4, 12, 9))
    array[...] = STACK
    status, _, err = run_cli(capsys, "equalize", tmp_path / "in.zarr", tmp_path / "out.npy",
                             folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), gh.equalize_hist(STACK))


def test_an_empty_or_short_shard(tmp_path, capsys, zarr):
    """An empty shard file (zarr reads it as all fill value) is refused like a missing one; a
    shard shorter than its index is damaged: refused naming it."""
    array = zarr.create_array(str(tmp_path / "in.zarr"), shape=STACK.shape, dtype=STACK.dtype,
                              chunks=(1, 12, 9), shards=(4, 12, 9))
    array[...] = STACK
    shard = tmp_path / "in.zarr" / "c" / "1" / "0" / "0"
    shard.write_bytes(b"")
    status, _, err = run_cli(capsys, "equalize", tmp_path / "in.zarr", tmp_path / "out.npy",
                             folder=tmp_path)
    assert status == 1
    _one_line(err, f"its shard {shard} is empty (zarr would read it as the fill value 0)")
    shard.write_bytes(b"x" * 30)
    status, _, err = run_cli(capsys, "equalize", tmp_path / "in.zarr", tmp_path / "out.npy",
                             folder=tmp_path)
    assert status == 1
    _one_line(err, f"its shard {shard} holds 30 bytes, fewer than its index needs (68): "
              "damaged or truncated")


def test_a_damaged_shard_read_anyway_names_the_input(tmp_path, capsys, zarr):
    """With --fill-missing-chunks zarr reads the damaged shard and fails its checksum: the
    line names the input (it gave zarr's message alone)."""
    array = zarr.create_array(str(tmp_path / "in.zarr"), shape=STACK.shape, dtype=STACK.dtype,
                              chunks=(1, 12, 9), shards=(4, 12, 9))
    array[...] = STACK
    (tmp_path / "in.zarr" / "c" / "1" / "0" / "0").write_bytes(b"x" * 30)
    status, _, err = run_cli(capsys, "equalize", tmp_path / "in.zarr", tmp_path / "out.npy",
                             "--fill-missing-chunks", folder=tmp_path)
    assert status == 1 and not (tmp_path / "out.npy").exists()
    _one_line(err, f"cannot read {tmp_path / 'in.zarr'}: ")
    assert "checksum" in err


def test_a_sharded_output_reads_back_complete(tmp_path, capsys, zarr):
    """A result chunk equal to the fill value is stored inside its shard too, so the CLI's
    own sharded output is a complete input (no --fill-missing-chunks)."""
    data = STACK.copy()
    data[2] = 0  # a constant image equalizes to itself: a result chunk of zeros
    array = zarr.create_array(str(tmp_path / "in.zarr"), shape=data.shape, dtype=data.dtype,
                              chunks=(1, 12, 9), shards=(4, 12, 9),
                              config={"write_empty_chunks": True})
    array[...] = data
    status, _, err = run_cli(capsys, "equalize", tmp_path / "in.zarr", tmp_path / "mid.zarr",
                             folder=tmp_path)
    assert status == 0, err
    assert zarr.open_array(str(tmp_path / "mid.zarr")).shards == (4, 12, 9)
    status, _, err = run_cli(capsys, "equalize", tmp_path / "mid.zarr", tmp_path / "out.npy",
                             folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"),
                                  gh.equalize_hist(gh.equalize_hist(data)))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_a_signal_while_the_member_is_written(tmp_path, compressed):
    """SIGTERM once the member holds data: exit 143, one line, no partial .npz anywhere."""
    source = tmp_path / "in.npz"
    (np.savez_compressed if compressed else np.savez)(
        source, images=RNG.integers(0, 255, (20000, 8, 8), dtype=np.uint8))
    work = tmp_path / "work"
    work.mkdir()
    run = subprocess.Popen([sys.executable, "-m", "gpu_histeq.cli", "equalize", source,
                            work / "out.npz", "--chunk-size", "1"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(os.path.getsize(path) > 4096 for path in leftovers(work)
                  if os.path.exists(path)):
        assert run.poll() is None, "the run ended before it was signalled"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 128 + signal.SIGTERM, err
    assert err == "gpu-histeq: interrupted by SIGTERM; no output written\n" and out == ""
    assert os.listdir(work) == []


def test_a_key_an_input_cannot_honour_is_refused(tmp_path, capsys):
    """``--key`` on a .npy or a zarr array (no named arrays) was ignored; the output's npz
    member took its name."""
    np.save(tmp_path / "in.npy", STACK)
    status, _, err = run_cli(capsys, "equalize", tmp_path / "in.npy", tmp_path / "out.npz",
                             "--key", "faces", folder=tmp_path)
    assert status == 1 and not (tmp_path / "out.npz").exists()
    _one_line(err, f"--key 'faces': {tmp_path / 'in.npy'} is a .npy, one array without names; "
              "--key picks an array of an .npz or a zarr group, or a TIFF's series: leave it out")
    zarr = pytest.importorskip("zarr")
    zarr.open_array(str(tmp_path / "in.zarr"), mode="w", shape=STACK.shape, dtype=STACK.dtype,
                    chunks=(5, 12, 9))[...] = STACK
    status, _, err = run_cli(capsys, "equalize", tmp_path / "in.zarr", tmp_path / "out.npz",
                             "--key", "faces", folder=tmp_path)
    assert status == 1 and not (tmp_path / "out.npz").exists()
    _one_line(err, f"--key 'faces': {tmp_path / 'in.zarr'} is a zarr array, one array")


def test_a_key_a_png_or_a_folder_without_tiff_cannot_honour_is_refused(tmp_path, capsys):
    """``--key`` on a PNG (or a folder holding no TIFF) was ignored: the run wrote its output
    as if the option had not been given."""
    Image = pytest.importorskip("PIL.Image")
    folder = tmp_path / "scans"
    folder.mkdir()
    Image.fromarray(STACK[0]).save(folder / "a.png")
    status, _, err = run_cli(capsys, "equalize", folder / "a.png", tmp_path / "out.png",
                             "--key", "0", folder=tmp_path)
    assert status == 1 and not (tmp_path / "out.png").exists()
    _one_line(err, f"--key '0': {folder / 'a.png'} is a PNG/JPEG image, one array without names")
    status, _, err = run_cli(capsys, "equalize", folder, tmp_path / "out/", "--key", "0",
                             folder=tmp_path)
    assert status == 1 and not (tmp_path / "out").exists()
    _one_line(err, f"--key '0': {folder} holds no TIFF file; --key picks the series of each "
              "TIFF of a folder: leave it out")


def test_reference_and_mask_keys_pick_a_member(tmp_path, capsys):
    """A --reference or --mask .npz of several arrays could not be used at all (its error asked
    for ``--key``, which picks the input's array): ``--reference-key`` / ``--mask-key`` pick its
    member, giving what that member saved alone gives; a wrong or missing one is refused naming
    the option, and ``--mask-key`` without ``--mask`` too."""
    np.save(tmp_path / "in.npy", STACK)
    other = RNG.integers(0, 256, STACK.shape, dtype=np.uint8)
    np.savez(tmp_path / "refs.npz", dark=STACK // 4, other=other)
    np.save(tmp_path / "dark.npy", STACK // 4)
    run = lambda *argv: run_cli(capsys, *argv, folder=tmp_path)  # noqa: E731
    assert run("match", tmp_path / "in.npy", tmp_path / "alone.npy",
               "--reference", tmp_path / "dark.npy")[0] == 0
    assert run("match", tmp_path / "in.npy", tmp_path / "picked.npy",
               "--reference", tmp_path / "refs.npz", "--reference-key", "dark")[0] == 0
    picked = np.load(tmp_path / "picked.npy")
    np.testing.assert_array_equal(picked, np.load(tmp_path / "alone.npy"))
    np.testing.assert_array_equal(picked, gh.match_histograms(STACK, STACK // 4))
    status, _, err = run("match", tmp_path / "in.npy", tmp_path / "x.npy",
                         "--reference", tmp_path / "refs.npz")
    assert status == 1
    _one_line(err, f"{tmp_path / 'refs.npz'} holds 2 arrays ['dark', 'other']: choose one with "
              "--reference-key")
    status, _, err = run("match", tmp_path / "in.npy", tmp_path / "x.npy",
                         "--reference", tmp_path / "refs.npz", "--reference-key", "bright")
    assert status == 1
    _one_line(err, "--reference-key 'bright': ")

    mask = STACK > 100
    np.savez(tmp_path / "masks.npz", bright=mask, dark=~mask)
    assert run("equalize", tmp_path / "in.npy", tmp_path / "masked.npy",
               "--mask", tmp_path / "masks.npz", "--mask-key", "bright")[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "masked.npy"),
                                  gh.equalize_hist(STACK, mask=mask))
    status, _, err = run("equalize", tmp_path / "in.npy", tmp_path / "x.npy",
                         "--mask", tmp_path / "masks.npz")
    assert status == 1
    _one_line(err, "holds 2 arrays ['bright', 'dark']: choose one with --mask-key")
    status, _, err = run("equalize", tmp_path / "in.npy", tmp_path / "x.npy",
                         "--mask-key", "bright")
    assert status == 1
    _one_line(err, "--mask-key 'bright' picks an array of the --mask input: give --mask too")
    assert not (tmp_path / "x.npy").exists()
