"""Which of a compiled step's Triton kernels Inductor launches without its static launcher, and why (call 6: 13 of
compiled seeded MiniLM's kernels went through Triton's Python launcher, +68 Python calls a step).

    python runs/2026-11-30-compiled-host/launchers.py --out OUT/launchers      # ~1.5 min on an H200

Per variant (a fresh Inductor cache each, kernels compiled in this process): wraps
``StaticTritonCompileResult.can_statically_launch`` and records, per compiled kernel, its name, whether it got the
static launcher and, where not, the reason Inductor logged and the kernel's metadata (global and profile scratch
sizes, CTAs, shared memory); the source of each bypassed kernel goes to ``--out``/<variant>/. Then one training
step. Prints a table; writes launchers.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path

import torch


class _Reasons(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "Bypassing" in record.getMessage():
            self.messages.append(record.getMessage())


def kernels_of_step(cell: str, variant: str, out: Path) -> list[dict]:
    from torch._inductor.runtime import triton_heuristics as th

    from pmexp.bench.step import build_cell_model
    from pmexp.dropout.traced import inductor_options

    reasons = _Reasons()
    logger = logging.getLogger(th.__name__)
    logger.setLevel(logging.INFO)
    logger.addHandler(reasons)
    original = th.StaticTritonCompileResult.can_statically_launch
    seen: list[dict] = []

    def wrapped(kernel, inductor_meta, triton_meta, heuristic_type):
        before = len(reasons.messages)
        result = original(kernel, inductor_meta, triton_meta, heuristic_type)
        meta = kernel.metadata
        name = kernel.src.fn.__name__ if hasattr(kernel.src, "fn") else str(kernel.src)
        row = {"kernel": name, "static": result is not None, "heuristic": str(heuristic_type),
               "reason": reasons.messages[before] if len(reasons.messages) > before else None}
        for key in ("global_scratch_size", "profile_scratch_size", "num_ctas", "shared", "num_warps", "launch_pdl"):
            row[key] = getattr(meta, key, None)
        if result is None and hasattr(kernel.src, "fn"):
            (out / f"{name}.py").write_text(getattr(kernel.src.fn, "src", ""))
        seen.append(row)
        return result

    th.StaticTritonCompileResult.can_statically_launch = staticmethod(wrapped)
    try:
        model, inputs, dtype = build_cell_model(cell, variant, "cuda")
        compiled = torch.compile(model, options=inductor_options(variant) or None)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            loss = compiled(**inputs).loss
        loss.backward()
        torch.cuda.synchronize()
    finally:
        th.StaticTritonCompileResult.can_statically_launch = original
        logger.removeHandler(reasons)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cell", default="minilm_mrpc")
    parser.add_argument("--variants", default="standard,packed,seeded")
    args = parser.parse_args()
    torch._inductor.config.compile_threads = 1  # compile here, where the wrapper sees it
    results = {}
    for variant in args.variants.split(","):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix=f"inductor-{variant}-")
        torch._dynamo.reset()
        (args.out / variant).mkdir(parents=True, exist_ok=True)
        results[variant] = kernels_of_step(args.cell, variant, args.out / variant)
        rows = results[variant]
        bypassed = [r for r in rows if not r["static"]]
        print(f"{variant}: {len(rows)} kernels compiled, {len(bypassed)} without the static launcher")
        for r in bypassed:
            print(f"  {r['kernel']}: {r['reason']} (global scratch {r['global_scratch_size']}, "
                  f"profile scratch {r['profile_scratch_size']}, ctas {r['num_ctas']}, heuristic {r['heuristic']})")
    (args.out / "launchers.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
