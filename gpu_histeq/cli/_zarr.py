"""Zarr arrays: the layout a reader finds (:func:`zarr_layout`) and a writer gives back
(:func:`create_zarr`): format version (v2 stays v2), chunks, shards, chunk key separator, fill
value, attributes, dimension names and codecs; and the chunks an input lacks
(:func:`refuse_missing_chunks`)."""

import math
import os
from pathlib import Path

import numpy as np

from ._cleanup import CliError, optional

__all__ = ["create_zarr", "refuse_missing_chunks", "zarr_layout"]

#: An inner chunk absent from its shard: offset and length both 2**64 - 1 in the shard index.
ABSENT = np.uint64(2**64 - 1)


def zarr_layout(array):
    """What a zarr writer needs to write `array`'s layout back: format version, chunks, shards,
    fill value, attributes, dimension names, compressors and filters."""
    metadata = array.metadata
    layout = {"format": "zarr", "zarr_format": metadata.zarr_format,
              "chunks": tuple(array.chunks), "shards": getattr(array, "shards", None),
              "fill_value": array.fill_value, "attributes": dict(array.attrs),
              "dimension_names": getattr(metadata, "dimension_names", None),
              "compressors": getattr(array, "compressors", None),
              "filters": getattr(array, "filters", None), "order": getattr(array, "order", "C")}
    if metadata.zarr_format == 2:
        layout["chunk_key_encoding"] = {"name": "v2",
                                        "separator": metadata.dimension_separator or "."}
    else:
        layout["chunk_key_encoding"] = metadata.chunk_key_encoding
    return layout


def create_zarr(path, shape, dtype, rows, layout, notes):
    """A zarr array for the result, with `layout`'s format version, chunks, shards, fill
    value, attributes, dimension names and codecs (a reader's), or slabs of `rows` as chunks.

    Every chunk is written, those equal to the fill value too: a complete array, which the
    reader (refusing missing chunks) takes back."""
    zarr = optional("zarr", "writing zarr arrays")
    dtype = np.dtype(dtype)
    if not layout or layout.get("format") != "zarr":
        chunks = (max(1, min(rows, shape[0] or 1)),) + tuple(shape[1:])
        plain = dict(mode="w", shape=shape, dtype=dtype, chunks=chunks)
        try:
            return zarr.open_array(str(path), config={"write_empty_chunks": True}, **plain)
        except TypeError:  # zarr 2
            return zarr.open_array(str(path), write_empty_chunks=True, **plain)
    kwargs = {"zarr_format": layout["zarr_format"], "chunks": layout["chunks"],
              "attributes": layout["attributes"], "config": {"write_empty_chunks": True}}
    if layout["zarr_format"] == 2:  # v3 keeps the memory order out of the metadata
        kwargs["order"] = layout["order"]
    if layout["shards"] is not None:
        kwargs["shards"] = layout["shards"]
    if layout["dimension_names"] is not None:
        kwargs["dimension_names"] = layout["dimension_names"]
    if layout.get("chunk_key_encoding") is not None:
        kwargs["chunk_key_encoding"] = layout["chunk_key_encoding"]
    fill = layout["fill_value"]
    if fill is not None:
        cast = np.asarray(fill).astype(dtype)
        if np.asarray(cast == fill).all() or (np.isnan(cast) & np.isnan(np.asarray(fill, float))):
            kwargs["fill_value"] = cast.item()
        else:
            notes.append(f"the zarr fill value {fill!r} is not a {dtype} value; the output's is "
                         "the default")
    codecs = {"compressors": layout["compressors"], "filters": layout["filters"]}
    try:
        return zarr.create_array(str(path), shape=shape, dtype=dtype, overwrite=True,
                                 **kwargs, **{k: v for k, v in codecs.items() if v})
    except (ValueError, TypeError) as error:
        notes.append(f"the input's zarr codecs do not take {dtype} ({error}); the output uses "
                     "the default codecs")
        return zarr.create_array(str(path), shape=shape, dtype=dtype, overwrite=True, **kwargs)


def _sharding(array):
    """The sharding codec of a sharded zarr v3 array, or None."""
    if getattr(array, "shards", None) is None:
        return None
    found = [codec for codec in getattr(array.metadata, "codecs", ())
             if type(codec).__name__ == "ShardingCodec"]
    return found[0] if found else None


def _stored_chunks(file, codec, per_shard):
    """Which inner chunks the shard `file` holds: a boolean array of shape `per_shard`, read
    from its index (the sharding codec's ``(offset, nbytes)`` uint64 pairs, 2**64 - 1 for an
    absent chunk, at the start or end of the file, by a ``bytes`` codec and an optional
    ``crc32c``), or None for index codecs other than those (not checked)."""
    names = [type(c).__name__ for c in codec.index_codecs]
    if names not in (["BytesCodec"], ["BytesCodec", "Crc32cCodec"]):
        return None  # pragma: no cover - zarr writes bytes + crc32c
    endian = getattr(codec.index_codecs[0].endian, "value", "little") or "little"
    size = 16 * math.prod(per_shard) + 4 * (len(names) - 1)
    with open(file, "rb") as shard:
        total = os.fstat(shard.fileno()).st_size
        if total == 0:  # read by zarr as a missing shard
            return np.zeros(per_shard, bool)
        if total < size:
            raise CliError(f"its shard {file} holds {total} bytes, fewer than its index needs "
                           f"({size}): damaged or truncated")
        at_end = getattr(codec.index_location, "value", codec.index_location) == "end"
        shard.seek(total - size if at_end else 0)
        index = np.frombuffer(shard.read(size)[: 16 * math.prod(per_shard)],
                              "<u8" if endian == "little" else ">u8")
    return index.reshape(tuple(per_shard) + (2,))[..., 0] != ABSENT


def _first_missing(array, root):
    """What the first chunk a zarr array lacks is (``"its chunk ... is missing"``), or None."""
    codec = _sharding(array)
    if codec is None:  # one file per chunk: one listing of the store when none lacks
        if array.nchunks_initialized >= array.nchunks:
            return None
        for coords in np.ndindex(*array.cdata_shape):
            file = root / array.metadata.encode_chunk_key(coords)
            if not file.exists():
                return f"its chunk {file} is missing"
        return None
    shards, inner = tuple(array.shards), tuple(codec.chunk_shape)
    per_shard = tuple(s // c for s, c in zip(shards, inner))
    grid = array.cdata_shape  # inner chunks along each axis
    for coords in np.ndindex(*(-(-n // s) for n, s in zip(array.shape, shards))):
        file = root / array.metadata.encode_chunk_key(coords)
        if not file.exists():
            return f"its chunk {file} is missing"
        stored = _stored_chunks(file, codec, per_shard)
        if stored is None:  # pragma: no cover - unknown index codecs
            continue
        first = tuple(c * p for c, p in zip(coords, per_shard))
        inside = stored[tuple(slice(0, min(p, n - f)) for p, n, f in zip(per_shard, grid, first))]
        if not inside.all():  # chunks past the array's end are never stored
            if not stored.any():
                return f"its shard {file} is empty"
            chunk = tuple(int(f + i) for f, i in zip(first, np.argwhere(~inside)[0]))
            return f"its chunk {chunk} is missing from the shard {file}"
    return None


def refuse_missing_chunks(array, path):
    """Raise naming the first chunk a zarr input lacks: a chunk file, a shard file (or an empty
    one), or a chunk inside a shard (its shard's index says it is absent).

    zarr reads a missing chunk as the array's fill value (sparse arrays skip chunks that hold
    only it; zarr v2 and v3, sharded or not), which for an input would silently equalize those
    values: refused unless the user asks for fill values (``--fill-missing-chunks``). A shard
    file shorter than its index is refused as damaged.
    """
    try:
        found = _first_missing(array, Path(path) / array.path if array.path else Path(path))
    except CliError as error:
        raise CliError(f"cannot read {path}: {error}") from None
    except (AttributeError, TypeError):  # pragma: no cover - another zarr: not checked
        return
    if found is None:
        return
    fill = array.fill_value
    value = f"the fill value {fill}" if fill is not None else "0 (it has no fill value)"
    raise CliError(f"cannot read {path}: {found} (zarr would read it as {value}); give "
                   "--fill-missing-chunks to accept that")
