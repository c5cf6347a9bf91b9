"""Image files round-trip through the CLI (issue 26): every page, series, frame and sample, and
the metadata users rely on, or a refusal before anything is written.

Each test builds its files, runs ``gpu-histeq equalize`` in-process and checks (a) the values
written equal the input equalized plane by plane (``cv2.equalizeHist`` for 8-bit planes, the
library's per-plane call for 16-bit), (b) the geometry and metadata read back equal the input's,
or (c) the run failed with one line naming the file and the option, and wrote nothing. The
``row`` numbers are the rows of the issue's table.
"""

import io
import os
import struct
import zlib

import numpy as np
import pytest

import gpu_histeq as gh
from cli_support import leftovers, run_cli

tifffile = pytest.importorskip("tifffile")
pil = pytest.importorskip("PIL.Image")

RNG = np.random.default_rng(26)


def _values(shape, dtype=np.uint8, low=10, high=200):
    return RNG.integers(low, high, shape).astype(dtype)


def _equalized(array, axes):
    """`array` equalized plane by plane over `axes` (the two image axes): cv2 for uint8."""
    if array.dtype == np.uint8:
        cv2 = pytest.importorskip("cv2")
        planes = np.moveaxis(array, axes, (-2, -1))
        flat = planes.reshape((-1,) + planes.shape[-2:])
        done = np.stack([cv2.equalizeHist(plane) for plane in flat]).reshape(planes.shape)
        return np.moveaxis(done, (-2, -1), axes)
    return gh.equalize_hist(array, axes=axes)


def _run(capsys, *argv, inputs=(), folder=None):
    return run_cli(capsys, "equalize", *argv, "--device", "cpu", inputs=inputs, folder=folder)


def _refused(status, out, err, *words):
    assert status == 1 and out == "" and err.count("\n") == 1, err
    for word in words:
        assert word in err, err


def _png_chunk_types(path):
    data, position, kinds = path.read_bytes(), 8, []
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        kinds.append(kind)
        position += 12 + length
    return kinds


# --------------------------------------------------------------- rows 1-4: TIFF structure

@pytest.mark.parametrize("alone", [False, True], ids=["in-folder", "alone"])
def test_row1_big_endian_uint16_tiff(tmp_path, capsys, alone):
    (tmp_path / "be").mkdir()
    constant = np.full((40, 30), 1234, np.uint16)
    varied = _values((40, 30), np.uint16, 100, 60000)
    tifffile.imwrite(tmp_path / "be" / "x.tif", constant.astype(">u2"), byteorder=">",
                     photometric="minisblack")
    tifffile.imwrite(tmp_path / "be" / "y.tif", varied.astype(">u2"), byteorder=">",
                     photometric="minisblack")
    inputs = sorted((tmp_path / "be").iterdir())
    argv = inputs if alone else [tmp_path / "be"]
    status, _, err = _run(capsys, *argv, "-o", f"{tmp_path / 'out'}/", inputs=inputs,
                          folder=tmp_path)
    assert status == 0 and err == "", err
    for name, image in (("x.tif", constant), ("y.tif", varied)):
        written = tifffile.imread(tmp_path / "out" / name)
        assert written.dtype == np.uint16 and written.shape == image.shape
        np.testing.assert_array_equal(written, gh.equalize_hist(image))
    assert len(np.unique(tifffile.imread(tmp_path / "out" / "x.tif"))) == 1


def test_row2_multipage_tiff_in_a_folder_keeps_every_page(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    stack = _values((5, 64, 64))
    stack[3] = _values((64, 64), low=0, high=40)
    tifffile.imwrite(tmp_path / "in" / "pages.tif", stack, photometric="minisblack",
                     metadata=None)  # five plain pages, no shape description
    status, _, err = _run(capsys, tmp_path / "in", "-o", f"{tmp_path / 'out'}/",
                          folder=tmp_path)
    assert status == 0, err
    with tifffile.TiffFile(tmp_path / "out" / "pages.tif") as tiff:
        assert len(tiff.pages) == 5
        written = tiff.asarray()
    np.testing.assert_array_equal(written, _equalized(stack, (1, 2)))


def _two_series(path):
    first, second = _values((3, 32, 32)), _values((2, 16, 16), low=50, high=90)
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(first, photometric="minisblack")
        tiff.write(second, photometric="minisblack")
    return first, second


@pytest.mark.parametrize("alone", [False, True], ids=["in-folder", "alone"])
def test_row3_tiff_with_two_series_refused_or_chosen_with_key(tmp_path, capsys, alone):
    (tmp_path / "in").mkdir()
    first, second = _two_series(tmp_path / "in" / "two.tif")
    given = tmp_path / "in" / "two.tif" if alone else tmp_path / "in"
    status, out, err = _run(capsys, given, "-o", f"{tmp_path / 'out'}/",
                            inputs=[tmp_path / "in" / "two.tif"], folder=tmp_path)
    _refused(status, out, err, "two.tif holds 2 image series", "(3, 32, 32)", "(2, 16, 16)",
             "--key 0", "--key 1")
    assert not (tmp_path / "out").exists()
    status, _, err = _run(capsys, given, "-o", f"{tmp_path / 'out'}/", "--key", "1",
                          folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "two.tif"),
                                  _equalized(second, (1, 2)))


@pytest.mark.parametrize("planes", [3, 4])
def test_row4_grey_stack_of_three_or_four_stays_grey(tmp_path, capsys, planes):
    stack = _values((planes, 24, 20))
    tifffile.imwrite(tmp_path / "grey.tif", stack, photometric="minisblack")
    np.save(tmp_path / "grey.npy", stack)
    for given, output in (("grey.tif", "a.tif"), ("grey.npy", "b.tif")):
        status, _, err = _run(capsys, tmp_path / given, tmp_path / output, folder=tmp_path)
        assert status == 0, err
        with tifffile.TiffFile(tmp_path / output) as tiff:
            assert tiff.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK
            assert len(tiff.pages) == planes and tiff.series[0].shape == stack.shape
            np.testing.assert_array_equal(tiff.asarray(), _equalized(stack, (1, 2)))


# ------------------------------------------------------------ row 13: 16-bit colour kept

@pytest.mark.parametrize("samples", [2, 3, 4], ids=["LA", "RGB", "RGBA"])
def test_row13_16bit_colour_png_keeps_16_bits(tmp_path, capsys, samples):
    cv2 = pytest.importorskip("cv2")
    from gpu_histeq.cli import _png

    (tmp_path / "in").mkdir()
    image = _values((30, 26, samples), np.uint16, 0, 65535)
    if samples == 2:
        _png.write(tmp_path / "in" / "p.png", image)
    else:  # written by libpng (adaptive filters), as a user's file would be
        order = [2, 1, 0, 3][:samples]
        assert cv2.imwrite(str(tmp_path / "in" / "p.png"), image[..., order])
    assert _png.header(tmp_path / "in" / "p.png")["depth"] == 16
    status, _, err = _run(capsys, tmp_path / "in", "-o", f"{tmp_path / 'out'}/",
                          folder=tmp_path)
    assert status == 0, err
    header = _png.header(tmp_path / "out" / "p.png")
    assert (header["depth"], header["colour"]) == (16, {2: 4, 3: 2, 4: 6}[samples])
    written = _png.read(tmp_path / "out" / "p.png")
    np.testing.assert_array_equal(written, gh.equalize_hist(image, axes=(0, 1)))
    if samples > 2:  # an independent reader agrees
        np.testing.assert_array_equal(
            cv2.imread(str(tmp_path / "out" / "p.png"), cv2.IMREAD_UNCHANGED)[..., order],
            written)


def test_row13_16bit_rgb_tiff_in_a_folder(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    image = _values((20, 18, 3), np.uint16, 0, 65535)
    tifffile.imwrite(tmp_path / "in" / "rgb.tif", image, photometric="rgb")
    status, _, err = _run(capsys, tmp_path / "in", "-o", f"{tmp_path / 'out'}/",
                          folder=tmp_path)
    assert status == 0, err
    with tifffile.TiffFile(tmp_path / "out" / "rgb.tif") as tiff:
        assert tiff.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
        written = tiff.asarray()
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written, gh.equalize_hist(image, axes=(0, 1)))


# --------------------------------------------------------------- row 14: animated PNG

def _apng(path, frames):
    pictures = [pil.fromarray(frame) for frame in frames]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=[100, 200, 300],
                     loop=2, disposal=1)  # Pillow would merge equal frames of equal disposal


def _frames(path):
    with pil.open(path) as image:
        found = []
        for index in range(image.n_frames):
            image.seek(index)
            found.append((np.asarray(image.convert(image.mode)), image.info.get("duration")))
        return found, image.info.get("loop")


@pytest.mark.parametrize("alone", [False, True], ids=["in-folder", "alone"])
def test_row14_animated_png_keeps_every_frame(tmp_path, capsys, alone):
    (tmp_path / "in").mkdir()
    frames = [_values((20, 24, 3), low=10 + 20 * i, high=120 + 40 * i) for i in range(2)]
    frames.insert(1, frames[0])  # two equal frames stay two frames
    _apng(tmp_path / "in" / "anim.png", frames)
    given = tmp_path / "in" / "anim.png" if alone else tmp_path / "in"
    status, _, err = _run(capsys, given, "-o", f"{tmp_path / 'out'}/", folder=tmp_path)
    assert status == 0, err
    assert len(_frames(tmp_path / "in" / "anim.png")[0]) == 3
    written, loop = _frames(tmp_path / "out" / "anim.png")
    assert [duration for _, duration in written] == [100, 200, 300] and loop == 2
    for (values, _), frame in zip(written, frames, strict=True):
        np.testing.assert_array_equal(values, _equalized(frame, (0, 1)))


# ---------------------------------------------------------- row 7: samples and CMYK TIFF

@pytest.mark.parametrize("case", ["grey+alpha", "rgb+2extra", "cmyk"])
def test_row7_extra_samples_and_cmyk_tiff(tmp_path, capsys, case):
    samples, photometric, extra = {"grey+alpha": (2, "minisblack", ("unassalpha",)),
                                   "rgb+2extra": (5, "rgb", ("unassalpha", "unspecified")),
                                   "cmyk": (4, "separated", None)}[case]
    image = _values((24, 22, samples))
    for folder in ("in", "out"):
        (tmp_path / folder).mkdir()
    tifffile.imwrite(tmp_path / "in" / "s.tif", image, photometric=photometric,
                     planarconfig="contig", extrasamples=extra)
    tifffile.imwrite(tmp_path / "alone.tif", image, photometric=photometric,
                     planarconfig="contig", extrasamples=extra)
    for given, output in ((tmp_path / "in", tmp_path / "out" / "s.tif"),
                          (tmp_path / "alone.tif", tmp_path / "alone_equalize.tif")):
        status, _, err = _run(capsys, given, *(["-o", f"{tmp_path / 'out'}/", "--force"]
                                                if given.is_dir() else []), folder=tmp_path)
        assert status == 0, err
        with tifffile.TiffFile(output) as tiff:
            page = tiff.pages[0]
            assert len(tiff.pages) == 1 and page.samplesperpixel == samples
            assert page.photometric == tifffile.PHOTOMETRIC[photometric.upper()]
            assert len(page.extrasamples) == len(extra or ())
            np.testing.assert_array_equal(tiff.asarray(), _equalized(image, (0, 1)))


# ---------------------------------------------------------- row 16: one output name, twice

@pytest.mark.parametrize("force", [False, True])
def test_row16_two_files_one_output_name_refused(tmp_path, capsys, force):
    (tmp_path / "c").mkdir()
    if force:  # a non-empty folder (without --force it is refused for that reason first)
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "keep.txt").write_text("mine")
    pil.fromarray(_values((10, 12, 3))).save(tmp_path / "c" / "b.jpg")
    pil.fromarray(_values((10, 12))).save(tmp_path / "c" / "b.png")
    status, out, err = _run(capsys, tmp_path / "c", "-o", tmp_path / "out",
                            *(["--force"] if force else []), folder=tmp_path)
    _refused(status, out, err, "b.jpg and b.png", "b.png", "rename one")
    if force:
        assert os.listdir(tmp_path / "out") == ["keep.txt"]
    else:
        assert not (tmp_path / "out").exists()


# ------------------------------------------------ row 15: what a folder holds is accounted

def test_row15_folder_entries_not_processed_are_listed(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    image = _values((16, 16))
    pil.fromarray(image).save(folder / "a.png")
    pil.fromarray(image).save(folder / "b.gif")
    pil.fromarray(image).save(folder / "c.webp")
    pil.fromarray(image).save(folder / "d.bmp")
    (folder / "noext").write_bytes(b"data")
    (folder / "sub").mkdir()
    os.symlink(folder / "gone.png", folder / "broken.png")
    status, out, err = _run(capsys, folder, "-o", f"{tmp_path / 'out'}/", folder=tmp_path)
    assert status == 0, err
    assert err.count("\n") == 1 and "6 entries are not processed" in err
    for name in ("b.gif", "c.webp", "d.bmp", "noext", "sub/", "broken.png (a broken link)"):
        assert name in err
    assert os.listdir(tmp_path / "out") == ["a.png"]
    status, out, err = _run(capsys, folder / "b.gif", tmp_path / "b.png", folder=tmp_path)
    _refused(status, out, err, "b.gif: unsupported input")  # the same file alone


# ------------------------------------------------------- row 18: 1-bit PNG, CMYK JPEG

def test_row18_one_bit_png_in_a_folder(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    bits = np.zeros((12, 16), bool)
    bits[3:9, 2:7] = True
    pil.fromarray(bits).save(tmp_path / "in" / "bits.png")
    pil.fromarray(_values((12, 16))).save(tmp_path / "in" / "grey.png")
    status, _, err = _run(capsys, tmp_path / "in", "-o", f"{tmp_path / 'out'}/",
                          folder=tmp_path)
    assert status == 0 and "bits.png: a 1-bit image, read as 8-bit grey" in err, err
    with pil.open(tmp_path / "out" / "bits.png") as written:
        assert written.mode == "L"
        np.testing.assert_array_equal(np.asarray(written),
                                      _equalized(bits.astype(np.uint8) * 255, (0, 1)))


def test_row18_cmyk_jpeg(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    cmyk = _values((16, 16, 4), low=30, high=220)
    picture = pil.frombuffer("CMYK", (16, 16), cmyk.tobytes(), "raw", "CMYK", 0, 1)
    picture.save(tmp_path / "in" / "k.jpg", quality=100)
    with pil.open(tmp_path / "in" / "k.jpg") as image:
        read = np.asarray(image)  # the values as decoded
    status, _, err = _run(capsys, tmp_path / "in" / "k.jpg", tmp_path / "k.jpg", folder=tmp_path)
    assert status == 0, err
    with pil.open(tmp_path / "k.jpg") as written:
        assert written.mode == "CMYK"
        difference = np.abs(np.asarray(written).astype(int) - _equalized(read, (0, 1)))
        assert difference.mean() < 3  # JPEG is lossy; the mode and values are kept
    # in a folder: written losslessly as a CMYK TIFF (PNG holds no CMYK)
    status, _, err = _run(capsys, tmp_path / "in", "-o", f"{tmp_path / 'out'}/",
                          folder=tmp_path)
    assert status == 0, err
    assert os.listdir(tmp_path / "out") == ["k.tif"]
    with tifffile.TiffFile(tmp_path / "out" / "k.tif") as tiff:
        assert tiff.pages[0].photometric == tifffile.PHOTOMETRIC.SEPARATED
        np.testing.assert_array_equal(tiff.asarray(), _equalized(read, (0, 1)))
    # a PNG output is refused before anything is written
    status, out, err = _run(capsys, tmp_path / "in" / "k.jpg", tmp_path / "k.png",
                            folder=tmp_path)
    _refused(status, out, err, "k.jpg is CMYK", ".tif or .jpg")
    assert not (tmp_path / "k.png").exists()


# ---------------------------------------------------- rows 5, 6: OME and ImageJ metadata

def test_row5_ome_tiff_keeps_ome_xml_and_axes(tmp_path, capsys):
    stack = _values((3, 4, 20, 18), np.uint16, 0, 4000)
    tifffile.imwrite(tmp_path / "cells.ome.tif", stack, ome=True, photometric="minisblack",
                     metadata={"axes": "CZYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25,
                               "PhysicalSizeZ": 1.5, "PhysicalSizeXUnit": "µm"})
    status, _, err = _run(capsys, tmp_path / "cells.ome.tif", tmp_path / "out.ome.tif",
                          folder=tmp_path)
    assert status == 0 and err == "", err
    with tifffile.TiffFile(tmp_path / "cells.ome.tif") as tiff:
        original = tiff.ome_metadata
    with tifffile.TiffFile(tmp_path / "out.ome.tif") as tiff:
        assert tiff.is_ome and tiff.series[0].axes == "CZYX"
        assert tiff.ome_metadata == original
        assert 'PhysicalSizeZ="1.5"' in tiff.ome_metadata
        np.testing.assert_array_equal(tiff.asarray(), gh.equalize_hist(stack))


def test_row6_imagej_hyperstack_keeps_axes_spacing_unit_resolution(tmp_path, capsys):
    stack = _values((2, 3, 2, 16, 14), np.uint16, 0, 3000)
    tifffile.imwrite(tmp_path / "hyper.tif", stack, imagej=True, resolution=(1 / 0.2, 1 / 0.2),
                     metadata={"axes": "TZCYX", "spacing": 1.5, "unit": "um",
                               "finterval": 0.5})
    status, _, err = _run(capsys, tmp_path / "hyper.tif", tmp_path / "out.tif", folder=tmp_path)
    assert status == 0 and err == "", err
    with tifffile.TiffFile(tmp_path / "out.tif") as tiff:
        assert tiff.is_imagej and tiff.series[0].axes == "TZCYX"
        meta = tiff.imagej_metadata
        assert (meta["spacing"], meta["unit"], meta["finterval"]) == (1.5, "um", 0.5)
        assert tiff.pages[0].tags["XResolution"].value == (5, 1)
        np.testing.assert_array_equal(tiff.asarray(), gh.equalize_hist(stack))


def test_row5_ome_pixel_type_follows_a_float_result(tmp_path, capsys):
    stack = _values((2, 3, 12, 10), np.uint16, 0, 4000)
    tifffile.imwrite(tmp_path / "c.ome.tif", stack, ome=True, photometric="minisblack",
                     metadata={"axes": "CZYX", "PhysicalSizeX": 0.5})
    status, _, err = _run(capsys, tmp_path / "c.ome.tif", tmp_path / "o.tif", "--method",
                          "skimage", folder=tmp_path)
    assert status == 0 and err == "", err
    with tifffile.TiffFile(tmp_path / "o.tif") as tiff:
        assert tiff.is_ome and 'Type="double"' in tiff.ome_metadata
        assert 'PhysicalSizeX="0.5"' in tiff.ome_metadata
        np.testing.assert_array_equal(tiff.series[0].asarray(),
                                      gh.equalize_hist(stack, method="skimage"))


def test_float_tiffs_in_a_folder_written_as_tiffs(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    image = RNG.random((12, 10)).astype(np.float32)
    tifffile.imwrite(tmp_path / "in" / "f.tif", image, photometric="minisblack")
    status, _, err = _run(capsys, tmp_path / "in", "-o", f"{tmp_path / 'out'}/",
                          folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "f.tif"),
                                  gh.equalize_hist(image))


def test_several_pages_refused_for_one_png(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "s.tif", _values((4, 8, 8)), photometric="minisblack")
    status, out, err = _run(capsys, tmp_path / "s.tif", tmp_path / "s.png", folder=tmp_path)
    _refused(status, out, err, "s.tif holds (4, 8, 8) values", "s.png holds one image",
             "write a .tif")
    assert not (tmp_path / "s.png").exists()
    planar = _values((3, 8, 6))
    tifffile.imwrite(tmp_path / "p.tif", planar, photometric="rgb", planarconfig="separate")
    status, _, err = _run(capsys, tmp_path / "p.tif", "--key", "0", "-o", tmp_path / "p.png",
                          folder=tmp_path)
    assert status == 0 and err == "", err  # its shape description is no metadata to keep
    with pil.open(tmp_path / "p.png") as written:
        np.testing.assert_array_equal(np.asarray(written),
                                      np.moveaxis(_equalized(planar, (1, 2)), 0, -1))


# --------------------------------------------------------- rows 8-10: TIFF tags and maps

def test_row8_palette_tiff_expanded_to_rgb_and_said(tmp_path, capsys):
    indices = _values((20, 20), low=0, high=6)
    colormap = np.zeros((3, 256), np.uint16)
    colormap[:, :6] = [[0, 65535, 0, 0, 65535, 32896],
                       [0, 0, 65535, 0, 65535, 32896],
                       [0, 0, 0, 65535, 0, 32896]]
    tifffile.imwrite(tmp_path / "pal.tif", indices, photometric="palette", colormap=colormap)
    status, _, err = _run(capsys, tmp_path / "pal.tif", tmp_path / "out.tif", folder=tmp_path)
    assert status == 0 and "pal.tif: a palette (colour-mapped) image" in err
    rgb = np.moveaxis(colormap, 0, -1)[indices]
    rgb = (rgb // 257).astype(np.uint8)
    with tifffile.TiffFile(tmp_path / "out.tif") as tiff:
        assert tiff.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
        np.testing.assert_array_equal(tiff.asarray(), _equalized(rgb, (0, 1)))


def test_row9_and_row10_photometric_resolution_orientation_kept(tmp_path, capsys):
    image = _values((30, 20))
    tifffile.imwrite(tmp_path / "scan.tif", image, photometric="miniswhite",
                     resolution=(300, 300), resolutionunit="inch",
                     extratags=[(274, "H", 1, 6, True), (315, "s", 0, "José".encode(), True)],
                     description="scanner page 1",
                     iccprofile=b"\0" * 128)
    (tmp_path / "in").mkdir()
    os.link(tmp_path / "scan.tif", tmp_path / "in" / "scan.tif")
    for given, output in ((tmp_path / "scan.tif", tmp_path / "scan_equalize.tif"),
                          (tmp_path / "in", tmp_path / "out" / "scan.tif")):
        extra = ["-o", f"{tmp_path / 'out'}/"] if given.is_dir() else []
        status, _, err = _run(capsys, given, *extra, folder=tmp_path)
        assert status == 0 and err == "", err
        with tifffile.TiffFile(output) as tiff:
            page = tiff.pages[0]
            assert page.photometric == tifffile.PHOTOMETRIC.MINISWHITE
            assert page.tags["XResolution"].value == (300, 1)
            assert page.resolutionunit == tifffile.RESUNIT.INCH
            assert page.tags["Orientation"].value == 6
            assert page.description == "scanner page 1" and page.tags["Artist"].value == "José"
            assert page.tags["InterColorProfile"].value == b"\0" * 128
            np.testing.assert_array_equal(tiff.asarray(), _equalized(image, (0, 1)))


def _pyramid(path, base):
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(base, photometric="minisblack", subifds=2, resolution=(300, 300))
        tiff.write(base[..., ::2, ::2] // 2, photometric="minisblack", subfiletype=1)
        tiff.write(base[..., ::4, ::4] // 3 + 50, photometric="minisblack", subfiletype=1)
    return [base, base[..., ::2, ::2] // 2, base[..., ::4, ::4] // 3 + 50]


@pytest.mark.parametrize("alone", [False, True], ids=["in-folder", "alone"])
def test_row10_pyramid_levels_each_equalized_and_written(tmp_path, capsys, alone):
    (tmp_path / "in").mkdir()
    levels = _pyramid(tmp_path / "in" / "pyr.tif", _values((2, 64, 64)))
    given = tmp_path / "in" / "pyr.tif" if alone else tmp_path / "in"
    status, _, err = _run(capsys, given, "-o", f"{tmp_path / 'out'}/", folder=tmp_path)
    assert status == 0 and err == "", err
    with tifffile.TiffFile(tmp_path / "out" / "pyr.tif") as tiff:
        written = [level.asarray() for level in tiff.series[0].levels]
        assert tiff.pages[0].tags["XResolution"].value == (300, 1)
    assert len(written) == 3
    for result, level in zip(written, levels):
        np.testing.assert_array_equal(result, _equalized(level, (1, 2)))


def test_row10_pyramid_levels_with_a_mask_are_said(tmp_path, capsys):
    levels = _pyramid(tmp_path / "pyr.tif", _values((64, 64)))
    mask = np.zeros((64, 64), bool)
    mask[10:50, 5:60] = True
    np.save(tmp_path / "mask.npy", mask)
    status, _, err = _run(capsys, tmp_path / "pyr.tif", tmp_path / "out.tif", "--mask",
                          tmp_path / "mask.npy", folder=tmp_path)
    assert status == 0, err
    assert "its 2 reduced-resolution level(s) are not written: --mask fits only" in err
    with tifffile.TiffFile(tmp_path / "out.tif") as tiff:
        assert len(tiff.series[0].levels) == 1
        np.testing.assert_array_equal(tiff.asarray(), gh.equalize_hist(levels[0], mask=mask))


def test_tiff_metadata_a_npy_cannot_hold_is_said(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "r.tif", _values((8, 8)), photometric="minisblack",
                     resolution=(300, 300))
    status, _, err = _run(capsys, tmp_path / "r.tif", tmp_path / "r.npy", folder=tmp_path)
    assert status == 0 and "r.tif: its resolution cannot be written into r.npy" in err, err


# ------------------------------------------------------- rows 11, 12: PNG/JPEG metadata

def _exif(orientation):
    exif = pil.Exif()
    exif[274] = orientation
    exif[305] = "camera"
    return exif.tobytes()


@pytest.mark.parametrize("orientation", [6, 8])
def test_row11_jpeg_exif_orientation_kept_not_applied(tmp_path, capsys, orientation):
    (tmp_path / "in").mkdir()
    rgb = _values((24, 32, 3))
    pil.fromarray(rgb).save(tmp_path / "in" / "phone.jpg", exif=_exif(orientation),
                            quality=95, dpi=(72, 72))
    with pil.open(tmp_path / "in" / "phone.jpg") as image:
        read = np.asarray(image)
    status, _, err = _run(capsys, tmp_path / "in", "-o", f"{tmp_path / 'out'}/",
                          folder=tmp_path)
    assert status == 0 and err == "", err
    with pil.open(tmp_path / "out" / "phone.png") as written:
        assert written.getexif()[274] == orientation and written.getexif()[305] == "camera"
        assert written.size == (32, 24)  # not rotated
        assert tuple(round(d) for d in written.info["dpi"]) == (72, 72)
        np.testing.assert_array_equal(np.asarray(written), _equalized(read, (0, 1)))


def _icc():
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_row12_png_icc_gamma_text_dpi_kept(tmp_path, capsys):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "lab")
    info.add_text("Description", "sample 4", zip=True)
    info.add(b"gAMA", struct.pack(">I", 45455))
    image = _values((20, 22, 3))
    icc = _icc()
    pil.fromarray(image).save(tmp_path / "p.png", pnginfo=info, icc_profile=icc, dpi=(300, 300))
    status, _, err = _run(capsys, tmp_path / "p.png", tmp_path / "o.png", folder=tmp_path)
    assert status == 0 and err == "", err
    with pil.open(tmp_path / "o.png") as written:
        assert written.info["icc_profile"] == icc
        assert written.info["gamma"] == pytest.approx(0.45455)
        assert written.text == {"Author": "lab", "Description": "sample 4"}
        assert tuple(round(d) for d in written.info["dpi"]) == (300, 300)
        np.testing.assert_array_equal(np.asarray(written), _equalized(image, (0, 1)))
    kinds = _png_chunk_types(tmp_path / "o.png")
    assert kinds.index(b"iCCP") < kinds.index(b"IDAT") and kinds.count(b"IHDR") == 1


def test_row12_jpeg_icc_and_dpi_kept(tmp_path, capsys):
    rgb = _values((20, 22, 3))
    icc = _icc()
    pil.fromarray(rgb).save(tmp_path / "j.jpg", icc_profile=icc, dpi=(200, 200), quality=95)
    for output in ("j.png", "j2.jpg"):
        status, _, err = _run(capsys, tmp_path / "j.jpg", tmp_path / output, folder=tmp_path)
        assert status == 0 and err == "", err
        with pil.open(tmp_path / output) as written:
            assert written.info["icc_profile"] == icc
            assert tuple(round(d) for d in written.info["dpi"]) == (200, 200)


def test_png_metadata_a_jpeg_cannot_hold_is_said(tmp_path, capsys):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "lab")
    pil.fromarray(_values((10, 10, 3))).save(tmp_path / "p.png", pnginfo=info)
    status, _, err = _run(capsys, tmp_path / "p.png", tmp_path / "p.jpg", folder=tmp_path)
    assert status == 0 and "tEXt are not written into p.jpg" in err, err


# ------------------------------------------------------------------ row 17: zarr layout

def test_row17_zarr_v3_attributes_names_shards_fill_value(tmp_path, capsys):
    zarr = pytest.importorskip("zarr")
    stack = _values((4, 16, 16))
    stored = zarr.create_array(str(tmp_path / "in.zarr"), shape=stack.shape, dtype=np.uint8,
                               chunks=(1, 8, 8), shards=(2, 16, 16), fill_value=42,
                               dimension_names=["t", "y", "x"],
                               attributes={"scale": [1.0, 0.5, 0.5], "units": "um"})
    stored[...] = stack
    expected = stack
    status, _, err = _run(capsys, tmp_path / "in.zarr", tmp_path / "out.zarr", folder=tmp_path)
    assert status == 0 and err == "", err
    written = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    assert written.metadata.zarr_format == 3
    assert dict(written.attrs) == {"scale": [1.0, 0.5, 0.5], "units": "um"}
    assert written.metadata.dimension_names == ("t", "y", "x")
    assert written.fill_value == 42 and written.chunks == (1, 8, 8)
    assert written.shards == (2, 16, 16)
    np.testing.assert_array_equal(written[...], _equalized(expected, (1, 2)))


def test_row17_zarr_v2_stays_v2(tmp_path, capsys):
    zarr = pytest.importorskip("zarr")
    stack = _values((3, 12, 10))
    stored = zarr.create_array(str(tmp_path / "v2.zarr"), shape=stack.shape, dtype=np.uint8,
                               chunks=(1, 12, 10), zarr_format=2, fill_value=7,
                               attributes={"units": "um"}, chunk_key_encoding={
                                   "name": "v2", "separator": "/"})
    stored[...] = stack
    status, _, err = _run(capsys, tmp_path / "v2.zarr", tmp_path / "o.zarr", folder=tmp_path)
    assert status == 0 and err == "", err
    assert (tmp_path / "o.zarr" / ".zarray").exists()
    assert not (tmp_path / "o.zarr" / "zarr.json").exists()
    written = zarr.open_array(str(tmp_path / "o.zarr"), mode="r")
    assert written.metadata.zarr_format == 2 and written.fill_value == 7
    assert dict(written.attrs) == {"units": "um"} and written.chunks == (1, 12, 10)
    np.testing.assert_array_equal(written[...], _equalized(stack, (1, 2)))


# ----------------------------------------------------------------- what held, still holds

TIFF_VARIANTS = {
    "bigtiff": ((3, 20, 16), np.uint8, {"bigtiff": True, "photometric": "minisblack"}),
    "tiled": ((2, 32, 48), np.uint16, {"tile": (16, 16), "photometric": "minisblack"}),
    "zlib": ((3, 20, 16), np.uint8, {"compression": "zlib", "photometric": "minisblack"}),
    "big-endian": ((2, 20, 16), np.uint16, {"byteorder": ">", "photometric": "minisblack"}),
    "float32": ((2, 20, 16), np.float32, {"photometric": "minisblack"}),
    "float16": ((2, 20, 16), np.float16, {"photometric": "minisblack"}),
    "int16": ((2, 20, 16), np.int16, {"photometric": "minisblack"}),
    "rgb": ((20, 16, 3), np.uint8, {"photometric": "rgb"}),
    "rgba": ((20, 16, 4), np.uint8, {"photometric": "rgb", "extrasamples": ("unassalpha",)}),
    "planar": ((3, 20, 16), np.uint8, {"photometric": "rgb", "planarconfig": "separate"}),
    "nhwc": ((2, 20, 16, 3), np.uint8, {"photometric": "rgb"}),
}


@pytest.mark.parametrize("variant", sorted(TIFF_VARIANTS))
def test_single_tiff_values_held(tmp_path, capsys, variant):
    shape, dtype, options = TIFF_VARIANTS[variant]
    low, high = (-500, 900) if dtype == np.int16 else (0, 1) if dtype in (
        np.float32, np.float16) else (5, 250)
    if np.dtype(dtype).kind == "f":
        stack = RNG.random(shape).astype(dtype)
    else:
        stack = RNG.integers(low, high, shape).astype(dtype)
    tifffile.imwrite(tmp_path / "in.TIF", stack, **options)
    status, _, err = _run(capsys, tmp_path / "in.TIF", tmp_path / "out.tif", "--chunk-size", 1,
                          folder=tmp_path)
    assert status == 0, err
    axes = {"rgb": (0, 1), "rgba": (0, 1), "planar": (1, 2), "nhwc": (1, 2)}.get(variant,
                                                                                   (1, 2))
    expected = gh.equalize_hist(stack.astype(stack.dtype.newbyteorder("=")), axes=axes)
    with tifffile.TiffFile(tmp_path / "out.tif") as tiff:
        assert tiff.series[0].shape == shape
        np.testing.assert_array_equal(tiff.asarray(), expected)
    assert ("ADOBE_DEFLATE compression is not kept" in err) == (variant == "zlib"), err


def test_pyramid_base_level_values_held(tmp_path, capsys):
    base = _values((3, 32, 32))
    with tifffile.TiffWriter(tmp_path / "pyr.tif") as tiff:
        tiff.write(base, photometric="minisblack", subifds=1)
        tiff.write(base[:, ::2, ::2], photometric="minisblack", subfiletype=1)
    status, _, err = _run(capsys, tmp_path / "pyr.tif", tmp_path / "out.npy", folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), _equalized(base, (1, 2)))


@pytest.mark.parametrize("mode", ["P", "LA", "RGBA", "I;16"])
def test_png_modes_held(tmp_path, capsys, mode):
    if mode == "I;16":
        values = _values((18, 14), np.uint16, 0, 65535)
        picture = pil.fromarray(values)
        expected = gh.equalize_hist(values)
    elif mode == "P":
        picture = pil.fromarray(_values((18, 14, 3), low=0, high=4) * 60).convert(
            "P", palette=pil.Palette.ADAPTIVE, colors=8)
        expected = _equalized(np.asarray(picture.convert("RGB")), (0, 1))
    else:
        values = _values((18, 14, len(mode)))
        picture = pil.fromarray(values)
        expected = _equalized(values, (0, 1))
    picture.save(tmp_path / "in.PNG")
    status, _, err = _run(capsys, tmp_path / "in.PNG", tmp_path / "out.png", folder=tmp_path)
    assert status == 0, err
    with pil.open(tmp_path / "out.png") as written:
        np.testing.assert_array_equal(np.asarray(written), expected)


def test_npy_layouts_held(tmp_path, capsys):
    stack = _values((3, 10, 12))
    for name, array in (("f.npy", np.asfortranarray(stack)), ("be.npy", stack.astype(">u2")),
                        ("empty.npy", np.zeros((0, 10, 12), np.uint8))):
        np.save(tmp_path / name, array)
        status, _, err = _run(capsys, tmp_path / name, tmp_path / f"o_{name}", folder=tmp_path)
        assert status == 0, err
        expected = gh.equalize_hist(np.asarray(array, array.dtype.newbyteorder("=")))
        np.testing.assert_array_equal(np.load(tmp_path / f"o_{name}"), expected)


@pytest.mark.parametrize("name", ["obj.npz", "obj.npy"])
def test_pickled_arrays_refused_without_unpickling(tmp_path, capsys, monkeypatch, name):
    objects = np.array([{"a": 1}], dtype=object)
    if name.endswith(".npz"):
        np.savez(tmp_path / name, images=objects)
    else:
        np.save(tmp_path / name, objects)
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("unpickled")
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    status, out, err = _run(capsys, tmp_path / name, tmp_path / "o.npy", folder=tmp_path)
    _refused(status, out, err, name)
    assert "unpickled" not in err and not (tmp_path / "o.npy").exists()


def test_decompression_bomb_guard_held(tmp_path, capsys, monkeypatch):
    pil.fromarray(_values((64, 64))).save(tmp_path / "big.png")
    monkeypatch.setattr(pil, "MAX_IMAGE_PIXELS", 1000)
    status, out, err = _run(capsys, tmp_path / "big.png", tmp_path / "o.png", folder=tmp_path)
    _refused(status, out, err, "big.png", "decompression bomb")
    assert not (tmp_path / "o.png").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("samples", [2, 3, 4])
def test_png_fast_decoder_equals_the_specification_decoder(tmp_path, monkeypatch, samples):
    """OpenCV decodes 16-bit colour PNGs when installed: the same values as the decoder written
    from the specification, and it is the one used (the slow path is not called)."""
    pytest.importorskip("cv2")
    from gpu_histeq.cli import _png

    image = _values((40, 33, samples), np.uint16, 0, 65535)
    _png.write(tmp_path / "a.png", image)
    slow = _png.read(tmp_path / "a.png", fast=False)
    np.testing.assert_array_equal(slow, image)
    monkeypatch.setattr(_png, "_unfilter", None)  # the fast path must not need it
    np.testing.assert_array_equal(_png.read(tmp_path / "a.png"), image)


def test_png_codec_reads_every_filter_type(tmp_path):
    """_png reads every filter type: rows written with Sub, Up, Average and Paeth by hand."""
    from gpu_histeq.cli import _png

    image = _values((6, 5, 3), np.uint16, 0, 65535)
    raw = image.astype(">u2").reshape(6, -1).view(np.uint8).astype(int)
    bpp, rows, prior = 6, [], np.zeros(raw.shape[1], int)
    for y, kind in enumerate([1, 2, 3, 4, 0, 4]):
        line = raw[y]
        left = np.concatenate([np.zeros(bpp, int), line[:-bpp]])
        corner = np.concatenate([np.zeros(bpp, int), prior[:-bpp]])
        if kind == 4:
            p = left + prior - corner
            pa, pb, pc = abs(p - left), abs(p - prior), abs(p - corner)
            predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prior, corner))
        else:
            predictor = [0, left, prior, (left + prior) // 2][kind]
        rows.append(bytes([kind]) + bytes(((line - predictor) % 256).astype(np.uint8)))
        prior = line
    buffer = io.BytesIO()
    buffer.write(_png.SIGNATURE)
    buffer.write(_png._chunk(b"IHDR", struct.pack(">IIBBBBB", 5, 6, 16, 2, 0, 0, 0)))
    buffer.write(_png._chunk(b"IDAT", zlib.compress(b"".join(rows))))
    buffer.write(_png._chunk(b"IEND", b""))
    (tmp_path / "filters.png").write_bytes(buffer.getvalue())
    np.testing.assert_array_equal(_png.read(tmp_path / "filters.png", fast=False), image)
    np.testing.assert_array_equal(_png.read(tmp_path / "filters.png"), image)


def test_png_codec_reads_adam7_interlaced_16bit(tmp_path, capsys):
    """An interlaced 16-bit RGBA PNG (passes written by hand, checked by OpenCV's libpng) reads
    back exactly and round-trips through the CLI with 16 bits."""
    cv2 = pytest.importorskip("cv2")
    from gpu_histeq.cli import _png

    image = _values((13, 11, 4), np.uint16, 0, 65535)
    raw = image.astype(">u2").view(np.uint8).reshape(13, 11, 8)
    passes = []
    for x0, y0, dx, dy in _png.ADAM7:
        sub = raw[y0::dy, x0::dx]
        if sub.size:
            passes.extend(b"\0" + bytes(row) for row in sub.reshape(sub.shape[0], -1))
    head = struct.pack(">IIBBBBB", 11, 13, 16, 6, 0, 0, 1)
    (tmp_path / "i.png").write_bytes(
        _png.SIGNATURE + _png._chunk(b"IHDR", head)
        + _png._chunk(b"IDAT", zlib.compress(b"".join(passes))) + _png._chunk(b"IEND", b""))
    decoded = cv2.imread(str(tmp_path / "i.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded[..., [2, 1, 0, 3]], image)  # the file is right
    np.testing.assert_array_equal(_png.read(tmp_path / "i.png", fast=False), image)
    status, _, err = _run(capsys, tmp_path / "i.png", tmp_path / "o.png", folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(_png.read(tmp_path / "o.png"),
                                  gh.equalize_hist(image, axes=(0, 1)))


def test_bilevel_tiff_read_as_8bit_and_said(tmp_path, capsys):
    bits = np.zeros((10, 12), bool)
    bits[2:7, 3:9] = True
    tifffile.imwrite(tmp_path / "fax.tif", bits, photometric="miniswhite")
    status, _, err = _run(capsys, tmp_path / "fax.tif", tmp_path / "o.tif", folder=tmp_path)
    assert status == 0 and "fax.tif: a 1-bit image, read as 8-bit grey" in err, err
    with tifffile.TiffFile(tmp_path / "o.tif") as tiff:
        assert tiff.pages[0].photometric == tifffile.PHOTOMETRIC.MINISWHITE
        np.testing.assert_array_equal(tiff.asarray(),
                                      _equalized(bits.astype(np.uint8) * 255, (0, 1)))


def test_dataset_wide_folder_keeps_each_tiffs_layout_and_lists_the_rest(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    stack = _values((3, 16, 12))
    for i, image in enumerate(stack):
        tifffile.imwrite(tmp_path / "in" / f"s{i}.tif", image, photometric="miniswhite",
                         resolution=(150, 150))
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    status, _, err = _run(capsys, tmp_path / "in", "-o", f"{tmp_path / 'out'}/", "--axes",
                          "all", folder=tmp_path)
    assert status == 0, err
    assert "1 entries are not processed: notes.txt" in err
    expected = gh.equalize_hist(stack, axes=(0, 1, 2))
    for i in range(3):
        with tifffile.TiffFile(tmp_path / "out" / f"s{i}.tif") as tiff:
            assert tiff.pages[0].photometric == tifffile.PHOTOMETRIC.MINISWHITE
            assert tiff.pages[0].tags["XResolution"].value == (150, 1)
            np.testing.assert_array_equal(tiff.asarray(), expected[i])
    # the clash refusal holds on this path too
    pil.fromarray(stack[0]).save(tmp_path / "in" / "s0.png")
    pil.fromarray(stack[1]).save(tmp_path / "in" / "s0.jpg")
    status, out, err = _run(capsys, tmp_path / "in", "-o", f"{tmp_path / 'again'}/", "--axes",
                            "all", folder=tmp_path)
    assert status == 1 and "s0.jpg and s0.png" in err and not (tmp_path / "again").exists()


def test_zarr_group_attributes_said_and_separator_kept(tmp_path, capsys):
    zarr = pytest.importorskip("zarr")
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=2)
    group.attrs["multiscales"] = [{"version": "0.4"}]
    stack = _values((2, 10, 8))
    array = group.create_array("0", shape=stack.shape, dtype=np.uint8, chunks=(1, 10, 8),
                               chunk_key_encoding={"name": "v2", "separator": "/"})
    array[...] = stack
    group.create_array("1", shape=(2, 5, 4), dtype=np.uint8)
    status, out, err = _run(capsys, tmp_path / "g.zarr", tmp_path / "o.zarr", folder=tmp_path)
    _refused(status, out, err, "g.zarr holds 2 arrays", "--key")
    status, _, err = _run(capsys, tmp_path / "g.zarr", tmp_path / "o.zarr", "--key", "0",
                          folder=tmp_path)
    assert status == 0 and "the group's attributes (multiscales) are not written" in err, err
    assert (tmp_path / "o.zarr" / "0" / "0" / "0").exists()  # "/" separated chunk keys
    written = zarr.open_array(str(tmp_path / "o.zarr"), mode="r")
    assert written.metadata.zarr_format == 2
    np.testing.assert_array_equal(written[...], _equalized(stack, (1, 2)))


def test_row3_one_image_of_a_multi_image_ome_tiff_gets_its_own_ome_xml(tmp_path, capsys):
    first, second = _values((2, 8, 8)), _values((3, 6, 5))
    with tifffile.TiffWriter(tmp_path / "two.ome.tif", ome=True) as tiff:
        tiff.write(first, photometric="minisblack", metadata={"axes": "ZYX"})
        tiff.write(second, photometric="minisblack", metadata={"axes": "CYX"})
    status, out, err = _run(capsys, tmp_path / "two.ome.tif", tmp_path / "o.tif",
                            folder=tmp_path)
    _refused(status, out, err, "holds 2 image series", "--key 1")
    status, _, err = _run(capsys, tmp_path / "two.ome.tif", tmp_path / "o.tif", "--key", "1",
                          folder=tmp_path)
    assert status == 0 and "one of its 2 OME images is written" in err, err
    with tifffile.TiffFile(tmp_path / "o.tif") as tiff:
        assert tiff.is_ome and [s.axes for s in tiff.series] == ["CYX"]
        np.testing.assert_array_equal(tiff.asarray(), _equalized(second, (1, 2)))


def test_tiff_layouts_a_png_or_jpeg_cannot_hold(tmp_path, capsys):
    """MinIsWhite is written inverted into a PNG (it shows the same), said; a CMYK TIFF goes
    to a CMYK JPEG, and is refused for a PNG before anything is written."""
    grey = _values((12, 10))
    tifffile.imwrite(tmp_path / "w.tif", grey, photometric="miniswhite")
    status, _, err = _run(capsys, tmp_path / "w.tif", tmp_path / "w.png", folder=tmp_path)
    assert status == 0 and "MinIsWhite (0 is white)" in err, err
    with pil.open(tmp_path / "w.png") as written:
        np.testing.assert_array_equal(np.asarray(written), 255 - _equalized(grey, (0, 1)))
    cmyk = _values((12, 10, 4))
    tifffile.imwrite(tmp_path / "k.tif", cmyk, photometric="separated")
    status, out, err = _run(capsys, tmp_path / "k.tif", tmp_path / "k.png", folder=tmp_path)
    _refused(status, out, err, "k.tif is CMYK")
    assert not (tmp_path / "k.png").exists()
    status, _, err = _run(capsys, tmp_path / "k.tif", tmp_path / "k.jpg", folder=tmp_path)
    assert status == 0, err
    with pil.open(tmp_path / "k.jpg") as written:
        assert written.mode == "CMYK" and written.size == (10, 12)


def test_cmyk_jpeg_in_a_folder_keeps_icc_dpi_and_orientation_as_tiff_tags(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    cmyk = _values((10, 14, 4))
    picture = pil.frombuffer("CMYK", (14, 10), cmyk.tobytes(), "raw", "CMYK", 0, 1)
    picture.save(tmp_path / "in" / "k.jpg", exif=_exif(6), dpi=(300, 300), icc_profile=_icc())
    status, _, err = _run(capsys, tmp_path / "in", "-o", f"{tmp_path / 'out'}/",
                          folder=tmp_path)
    assert status == 0 and "k.jpg: its exif cannot be written into k.tif" in err, err
    with tifffile.TiffFile(tmp_path / "out" / "k.tif") as tiff:
        page = tiff.pages[0]
        assert page.photometric == tifffile.PHOTOMETRIC.SEPARATED
        assert page.tags["Orientation"].value == 6
        assert page.tags["XResolution"].value == (300, 1)
        assert page.tags["InterColorProfile"].value == _icc()


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_one_bit_mask_files_stay_boolean(tmp_path, capsys, suffix):
    image = _values((3, 16, 16))  # a PNG mask reads as a stack of one: it broadcasts
    mask = np.zeros((16, 16), bool)
    mask[2:9, 3:12] = True
    if suffix == ".tif":
        tifffile.imwrite(tmp_path / "m.tif", mask, photometric="minisblack")
    else:
        pil.fromarray(mask).save(tmp_path / "m.png")
    np.save(tmp_path / "img.npy", image)
    status, _, err = _run(capsys, tmp_path / "img.npy", tmp_path / "o.npy", "--mask",
                          tmp_path / f"m{suffix}", folder=tmp_path)
    assert status == 0 and err == "", err
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), gh.equalize_hist(image, mask=mask))


def test_grey_tiff_pages_as_channels_with_channel_axis(tmp_path, capsys):
    """RGB stored as three grey pages: --channel-axis 0 --luminance takes them as RGB."""
    rgb = _values((3, 20, 16))
    tifffile.imwrite(tmp_path / "planes.tif", rgb, photometric="minisblack")
    status, _, err = _run(capsys, tmp_path / "planes.tif", tmp_path / "o.tif", "--channel-axis",
                          "0", "--luminance", folder=tmp_path)
    assert status == 0, err
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o.tif"),
                                  gh.equalize_hist(rgb, channel_axis=0, luminance=True))


def test_folder_of_rgb_pngs_stacked_into_one_tiff_keeps_samples(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    images = _values((2, 12, 10, 3))
    for i, image in enumerate(images):
        pil.fromarray(image).save(tmp_path / "in" / f"c{i}.png")
    status, _, err = _run(capsys, tmp_path / "in", tmp_path / "stack.tif", folder=tmp_path)
    assert status == 0, err
    with tifffile.TiffFile(tmp_path / "stack.tif") as tiff:
        assert len(tiff.pages) == 2 and tiff.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
        assert tiff.pages[0].shape == (12, 10, 3)
        np.testing.assert_array_equal(tiff.asarray(), _equalized(images, (1, 2)))


@pytest.mark.parametrize("output", ["scan.png", "scan.jpg"])
def test_tiff_resolution_orientation_icc_kept_in_png_and_jpeg(tmp_path, capsys, output):
    image = _values((14, 18, 3))
    icc = _icc()
    tifffile.imwrite(tmp_path / "scan.tif", image, photometric="rgb", resolution=(118.11, 118.11),
                     resolutionunit="centimeter", extratags=[(274, "H", 1, 8, True)],
                     iccprofile=icc, metadata=None)
    status, _, err = _run(capsys, tmp_path / "scan.tif", tmp_path / output, folder=tmp_path)
    assert status == 0 and err == "", err
    with pil.open(tmp_path / output) as written:
        assert written.getexif()[274] == 8 and written.info["icc_profile"] == icc
        assert tuple(round(d) for d in written.info["dpi"]) == (300, 300)
        if output.endswith(".png"):
            np.testing.assert_array_equal(np.asarray(written), _equalized(image, (0, 1)))
