"""Stock GELU vs Tempo GELU (Triton kernels, and the torch bisection) on a BERT-large FFN activation.

    python -m pmexp.bench.tempo --out runs/bench-tempo/tempo.json

All paths run side by side in one process on the same tensors (default 16 x 512 x 4096
elements, float32 and bfloat16): forward, backward and forward+backward times (median of
``triton.testing.do_bench``, CUDA events after warm-up), and the memory each path adds, in MiB:
the forward peak above the start (input already there); what forward keeps for backward beyond
its output (the input is then made inside the measured region by a copy that saves nothing, so
it stays alive only if the GELU saves it: stock does, Tempo keeps ``y`` and the bits instead);
and the backward peak above what forward left (``dx`` and temporaries).

Paths: ``stock`` (``F.gelu``), ``tempo_kernel`` (the Newton kernel, every dtype), ``tempo_table``
(16-bit dtypes only: ``g'`` gathered from :func:`pmexp.tempo.kernels.grad_table`, the same gradient
bits; skipped for other dtypes) by Triton kernels under a Python node, ``tempo_native`` (the same with
the C++ node and CUDA kernels of :mod:`pmexp.tempo.native`, 16-bit only: the eager default), ``tempo_torch``
(the float64 bisection). For the table rows:

    python -m pmexp.bench.tempo --dtypes bfloat16 float16 --paths stock tempo_kernel tempo_table tempo_native
"""

from __future__ import annotations

import argparse
import gc
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from pmexp.bench.dropout import _bench, _forward_peak_mb
from pmexp.experiment.envinfo import env_info
from pmexp.tempo import gelu

__all__ = ["PATHS", "TABLE_PATHS", "SHAPE", "run", "run_one", "main"]

SHAPE = (16, 512, 4096)  # BERT-large FFN activation: batch 16, sequence 512, intermediate 4096
PATHS = {
    "stock": F.gelu,
    "tempo_kernel": lambda x: gelu(x, True, kernel=True, table=False),  # the Newton kernel, every dtype
    "tempo_table": lambda x: gelu(x, True, kernel=True, table=True, native=False),  # g' from a table: 16-bit only
    "tempo_native": lambda x: gelu(x, True, kernel=True, table=True),  # the table path's C++ node (16-bit only)
    "tempo_torch": lambda x: gelu(x, True, kernel=False),  # the float64 bisection (reference)
}
TABLE_PATHS = ("tempo_table", "tempo_native")  # run for pmexp.tempo.kernels.TABLE_DTYPES only


def _kept_mb(fn, h: torch.Tensor) -> float:
    """What forward keeps for backward beyond its output, the input made inside the measured region."""
    gc.collect()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    y = fn(h * 1.0)  # a temporary input that only the GELU's saved tensors can keep alive
    torch.cuda.synchronize()
    kept = torch.cuda.memory_allocated() - base - y.numel() * y.element_size()
    del y
    return kept / 2**20


def _backward_peak_mb(fn, x: torch.Tensor, grad: torch.Tensor) -> float:
    """Peak memory during backward above what forward left (``dx`` and any temporaries)."""
    y = fn(x)
    gc.collect()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    (dx,) = torch.autograd.grad(y, x, grad)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del y, dx
    return peak / 2**20


def run_one(shape: tuple[int, ...], dtype: torch.dtype, paths: list[str]) -> list[dict]:
    """Time every path on one shape and dtype; one row per path (table paths for 16-bit dtypes only)."""
    from pmexp.tempo.kernels import TABLE_DTYPES  # imports triton: not at module import (--help on CPU)

    paths = [name for name in paths if name not in TABLE_PATHS or dtype in TABLE_DTYPES]
    torch.manual_seed(0)
    x = torch.randn(shape, device="cuda", dtype=dtype).requires_grad_(True)
    grad = torch.randn_like(x)
    rows = []
    for name in paths:
        fn = PATHS[name]
        fwd_ms = _bench(lambda fn=fn: fn(x))
        y = fn(x)
        bwd_ms = _bench(lambda y=y: torch.autograd.grad(y, x, grad, retain_graph=True))
        del y
        step_ms = _bench(lambda fn=fn: torch.autograd.grad(fn(x), x, grad))
        rows.append(
            {
                "path": name,
                "shape": list(shape),
                "numel": x.numel(),
                "dtype": str(dtype).removeprefix("torch."),
                "fwd_ms": fwd_ms,
                "bwd_ms": bwd_ms,
                "fwd_bwd_ms": step_ms,
                "fwd_peak_mb": _forward_peak_mb(lambda fn=fn: fn(x)),
                "kept_mb": _kept_mb(fn, x),
                "bwd_peak_mb": _backward_peak_mb(fn, x, grad),
            }
        )
    stock = next((r for r in rows if r["path"] == "stock"), None)
    for row in rows:
        if stock is not None:
            row["fwd_bwd_vs_stock"] = row["fwd_bwd_ms"] / stock["fwd_bwd_ms"]
            row["bwd_vs_stock"] = row["bwd_ms"] / stock["bwd_ms"]
    return rows


def to_markdown(rows: list[dict], env: dict) -> str:
    lines = [
        f"Tempo GELU micro-benchmark on {env['device_name']} (torch {env['torch']}, triton {env['triton']}, "
        f"commit {env['pmexp_commit']}). Median of triton.testing.do_bench; memory in MiB above the start "
        "(fwd peak: above the start, input given; kept: saved for backward beyond the output, input made in "
        "forward; bwd peak: above what forward left, dx included).",
        "",
        "| shape | dtype | path | fwd ms | bwd ms | fwd+bwd ms | fwd+bwd vs stock | kept MiB | fwd peak MiB "
        "| bwd peak MiB |\n|" + "---|" * 10,
    ]
    for r in rows:
        lines.append(
            f"| {'x'.join(map(str, r['shape']))} | {r['dtype']} | {r['path']} | {r['fwd_ms']:.3f} | "
            f"{r['bwd_ms']:.3f} | {r['fwd_bwd_ms']:.3f} | {r.get('fwd_bwd_vs_stock', float('nan')):.2f} | "
            f"{r['kept_mb']:.0f} | {r['fwd_peak_mb']:.0f} | {r['bwd_peak_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def run(
    shape: tuple[int, ...] = SHAPE,
    dtypes=(torch.bfloat16, torch.float32),
    paths: list[str] | None = None,
    out: Path | None = None,
) -> list[dict]:
    """Benchmark the paths; print a Markdown table and write JSON to ``out`` (a file path)."""
    if not torch.cuda.is_available():
        raise SystemExit("pmexp.bench.tempo needs a CUDA device (it times GPU kernels)")
    env = env_info()
    rows = [row for dtype in dtypes for row in run_one(tuple(shape), dtype, list(paths or PATHS))]
    table = to_markdown(rows, env)
    print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pmexp.bench.tempo", description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs="+", default=list(SHAPE))
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    parser.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS))
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args(argv)
    run(tuple(args.shape), [getattr(torch, d) for d in args.dtypes], args.paths, args.out)


if __name__ == "__main__":
    main()
