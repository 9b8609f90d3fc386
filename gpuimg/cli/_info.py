"""``gpuimg info``: format, size, channels, orientation and metadata of image files."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from ._common import EXIT_FAILURES, EXIT_OK, _say


def cmd_info(args: argparse.Namespace) -> int:
    from ..codec import info

    status = EXIT_OK
    for name in _info_inputs(args.files):
        try:
            meta = _info_dict(info(name))
        except Exception as exc:  # per file: report and go on, like `process`
            print(f"{name}: error: {exc}", file=sys.stderr)
            status = EXIT_FAILURES
            continue
        if args.json:
            _say(json.dumps({"file": name, **meta}))
        else:
            _say(f"{name}: {_info_text(meta)}")
    return status

def _info_inputs(names: Sequence[str]) -> list[str]:
    """The files ``info`` reads: each name, a folder replaced by its image files (the
    suffixes ``process`` takes, recursively, in sorted order)."""
    from ..pipeline.files import discover

    out: list[str] = []
    for name in names:
        if os.path.isdir(name):
            found = [str(p) for p in discover(name)[0]]
            if not found:
                print(f"{name}: no image files in this folder", file=sys.stderr)
            out += found
        else:
            out.append(name)
    return out

_INFO_EXIF_TAGS = ("Make", "Model", "DateTimeOriginal", "DateTime", "Software")

def _info_dict(meta: Any) -> dict[str, Any]:
    fields = ("codec", "width", "height", "channels", "dtype", "orientation")
    out: dict[str, Any] = {}
    for key in fields:
        value = getattr(meta, key, None)
        if value is not None:
            out[key] = value if isinstance(value, int | float | str) else str(value)
    out.update(_metadata_summary(getattr(meta, "metadata", None)))
    return out

def _metadata_summary(md: Any) -> dict[str, Any]:
    """What ``info`` prints of a file's metadata: the ICC profile's description, the
    usual EXIF tags (and whether it holds a location), the XMP packet's size, problems."""
    if md is None:
        return {}
    out: dict[str, Any] = {}
    if md.icc is not None:
        out["icc"] = md.icc_description or f"unnamed profile ({len(md.icc)} bytes)"
    if md.exif is not None:
        tags = md.exif_tags
        named = {k: str(tags[k]).strip() for k in _INFO_EXIF_TAGS if k in tags}
        out["exif"] = {**named, "tags": len(tags), "gps": md.gps}
    if md.xmp is not None:
        out["xmp"] = f"{len(md.xmp)} characters"
    if md.problems:
        out["metadata problems"] = list(md.problems)
    return out

def _info_text(meta: dict[str, Any]) -> str:
    """One ``info`` line: "key value" pairs; the EXIF summary in parentheses."""
    parts = []
    for key, value in meta.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} {v}" for k, v in value.items())
            parts.append(f"{key} ({inner})")
        elif isinstance(value, list):
            parts.append(f"{key}: {'; '.join(map(str, value))}")
        else:
            parts.append(f"{key} {value}")
    return ", ".join(parts)
