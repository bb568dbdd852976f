"""One attention core, eager and compiled: what each dropout variant saves and costs.

    python -m pmexp.bench attention --out runs/bench-attention

``softmax(q k^T / sqrt(d)) -> dropout -> @ v`` at TinyBERT's and BERT-large's shapes (bf16,
seq_len 512 and 2048), forward + backward, for each variant in eager mode and under
``torch.compile`` (Inductor), next to SDPA (``scaled_dot_product_attention`` with its own
dropout, which PM-Drop does not replace) eager and compiled. Per row: median fwd+bwd time, bytes
saved for backward by dtype (what Inductor's partitioner keeps, read through saved-tensor hooks)
and the forward's peak memory. ``compiled_dropout=custom_op`` rows build packed/seeded from the
Triton custom ops instead of traced torch ops (pmexp.dropout.traced explains the difference).
All rows run side by side in one process. Writes ``attention.json`` and ``attention.md``.
"""

from __future__ import annotations

import argparse
import os
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from pmexp.bench.dropout import _bench, _forward_peak_mb, report
from pmexp.dropout import dropout
from pmexp.experiment.envinfo import env_info
from pmexp.masks import saved_tensor_bytes

__all__ = ["run", "main"]

SHAPES = {  # (batch, heads, seq_len, head_dim)
    "tinybert_512": (64, 12, 512, 26),
    "tinybert_2048": (16, 12, 2048, 26),
    "bert_large_512": (16, 16, 512, 64),
    "bert_large_2048": (4, 16, 2048, 64),
}
P = 0.1


def _core(variant: str):
    def core(q, k, v):
        probs = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1)
        return dropout(probs, P, True, variant) @ v

    return core


def _sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, dropout_p=P)


def _cases():
    for variant in ("standard", "packed", "seeded", "packed_exact"):
        for compiled in (False, True):
            yield f"eager_attn/{variant}", _core(variant), compiled, "traced"
    for variant in ("packed", "seeded"):
        yield f"eager_attn/{variant}", _core(variant), True, "custom_op"
    for compiled in (False, True):
        yield "sdpa/standard", _sdpa, compiled, "traced"


def run_shape(name: str, shape: tuple[int, int, int, int]) -> list[dict]:
    b, h, s, d = shape
    q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    grad = torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16)
    rows = []
    for label, fn, compiled, mode in _cases():
        torch._dynamo.reset()
        os.environ["PMEXP_COMPILED_DROPOUT"] = mode  # read while tracing
        f = torch.compile(fn, fullgraph=True) if compiled else fn

        def step(f=f):
            out = f(q, k, v)
            torch.autograd.backward(out, grad)

        step()  # compiles
        saved = saved_tensor_bytes(partial(f, q, k, v))
        rows.append({
            "shape": name, "bhsd": list(shape), "case": label, "compiled": compiled,
            "compiled_dropout": mode if compiled else None,
            "fwd_bwd_ms": _bench(step),
            "saved_bytes_by_dtype": saved["saved_bytes_by_dtype"],
            "saved_mask_bytes": saved["saved_mask_bytes"], "saved_total_bytes": saved["saved_total_bytes"],
            "fwd_peak_mb": _forward_peak_mb(partial(f, q, k, v)),
            "probs_elements": b * h * s * s,
        })
    os.environ.pop("PMEXP_COMPILED_DROPOUT", None)
    for row in rows:  # against standard dropout at the same compile setting
        base = next(r for r in rows if r["case"] == "eager_attn/standard" and r["compiled"] == row["compiled"])
        row["time_vs_standard"] = row["fwd_bwd_ms"] / base["fwd_bwd_ms"]
        row["saved_vs_standard_mb"] = (row["saved_total_bytes"] - base["saved_total_bytes"]) / 2**20
    return rows


def to_markdown(rows: list[dict], env: dict) -> str:
    lines = [
        f"Attention core (bf16, p={P}) on {env['device_name']} (torch {env['torch']}, triton {env['triton']}, "
        f"commit {env['pmexp_commit']}). fwd+bwd: median of triton.testing.do_bench. Saved: bytes kept for "
        "backward by dtype, MiB. Ratios against eager-attention standard dropout at the same compile setting.",
        "",
        "| shape | case | compiled | fwd+bwd ms | vs std | saved MiB (by dtype) | saved vs std MiB | fwd peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        by = ", ".join(f"{k} {v / 2**20:.0f}" for k, v in sorted(r["saved_bytes_by_dtype"].items()))
        comp = {None: "no"}.get(r["compiled_dropout"], r["compiled_dropout"])
        lines.append(f"| {r['shape']} | {r['case']} | {comp} | {r['fwd_bwd_ms']:.3f} | {r['time_vs_standard']:.3f} | "
                     f"{r['saved_total_bytes'] / 2**20:.0f} ({by}) | {r['saved_vs_standard_mb']:+.0f} | "
                     f"{r['fwd_peak_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def run(shapes=tuple(SHAPES), out: Path | None = None) -> list[dict]:
    """Benchmark every case on the named shapes; print Markdown, write JSON + Markdown under ``out``."""
    if not torch.cuda.is_available():
        raise SystemExit("pmexp.bench attention needs a CUDA device (it times GPU kernels)")
    env = env_info()
    rows = [row for name in shapes for row in run_shape(name, SHAPES[name])]
    return report(rows, to_markdown(rows, env), env, out, "attention")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pmexp.bench attention", description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    run(args.shapes, args.out)
