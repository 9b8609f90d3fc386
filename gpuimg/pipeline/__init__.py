"""Dataset pipeline: folders of files -> decode -> ops -> encode -> files (or tensors).

Modules, each one job, imports pointing down this list only: ``config`` (PipelineConfig),
``files`` (discovery, output naming, atomic writes), ``stages`` (queues, lanes, threads,
timers), ``results`` (Failure, Summary, report, the run's state), ``codecs`` (the
pipeline's decoders and encoders, the codec gate), ``steps`` (ops from the registry,
load_steps), ``read``, ``workers`` (the worker processes), ``decode``, ``process``,
``sinks``, ``tensors`` (the ML exit), ``options`` (RunOptions: what one run does),
``shards`` (a run split over processes), ``api`` (Pipeline).

The names below load on first use, so that ``python -m gpuimg.pipeline.workers`` (a
worker process) imports only what it needs.

Example:
    >>> from gpuimg.pipeline import Pipeline, PipelineConfig
    >>> Pipeline([], config=PipelineConfig(encode_in_worker=False), device="cpu").steps
    []
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Pipeline": "api",
    "DEFAULT_MAX_BATCH_BYTES": "options",
    "RunOptions": "options",
    "PipelineConfig": "config",
    "Summary": "results",
    "Failure": "results",
    "REPORT_NAME": "results",
    "available_ops": "steps",
    "load_steps": "steps",
}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
