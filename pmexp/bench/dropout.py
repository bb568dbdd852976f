"""Forward/backward time, bytes saved and forward peak memory of every dropout variant.

    python -m pmexp.bench dropout --out runs/bench-dropout

All variants run side by side in one process on the same tensors, next to a device-to-device
copy of the same size, which gives the bandwidth floor: a dropout pass must read its input and
write its output (plus the bits), so no version beats ``bytes / copy bandwidth``.
Writes ``dropout.json`` and ``dropout.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import json
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from pmexp.bench.naive import naive_packed_dropout
from pmexp.dropout import dropout
from pmexp.experiment.envinfo import env_info
from pmexp.masks import saved_tensor_bytes

__all__ = ["run", "main", "report"]

SIZES = (201_326_592, 16_777_216, 1_048_576)  # 201M = TinyBERT attention probs, B64 x 12 heads x 512^2
VARIANTS = {
    "standard": lambda x, p: F.dropout(x, p, True),
    "packed_exact": lambda x, p: dropout(x, p, True, "packed_exact"),
    "packed": lambda x, p: dropout(x, p, True, "packed"),
    "seeded": lambda x, p: dropout(x, p, True, "seeded"),
    "naive": naive_packed_dropout,
}


def _bench(fn) -> float:
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=200, return_mode="median")


def _forward_peak_mb(forward) -> float:
    gc.collect()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    y = forward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del y
    return peak / 2**20


def run_one(n: int, dtype: torch.dtype, p: float) -> list[dict]:
    """Time every variant on one size and dtype; returns one row per variant."""
    x = torch.randn(n, device="cuda", dtype=dtype).requires_grad_(True)
    grad = torch.randn_like(x)
    copy_ms = _bench(partial(torch.empty_like(x).copy_, x.detach()))
    size = x.element_size()
    bandwidth = 2 * n * size / (copy_ms * 1e-3)  # bytes/s, read + write
    bits = (n + 7) // 8
    floor_fwd_ms = (2 * n * size + bits) / bandwidth * 1e3
    floor_seeded_ms = 2 * n * size / bandwidth * 1e3
    rows = []
    for name, fn in VARIANTS.items():
        forward = partial(fn, x, p)
        fwd_ms = _bench(forward)
        y = forward()
        bwd_ms = _bench(partial(torch.autograd.grad, y, x, grad.to(y.dtype), retain_graph=True))
        out_dtype = y.dtype
        del y
        saved = saved_tensor_bytes(forward)
        floor = floor_seeded_ms if name == "seeded" else floor_fwd_ms
        rows.append(
            {
                "variant": name,
                "numel": n,
                "dtype": str(dtype).removeprefix("torch."),
                "p": p,
                "fwd_ms": fwd_ms,
                "bwd_ms": bwd_ms,
                "fwd_floor_ms": floor,
                "bwd_floor_ms": floor,
                "bwd_over_floor": bwd_ms / floor,
                "fwd_over_floor": fwd_ms / floor,
                "copy_ms": copy_ms,
                "copy_tb_s": bandwidth / 1e12,
                "saved_mask_bytes": saved["saved_mask_bytes"],
                "saved_total_bytes": saved["saved_total_bytes"],
                "fwd_peak_mb": _forward_peak_mb(forward),
                "out_dtype": str(out_dtype).removeprefix("torch."),
            }
        )
    standard = rows[0]
    for row in rows:
        row["fwd_vs_standard"] = row["fwd_ms"] / standard["fwd_ms"]
        row["bwd_vs_standard"] = row["bwd_ms"] / standard["bwd_ms"]
    return rows


def to_markdown(rows: list[dict], env: dict) -> str:
    head = (
        "| numel | dtype | variant | fwd ms | bwd ms | floor ms | fwd/floor | fwd vs std | bwd vs std "
        "| mask bytes saved | fwd peak MB | out dtype |\n|" + "---|" * 12
    )
    lines = [
        f"Dropout micro-benchmark on {env['device_name']} (torch {env['torch']}, triton {env['triton']}, "
        f"commit {env['pmexp_commit']}). Median of triton.testing.do_bench; floor = bytes moved / measured "
        "copy bandwidth.",
        "",
        head,
    ]
    for r in rows:
        lines.append(
            f"| {r['numel']:,} | {r['dtype']} | {r['variant']} | {r['fwd_ms']:.3f} | {r['bwd_ms']:.3f} | "
            f"{r['fwd_floor_ms']:.3f} | {r['fwd_over_floor']:.2f} | {r['fwd_vs_standard']:.2f} | "
            f"{r['bwd_vs_standard']:.2f} | {r['saved_mask_bytes']:,} | {r['fwd_peak_mb']:.0f} | {r['out_dtype']} |"
        )
    return "\n".join(lines) + "\n"


def run(sizes=SIZES, dtypes=(torch.float32, torch.bfloat16), p: float = 0.1, out: Path | None = None) -> list[dict]:
    """Benchmark all variants; print a Markdown table and write JSON + Markdown under ``out``."""
    if not torch.cuda.is_available():
        raise SystemExit("pmexp.bench dropout needs a CUDA device (it times GPU kernels)")
    env = env_info()
    rows = [row for n in sizes for dtype in dtypes for row in run_one(n, dtype, p)]
    return report(rows, to_markdown(rows, env), env, out, "dropout")


def report(rows: list[dict], table: str, env: dict, out: Path | None, stem: str, echo: bool = True) -> list[dict]:
    """Print a benchmark's Markdown table (unless not ``echo``); with ``out``, also write ``<stem>.json``
    (env + rows) and ``<stem>.md`` there. Returns ``rows``."""
    if echo:
        print(table)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{stem}.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2))
        (out / f"{stem}.md").write_text(table)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pmexp.bench dropout", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--p", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    run(args.sizes, [getattr(torch, d) for d in args.dtypes], args.p, args.out)
