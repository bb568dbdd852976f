"""Compiled packed's per-call shift buffers against one shared arange with functorch's "used far apart" ban off,
on the CPU: a compiled tiny BERT (2 layers, hidden 64, batch 8 x 128), cpu_shifts.py's measures.

    python runs/2026-11-30-eager-host/cpu_far_apart.py > runs/2026-11-30-eager-host/cpu_far_apart.md

Why: compiled unpacking builds its shifts per call (``arange(8) + (packed[:1] & 0)``) because one arange shared
by every dropout made the partitioner's ``ban_recompute_used_far_apart`` heuristic save unpacked masks instead
of bits (pmexp.dropout.traced); the per-call shifts cost a kernel and a saved output per call on the H200
(runs/2026-11-30-compiled-bits). With the ban off, the shared arange might be recomputed instead. The ban is a
global functorch setting, so standard's graph changes too: its rows say how. CPU only: CUDA's realize thresholds
and kernel boundaries differ, so this only says what to measure on the GPU.
"""
import sys
from pathlib import Path

import torch
import transformers

import pmexp.dropout.traced as traced

HERE = Path(__file__).parent


def functions(path: Path) -> dict:
    """A record script's functions, without running its table or main (the text before either)."""
    namespace: dict = {"__name__": __name__, "__file__": str(path)}  # a module Dynamo can find
    source = path.read_text().split("\nprint(")[0].split("\nif __name__")[0]
    exec(compile(source, str(path), "exec"), namespace)
    return namespace


shifts_script = functions(HERE.parent / "2026-11-30-compiled-bits" / "cpu_shifts.py")
views_script = functions(HERE / "cpu_recompute_views.py")


def shared(packed: torch.Tensor, numel: int) -> torch.Tensor:  # one arange node for every unpack (CSE)
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    return ((packed.reshape(-1, 1) >> shifts) & 1).reshape(-1)[:numel] != 0


print(f"CPU, torch {torch.__version__}, transformers {transformers.__version__}, python {sys.version.split()[0]}\n")
print("| variant | shifts | ban_recompute_used_far_apart | kernels a step | 8-element uint8 buffers | kept for "
      "backward: bool / uint8 / float32 / int64 bytes | forward graph outputs | attention backward: float32 buffers "
      "of the probabilities' size |")
print("|---|---|---|---|---|---|---|---|")
for variant, name, rewrite in (("standard", "", None), ("packed", "per_call", shifts_script["per_call"]),
                               ("packed", "shared", shared)):
    for ban in (True, False):
        if rewrite is not None:
            traced.unpack_bits_torch = rewrite  # what packed_traced calls
        with torch._functorch.config.patch(ban_recompute_used_far_apart=ban):
            calls, tiny, kept, outputs = views_script["bert"](variant)
            probs = shifts_script["attention_backward_float32"]() if rewrite is not None else ""
        kept = " / ".join(f"{kept.get(dtype, 0):,}" for dtype in ("bool", "uint8", "float32", "int64"))
        print(f"| {variant} | {name} | {ban} | {calls} | {tiny} | {kept} | {outputs} | {probs} |", flush=True)
