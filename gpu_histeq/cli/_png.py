"""PNG chunks, and the 16-bit colour PNGs Pillow cannot hold (it reads them as 8-bit).

Pillow reads and writes 8-bit PNGs and 16-bit grey; 16-bit RGB, RGBA and grey+alpha are read and
written here, by the PNG specification (zlib streams of filtered rows, big-endian samples), so
their values round-trip bit for bit. The ancillary chunks of any PNG (ICC profile, gamma, text,
physical size, EXIF, ...) are listed here so that a writer can copy them.
"""

import struct
import zlib

import numpy as np

from ._cleanup import CliError

__all__ = ["chunks", "header", "read", "splice", "write"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Samples per pixel of each colour type (grey, RGB, palette, grey+alpha, RGBA).
SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunks(path):
    """Every chunk of the PNG at `path` as ``(type, data)``, in file order."""
    with open(path, "rb") as file:
        data = file.read()
    if not data.startswith(SIGNATURE):
        raise CliError(f"cannot read {path}: not a PNG file")
    found, position = [], len(SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if len(body) < length:
            raise CliError(f"cannot read {path}: chunk {kind!r} is truncated")
        found.append((kind, body))
        position += 12 + length
        if kind == b"IEND":
            break
    return found


def header(path):
    """The IHDR fields of a PNG: width, height, depth, colour, interlace."""
    with open(path, "rb") as file:
        head = file.read(33)
    if not head.startswith(SIGNATURE) or head[12:16] != b"IHDR":
        raise CliError(f"cannot read {path}: not a PNG file")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return {"width": width, "height": height, "depth": depth, "colour": colour,
            "interlace": interlace}


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


#: The seven passes of Adam7 interlacing: first column, first row, column step, row step.
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2))


def _unfilter(rows, bpp):
    """Filtered scanlines ``(height, 1 + stride)`` uint8 -> the image bytes ``(height, stride)``."""
    height, stride = rows.shape[0], rows.shape[1] - 1
    out = np.zeros((height, stride), np.uint8)
    prior = np.zeros(stride, np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:]
        if kind == 0:
            current = line.copy()
        elif kind == 1:  # Sub: a running sum per byte of the pixel, modulo 256
            current = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:
            current = line + prior
        elif kind in (3, 4):  # Average, Paeth: each byte depends on the one bpp before it
            values, above = line.tolist(), prior.tolist()
            for x in range(stride):
                left = values[x - bpp] if x >= bpp else 0
                if kind == 3:
                    values[x] = (values[x] + ((left + above[x]) >> 1)) & 255
                else:
                    corner = above[x - bpp] if x >= bpp else 0
                    values[x] = (values[x] + _paeth(left, above[x], corner)) & 255
            current = np.array(values, np.uint8)
        else:
            raise ValueError(f"unknown filter type {kind} in row {y}")
        out[y] = current
        prior = current
    return out


def _take(raw, position, height, stride):
    """`height` filtered rows of `stride` bytes at `position` of `raw`, and where they end."""
    end = position + height * (stride + 1)
    if end > len(raw):
        raise ValueError("the image data is truncated")
    return np.frombuffer(raw, np.uint8, end - position, position).reshape(height, stride + 1), end


def _read_with_opencv(path, samples):
    """The values as OpenCV's libpng decodes them (C speed), or None without OpenCV."""
    try:
        import cv2
    except ImportError:
        return None
    # IMREAD_UNCHANGED: 16 bits and alpha kept, no EXIF orientation applied
    image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint16 or image.ndim != 3:
        return None
    order = {2: [0, 3], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[samples]  # BGR(A), grey+alpha as BGRA
    return np.ascontiguousarray(image[..., order])


def read(path, fast=True):
    """A 16-bit grey+alpha, RGB or RGBA PNG (interlaced or not) as ``(H, W, C)`` uint16.

    Decoded by OpenCV when it is installed and `fast` (libpng, in C), else here: zlib and the
    five row filters by the PNG specification (Average and Paeth rows in Python, slow).
    """
    head = header(path)
    samples = SAMPLES[head["colour"]]
    decoded = _read_with_opencv(path, samples) if fast else None
    if decoded is not None and decoded.shape == (head["height"], head["width"], samples):
        return decoded
    width, height, bpp = head["width"], head["height"], samples * 2
    try:
        raw = zlib.decompress(b"".join(data for kind, data in chunks(path) if kind == b"IDAT"))
        if not head["interlace"]:
            image = _unfilter(_take(raw, 0, height, width * bpp)[0], bpp)
        else:
            image, position = np.zeros((height, width * bpp), np.uint8), 0
            pixels = image.reshape(height, width, bpp)
            for x0, y0, dx, dy in ADAM7:
                columns, lines = -(-(width - x0) // dx), -(-(height - y0) // dy)
                if columns <= 0 or lines <= 0:
                    continue
                rows, position = _take(raw, position, lines, columns * bpp)
                pixels[y0::dy, x0::dx] = _unfilter(rows, bpp).reshape(lines, columns, bpp)
    except (ValueError, zlib.error) as error:
        raise CliError(f"cannot read {path}: {error}") from None
    return image.view(">u2").reshape(height, width, samples).astype(np.uint16)


def _chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def write(path, image, extra=()):
    """Write ``(H, W)`` or ``(H, W, C)`` uint8/uint16 `image` as a PNG with the ancillary
    chunks `extra` (``(type, data)``, written before the image data)."""
    image = np.asarray(image)
    samples = 1 if image.ndim == 2 else image.shape[2]
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[samples]
    depth = image.dtype.itemsize * 8
    height, width = image.shape[:2]
    rows = np.ascontiguousarray(image, dtype=">u2" if depth == 16 else np.uint8)
    rows = rows.reshape(height, -1).view(np.uint8)
    body = np.empty((height, rows.shape[1] + 1), np.uint8)
    body[:, 0], body[:, 1:] = 0, rows  # filter type 0 (None) on every row
    with open(path, "wb") as file:
        file.write(SIGNATURE)
        file.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0,
                                               0)))
        for kind, data in extra:
            file.write(_chunk(kind, data))
        file.write(_chunk(b"IDAT", zlib.compress(body.tobytes(), 6)))
        file.write(_chunk(b"IEND", b""))


def splice(encoded, extra):
    """The PNG file `encoded` (bytes) with the chunks `extra` (``(type, data)``) right after its
    header, where every ancillary chunk may stand (before PLTE, acTL and IDAT)."""
    end = len(SIGNATURE) + 12 + struct.unpack(">I", encoded[8:12])[0]
    return encoded[:end] + b"".join(_chunk(kind, data) for kind, data in extra) + encoded[end:]
