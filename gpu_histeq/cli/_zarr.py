"""Zarr arrays: the layout a reader finds (:func:`zarr_layout`) and a writer gives back
(:func:`create_zarr`): format version (v2 stays v2), chunks, shards, chunk key separator, fill
value, attributes, dimension names and codecs."""

import numpy as np

from ._cleanup import optional

__all__ = ["create_zarr", "zarr_layout"]


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
