"""``--force`` onto an existing zarr array: replace the array's own files, keep the rest.

A zarr output is written whole under a temporary name; over an existing array (only with
``--force``) its entries replace the old array's metadata and chunks one by one, and every
other entry of that folder (a user's notes, files zarr does not know) stays where it is.
"""

import errno
import json
import os
import re

from . import _cleanup
from ._cleanup import CliError

__all__ = ["replace_zarr_array"]

#: The metadata files of zarr v2 and v3 arrays and groups.
ZARR_METADATA = (".zarray", "zarr.json", ".zgroup", ".zattrs", ".zmetadata")


def _zarr_own_entries(folder):
    """The entries of the zarr array or group at `folder` that zarr writes: metadata files
    and, for an array, its chunks (``c`` or ``c.0.0``-style names for zarr v3's default chunk
    keys, ``0.0``/``0/0``-style names otherwise). Anything else is not the array's."""
    names = set(os.listdir(folder))
    own = names & set(ZARR_METADATA)
    chunk = re.compile(r"[0-9]+(\.[0-9]+)*")
    if "zarr.json" in names:
        try:
            with open(os.path.join(folder, "zarr.json"), "rb") as file:
                meta = json.load(file)
        except FileNotFoundError:  # replaced meanwhile by a concurrent --force run
            meta = {"node_type": "array"}
        if meta.get("node_type") != "array":
            return own
        encoding = meta.get("chunk_key_encoding") or {"name": "default"}
        if encoding.get("name") == "default":
            separator = (encoding.get("configuration") or {}).get("separator", "/")
            chunk = re.compile(r"c") if separator == "/" else re.compile(r"c(\.[0-9]+)*")
    elif ".zarray" not in names:
        return own
    return own | {name for name in names if chunk.fullmatch(name)}


def replace_zarr_array(temp, final):
    """``--force`` onto an existing zarr array `final`: the entries of the finished array
    `temp` replace the old array's own entries (:func:`_zarr_own_entries`), chunks before the
    metadata; every other entry of the folder (a user's notes, other files) is kept."""
    temp, final = os.fspath(temp), os.fspath(final)
    try:
        old = _zarr_own_entries(final)
    except (OSError, ValueError) as error:
        raise CliError(f"cannot read the zarr array {final} to replace it: "
                       f"{error.strerror if isinstance(error, OSError) else error}") from None
    new = sorted(os.listdir(temp), key=lambda name: (name in ZARR_METADATA, name))
    for name in new:
        if name not in old and os.path.lexists(os.path.join(final, name)):
            raise CliError(f"refusing to replace {os.path.join(final, name)}: it is not part of "
                           "the zarr array; nothing was replaced")
    replaced = _cleanup.create_temp(final, directory=True)  # the old entries, then removed
    moved = 0

    def set_aside(name):
        nonlocal moved
        try:
            os.rename(os.path.join(final, name), os.path.join(replaced, f"{moved}-{name}"))
            moved += 1
        except FileNotFoundError:  # a concurrent --force run moved it first
            pass

    for name in new:
        for attempt in range(20):
            if name in old or attempt:
                set_aside(name)
            try:  # a file replaces atomically; a folder goes where the old one was
                os.rename(os.path.join(temp, name), os.path.join(final, name))
                break
            except OSError as error:  # a concurrent --force run put its own there first
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY) or attempt == 19:
                    raise
    for name in sorted(old - set(new)):
        set_aside(name)
    _cleanup.remove(replaced)
    _cleanup.remove(temp)
