"""OpenCV's W1 in one process per core: the CPU peer of bench/pipeline.py (imports only
OpenCV, NumPy and harness, so its spawned workers start as fast as a user's script's would).

Equal work with ``gpuimg process SRC DST --resize-shorter 512 --center-crop 512x512``
(defaults: JPEG q90, mode ``keep``):

- JPEGs are read with ``IMREAD_ANYCOLOR``: EXIF orientation applied (as gpuimg does), gray
  files stay gray (gpuimg keeps them one channel too).
- PNG and WebP are read with ``IMREAD_UNCHANGED`` (alpha kept; our files carry no EXIF);
  an alpha channel is composited onto white after the crop, as gpuimg's ``keep`` mode does
  for a format without alpha (it composites at encode time, on the 512x512 result).
- Resize shorter side to 512: ``INTER_AREA`` when shrinking (antialiased, like gpuimg's
  antialiased resize), ``INTER_LINEAR`` when enlarging; center crop 512; JPEG q90; write.

As a script (timed by bench/pipeline.py; prints JSON: images/s from pool start and warm)::

    python bench/cv_peer.py SRC_LIST DST_DIR [WARM_REPEATS]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness, also when loaded by the tests

import harness  # noqa: E402

SIZE = 512
QUALITY = 90


def composite_white(img: np.ndarray) -> np.ndarray:
    """BGR(A) -> BGR: alpha composited onto white (a BGR or gray image is returned as is).

    >>> composite_white(np.array([[[0, 0, 0, 0], [0, 0, 0, 255]]], np.uint8)).tolist()
    [[[255, 255, 255], [0, 0, 0]]]
    """
    if img.ndim < 3 or img.shape[2] != 4:
        return img
    a = img[..., 3:4].astype(np.float32) * (1 / 255)
    return (img[..., :3] * a + 255 * (1 - a) + 0.5).astype(np.uint8)


def w1_image(img: np.ndarray) -> np.ndarray:
    """Resize shorter side to 512, center crop 512, alpha onto white."""
    import cv2

    h, w = img.shape[:2]
    scale = SIZE / min(h, w)
    size = (max(SIZE, round(w * scale)), max(SIZE, round(h * scale)))
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (img.shape[0] - SIZE) // 2, (img.shape[1] - SIZE) // 2
    return composite_white(img[top : top + SIZE, left : left + SIZE])


def w1_one(job: tuple[str, str]) -> None:
    """One file of W1: read, :func:`w1_image`, JPEG q90, write."""
    import cv2

    src, dst = job
    jpeg = Path(src).suffix.lower() in (".jpg", ".jpeg")
    img = cv2.imread(src, cv2.IMREAD_ANYCOLOR if jpeg else cv2.IMREAD_UNCHANGED)
    if img is None:
        raise RuntimeError(f"OpenCV could not read {src}")
    ok, data = cv2.imencode(".jpg", w1_image(img), [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    Path(dst).write_bytes(data.tobytes())


def main(argv: list[str]) -> int:
    listing, dst = Path(argv[0]), Path(argv[1])
    repeat = int(argv[2]) if len(argv) > 2 else 1
    dst.mkdir(parents=True, exist_ok=True)
    jobs = [(p, str(dst / (Path(p).stem + ".jpg"))) for p in listing.read_text().split("\n") if p]
    print(json.dumps(harness.per_core_rates(w1_one, jobs, repeat=repeat)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
