"""Compiled packed with dynamic shapes and the Triton draw: does backward use the forward's mask? (call 5's failure)

    python runs/2026-11-30-compiled-host/dynamic_triton.py --out OUT/dynamic_triton   # ~1 min on an H200

tests/test_gpu.py::test_compiled_packed_fresh_bits_with_dynamic_shapes[triton] failed once in call 5 (gradient's
zeros not the output's). Here: per draw path (triton, native) and dynamic (True, False), several fresh compiles,
each run at several row counts; per run the elements where ``grad != 0`` and ``y != 0`` disagree, where they lie
(first and last flat index, x there), and the keep rates of forward and backward. Then how many exact zeros
``torch.randn`` draws on CUDA (``y != 0`` is the keep mask only where x has none).
The first triton dynamic compile's graphs and Inductor code go to ``--out``/code.log (TORCH_LOGS set by the caller).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pmexp.dropout import dropout, traced


def run(path: str, dynamic: bool, trials: int, rows_list: list[int]) -> list[dict]:
    native_draws = traced._native_draws
    if path == "triton":
        traced._native_draws = lambda x: False
    results = []
    try:
        for trial in range(trials):
            torch._dynamo.reset()
            fn = torch.compile(lambda t: dropout(t, 0.3, True, "packed"), fullgraph=True, dynamic=dynamic)
            for rows in rows_list:
                x = torch.randn(rows, 1000, device="cuda", requires_grad=True)
                y = fn(x)
                (g,) = torch.autograd.grad(y.sum(), x)
                fwd, bwd = (y != 0).reshape(-1), (g != 0).reshape(-1)
                bad = (fwd != bwd).nonzero().reshape(-1)
                results.append({
                    "path": path, "dynamic": dynamic, "trial": trial, "rows": rows, "numel": x.numel(),
                    "mismatches": bad.numel(), "first": bad[0].item() if bad.numel() else None,
                    "last": bad[-1].item() if bad.numel() else None,
                    "fwd_keep": fwd.double().mean().item(), "bwd_keep": bwd.double().mean().item(),
                    "fwd_keep_head": fwd[: 8192].double().mean().item(),
                    "fwd_keep_tail": fwd[-8192:].double().mean().item(),
                    "bwd_keep_tail": bwd[-8192:].double().mean().item(),
                    "g_values": sorted({round(v, 4) for v in g.unique().tolist()})[:6],
                    "x_at_mismatches": x.detach().reshape(-1)[bad[:8]].tolist(),
                })
                print(json.dumps(results[-1]), flush=True)
    finally:
        traced._native_draws = native_draws
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--paths", default="triton,native")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows_list = [37, 64, 129, 200, 37, 1000]
    results = []
    for path in args.paths.split(","):
        for dynamic in (True, False):
            results += run(path, dynamic, args.trials, rows_list)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    zeros = [int((torch.randn(1 << 30, device="cuda") == 0).sum()) for _ in range(4)]
    print(f"exact zeros in torch.randn(2**30) on CUDA, 4 draws: {zeros}")
    for path in args.paths.split(","):
        for dynamic in (True, False):
            rs = [r for r in results if r["path"] == path and r["dynamic"] == dynamic]
            print(f"{path} dynamic={dynamic}: {sum(r['mismatches'] > 0 for r in rs)} of {len(rs)} runs mismatched")


if __name__ == "__main__":
    main()
