"""W1 through Ray Data (issue 16) beside Pipeline.run in the same run.

W1 is bench/pipeline.py's: decode -> resize shorter side 512 -> center crop 512 -> JPEG
q90 -> write, on its generated dataset classes (default ``small`` and ``phone``). Per class:

* ``Pipeline.run`` in-process, warm (workers off, as inside an actor; and the defaults);
* :func:`gpuimg.ray.run_on_ray` with 1 actor of a whole GPU, with 2 actors of half a
  GPU each, and with 1 actor running 2 calls at once (on the CPU: CPU actors), each from
  the job's start (actors started, gpuimg imported, codecs made: what a user waits for)
  and at the margin (the job's images beyond a 128-image job's, over the time beyond
  that job's: the per-image rate once Ray and its actors run, free of their fixed start
  cost, which is shown too), with the ratio to in-process. Target: the Ray path within
  10% of in-process on one GPU.

Usage (GPU machine): python bench/ray_bench.py --classes small,phone --out ray.json
Smoke run:           python bench/ray_bench.py --device cpu --quick
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # import gpuimg from the checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import datasets  # noqa: E402  bench/datasets.py: the dataset classes
import pipeline as w1  # noqa: E402  bench/pipeline.py: W1

import gpuimg.ray  # noqa: E402
from gpuimg.pipeline import Pipeline  # noqa: E402

# (label, actors, GPU share of each, map_batches calls at once per actor)
RAY_SETUPS = (("1 actor x 1 GPU", 1, 1.0, 1), ("2 actors x 0.5 GPU", 2, 0.5, 1),
              ("1 actor x 1 GPU, 2 calls at once", 1, 1.0, 2))


def _ray_job(files: list[Path], out: Path, device: str, actors: int, share: float, calls: int) -> float:
    """Seconds of one run_on_ray job of W1 over ``files``, from the call (actors started,
    gpuimg imported in them, codecs made: what a user waits for) to its return."""
    pipe = Pipeline(w1.W1_STEPS, device=device)
    t0 = time.perf_counter()
    summary = gpuimg.ray.run_on_ray(pipe, files, out, batch_size=w1.BATCH, quality=90, actors=actors,
                                    gpus_per_actor=share, device=device, calls_per_actor=calls)
    seconds = time.perf_counter() - t0
    assert summary.failed == 0 and summary.processed == len(files), summary.failures[:3]
    return seconds


def on_ray(files: list[Path], out: Path, device: str, actors: int, share: float, calls: int) -> dict[str, float | None]:
    """W1 through run_on_ray: the rate from the job's start, and the marginal rate: the
    images beyond a short job's over the time beyond it (both jobs start their actors),
    which is what each image costs once Ray runs; None when the set is too small for it."""
    probe = files[: 2 * w1.BATCH]
    whole = _ray_job(files, out / "whole", device, actors, share, calls)
    if len(files) < 2 * len(probe):
        return {"from_start": len(files) / whole, "marginal": None, "fixed_s": None}
    short = _ray_job(probe, out / "short", device, actors, share, calls)
    marginal = (len(files) - len(probe)) / (whole - short) if whole > short else None
    return {"from_start": len(files) / whole, "marginal": marginal,
            "fixed_s": whole - len(files) / marginal if marginal else None}


def run_class(cls: str, files: list[Path], tmp: Path, device: str, res: harness.Results) -> None:
    for f in files:  # warm the page cache, as bench/pipeline.py does
        f.read_bytes()
    tag = f"[{cls}]"
    print(f"{tag} {datasets.CLASSES[cls][2]}: {len(files)} files", flush=True)
    alone = w1.ours_w1(files, tmp / cls / "alone", device, workers=False, keep_stats=False)["rate"]
    defaults = w1.ours_w1(files, tmp / cls / "defaults", device, keep_stats=False)["rate"]
    res.add(f"{tag} W1 Pipeline.run in-process, workers off", alone, "img/s", "Pipeline.run defaults", defaults)
    for label, actors, share, calls in RAY_SETUPS:
        if device != "cuda":
            label = f"{actors} CPU actor{'s' if actors > 1 else ''}" + (f", {calls} calls at once" if calls > 1 else "")
        rates = on_ray(files, tmp / cls / label.replace(" ", "_").replace(",", ""), device, actors, share, calls)
        if rates["marginal"] is not None:
            res.add(f"{tag} W1 Ray, {label}, marginal", rates["marginal"], "img/s", "Pipeline.run workers off", alone,
                    note="per image once Ray runs; target >= 0.9x")
        fixed = f"fixed cost {rates['fixed_s']:.1f} s" if rates["fixed_s"] is not None else ""
        res.add(f"{tag} W1 Ray, {label}, from job start", rates["from_start"], "img/s", "Pipeline.run workers off",
                alone, note=fixed)
    shutil.rmtree(tmp / cls, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    args = harness.parse_args(lambda p: (
        p.add_argument("--classes", default="small,phone", help="dataset classes of bench/pipeline.py, comma-separated"),
        p.add_argument("--count", type=int, default=None, help="files per class (default: each class's own; 16 with --quick)"),
        p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when usable"),
        p.add_argument("--out", metavar="PATH", default=None, help="save the results as JSON (as --json)"),
    ), argv=argv, description=__doc__.splitlines()[0])
    device = args.device or ("cuda" if harness.gpu_available() else "cpu")
    args.json = args.out or args.json
    ray = gpuimg.ray.import_ray()
    tmp = Path(tempfile.mkdtemp(prefix="gpuimg-bench-ray-"))
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    # The datasets are made first: make_dataset forks a pool, and a child forked after
    # ray.init carries Ray's signal handler, which prints a stack trace when the pool ends.
    made = {cls: datasets.generate(tmp / cls / "src", args.count or (16 if args.quick else datasets.CLASSES[cls][0]), cls)
            for cls in classes}
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    res = harness.Results(f"W1 through Ray Data ({device})")
    res.meta.update(ray=ray.__version__, cluster=ray.cluster_resources(), cores=os.cpu_count())
    try:
        for cls in classes:
            run_class(cls, made[cls], tmp, device, res)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        ray.shutdown()
    harness.report(res, args)


if __name__ == "__main__":
    main()
