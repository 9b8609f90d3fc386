"""All operation benchmarks in one run: geometry and filters, then colour and compositing.

Each section measures a device-to-device copy of the same data in the same run and
reports every op in "x copy" (its time over the copy's), beside torchvision on CUDA
tensors where it has the op. BENCHMARKS.md ("Ops") gives CV-CUDA's figures in the same unit.

Usage: python bench/ops.py [--quick] [--json PATH]
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # import gpuimg from the checkout

import harness  # noqa: E402

SECTIONS = ("ops_geometry", "ops_color")


def main() -> None:
    def options(parser) -> None:  # the sections' own options, with their defaults
        parser.add_argument("--size", default="2160x3840", help="HxW of the colour/compose test image")

    args = harness.parse_args(options, description=__doc__)
    results = harness.Results("operations", meta=dict(device=harness.device_name()))
    for name in SECTIONS:
        importlib.import_module(name).run(results, args)
    harness.report(results, args)


if __name__ == "__main__":
    main()
