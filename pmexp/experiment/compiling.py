"""``torch.compile`` for a training job: a fresh Dynamo state per job, and a count that proves it compiled.

Dynamo caches compiled code per Python code object (``BertModel.forward`` and friends), with a limit on
how many versions one code object may hold (``recompile_limit``, 8). A Hydra multirun runs its jobs in
one process, each with a new model: every job adds versions, and once the limit is hit Dynamo gives up
on that code *silently* and runs it eager. A "compiled" job then measures eager training. (It happened:
runs/2026-11-28-compile's TinyBERT SDPA packed/seeded compiled cells ran eager, first step 0.05 s where a
compile takes 20 s.) So each job starts from ``torch._dynamo.reset()`` and its record counts the graphs
Dynamo captured; a job that captured none fails instead of reporting eager numbers as compiled.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch._dynamo.utils import counters

from pmexp.dropout.traced import inductor_options

__all__ = ["CompileWatch", "compile_fresh", "job_inductor_options"]


def job_inductor_options(cfg: DictConfig) -> dict[str, Any]:
    """The Inductor options a compiled job runs with: what its dropout variant needs
    (``pmexp.dropout.traced.inductor_options``), then ``trainer.inductor_options`` over them; none off Inductor."""
    if cfg.trainer.compile_backend != "inductor":
        return {}
    return {**inductor_options(cfg.dropout.variant), **OmegaConf.to_container(cfg.trainer.inductor_options)}


def compile_fresh(module: nn.Module, backend: str = "inductor", mode: str = "default",
                  options: dict[str, Any] | None = None) -> nn.Module:
    """``torch.compile(module)`` after dropping every graph an earlier job left in this process.

    ``mode="reduce-overhead"`` (inductor) replays the compiled graphs as CUDA graphs: no host cost per
    kernel, fixed shapes (pad the data to ``seq_len``). PM-Drop's compiled variants draw their seeds on the
    device, so every replay draws fresh masks. ``options``: Inductor options on top of the mode's
    (:func:`job_inductor_options` gives a job's: what its dropout variant needs, and ``trainer.inductor_options``).
    """
    torch._dynamo.reset()
    if backend != "inductor":  # modes and options are Inductor's
        return torch.compile(module, backend=backend)
    if not options:
        return torch.compile(module, backend=backend, mode=None if mode == "default" else mode)
    # torch.compile takes a mode or options, not both: the mode's options, then these
    return torch.compile(module, backend=backend, options={**torch._inductor.list_mode_options(mode), **options})


def _counts() -> tuple[int, int]:
    return counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())


class CompileWatch:
    """Graphs captured and graph breaks since it was made (Dynamo's counters never reset)."""

    def __init__(self) -> None:
        self._graphs, self._breaks = _counts()

    def graphs(self) -> int:
        """Graphs captured since it was made (a rise across a step: that step compiled)."""
        return _counts()[0] - self._graphs

    def summary(self) -> dict[str, Any]:
        graphs, breaks = _counts()
        return {"compile_graphs": graphs - self._graphs, "graph_breaks": breaks - self._breaks}

    def check(self) -> dict[str, Any]:
        """The summary; raises ``RuntimeError`` if nothing was compiled (Dynamo ran the model eager)."""
        summary = self.summary()
        if summary["compile_graphs"] == 0:
            raise RuntimeError(
                "trainer.compile=true but Dynamo captured no graph in the first step: the model ran eager "
                "(recompile limit hit, or compilation disabled). Set TORCH_LOGS=recompiles to see why, "
                "or run with trainer.compile=false."
            )
        return summary
