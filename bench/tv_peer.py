"""torchvision's GPU path, written well: the peer of bench/pipeline.py (imports only torch).

W1: threaded reads, batched ``decode_jpeg`` on CUDA (64), v2 resize shorter 512 (antialias)
+ center crop 512, batched ``encode_jpeg``, threaded writes. W2: the same reads and decode,
resize shorter 256 + crop 224, float32 NCHW normalised. Equal work: torchvision's CUDA
decode does not apply EXIF orientation, so images whose decoded shape is the stored one
where the oriented one was expected are turned on the device (``orient``: the oriented
(height, width) and EXIF orientation per file, measured by the caller outside the timing).

As a whole process (what a user's script costs from start)::

    python bench/tv_peer.py w1 SRC_LIST DST_DIR [ORIENT_JSON]
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg
from torchvision.transforms.v2 import functional as F

BATCH = 64
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
Orient = dict  # path -> (orientation, (height, width) oriented)


def _read(p: Path) -> torch.Tensor:
    return torch.frombuffer(bytearray(Path(p).read_bytes()), dtype=torch.uint8)


def _oriented(img: torch.Tensor, orientation: int, want: tuple[int, int]) -> torch.Tensor:
    """``img`` (CHW) with EXIF ``orientation`` applied where torchvision left it undone."""
    if orientation == 1 or orientation in (5, 6, 7, 8) and tuple(img.shape[1:]) == tuple(want):
        return img
    turn = {2: lambda t: t.flip(2), 3: lambda t: t.flip(1).flip(2), 4: lambda t: t.flip(1),
            5: lambda t: t.transpose(1, 2), 6: lambda t: torch.rot90(t, -1, dims=(1, 2)),
            7: lambda t: t.transpose(1, 2).flip(1).flip(2), 8: lambda t: torch.rot90(t, 1, dims=(1, 2))}
    return turn[orientation](img).contiguous() if orientation in turn else img


def _chunks(items: list) -> list[list]:
    return [items[k : k + BATCH] for k in range(0, len(items), BATCH)]


def _decoded(datas: list[torch.Tensor], chunk: list, orient: Orient | None) -> list[torch.Tensor]:
    # RGB for every file: the batched CUDA encoder takes 3 channels only (gray inputs
    # cost torchvision a little more than gpuimg, which keeps them gray)
    images = decode_jpeg(datas, device="cuda", mode=ImageReadMode.RGB, apply_exif_orientation=True)
    if not orient:
        return images
    return [_oriented(im, *orient[str(p)]) if str(p) in orient else im for im, p in zip(images, chunk)]


def w1(files: list, out: Path, orient: Orient | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)

    def write(p: Path, t: torch.Tensor) -> None:
        (out / Path(p).name).write_bytes(t.numpy().tobytes())

    with ThreadPoolExecutor(8) as pool:
        chunks = _chunks(files)
        pending = pool.submit(lambda: [_read(p) for p in chunks[0]]) if chunks else None
        writes = []
        for k, chunk in enumerate(chunks):
            datas = pending.result()
            if k + 1 < len(chunks):  # read ahead while the GPU works
                pending = pool.submit(lambda c=chunks[k + 1]: [_read(p) for p in c])
            images = _decoded(datas, chunk, orient)
            crops = [F.center_crop(F.resize(im, [512], antialias=True), [512, 512]) for im in images]
            host = [e.cpu() for e in encode_jpeg(crops, quality=90)]
            writes += [pool.submit(write, p, h) for p, h in zip(chunk, host)]
        for w in writes:
            w.result()


def w2(files: list, orient: Orient | None = None) -> int:
    mean = torch.tensor(MEAN, device="cuda").view(1, 3, 1, 1)
    std = torch.tensor(STD, device="cuda").view(1, 3, 1, 1)
    rows = 0
    with ThreadPoolExecutor(8) as pool:
        chunks = _chunks(files)
        future = pool.submit(lambda: [_read(p) for p in chunks[0]]) if chunks else None
        for k, chunk in enumerate(chunks):
            datas = future.result()
            if k + 1 < len(chunks):
                future = pool.submit(lambda c=chunks[k + 1]: [_read(p) for p in c])
            images = _decoded(datas, chunk, orient)
            batch = torch.stack([F.center_crop(F.resize(im, [256], antialias=True), [224, 224]) for im in images])
            _ = (batch.float().div_(255) - mean) / std
            rows += len(chunk)
    torch.cuda.synchronize()
    return rows


def available() -> bool:
    return bool(torch.cuda.is_available())


if __name__ == "__main__":  # python bench/tv_peer.py w1 SRC_LIST DST_DIR [ORIENT_JSON]
    listing, dst = Path(sys.argv[2]), Path(sys.argv[3])
    paths = listing.read_text().split("\n")
    table = {k: (o, tuple(hw)) for k, (o, hw) in json.loads(Path(sys.argv[4]).read_text()).items()} if len(sys.argv) > 4 else None
    w1([p for p in paths if p], dst, table)
