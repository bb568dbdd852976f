"""Host microseconds per call of Tempo's layers against the stock ops they replace.

    python -m pmexp.bench.tempo_host --out runs/tempo-host        # CUDA, ~1 min
    python -m pmexp.bench.tempo_host --device cpu --calls 20      # the same paths on CPU (a smoke run)

Why: in a host-bound eager step every microsecond the host spends issuing a layer is a microsecond
of the step. BERT-large S512 with Tempo issued its step in 116.8 ms against 111.8 without, with 14
more kernels a layer (runs/2026-11-30-compiled-next, ``profile_step``); this table splits that per
layer kind. Tensors are a few thousand elements, so the device keeps up and the time is what
Python, autograd and the launches cost (as ``pmexp.bench step``'s host table for dropout). Each
path runs under bf16 autocast on CUDA, as in the step, forward alone and forward + sum + backward.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from pmexp.bench.dropout import report
from pmexp.bench.step import _sync_time
from pmexp.dropout import dropout
from pmexp.experiment.envinfo import env_info
from pmexp.tempo import gelu, layer_norm, softmax_dropout_matmul

__all__ = ["paths", "host_rows", "to_markdown", "main"]

HIDDEN, ROWS, HEADS, KEYS = 64, 16, 2, 16  # small: the device keeps up, the host is what is timed


def paths(device: str) -> dict[str, tuple[Callable[[], torch.Tensor], list[torch.Tensor]]]:
    """``name -> (call, leaves)``: a call returning the output and the tensors it needs gradients for."""
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(ROWS, HIDDEN, device=device, generator=g, requires_grad=True)
    w = (torch.rand(HIDDEN, device=device, generator=g) + 0.5).requires_grad_()
    b = torch.randn(HIDDEN, device=device, generator=g, requires_grad=True)
    scores = torch.randn(1, HEADS, ROWS, KEYS, device=device, generator=g, requires_grad=True)
    value = torch.randn(1, HEADS, KEYS, HIDDEN // HEADS, device=device, generator=g, requires_grad=True)
    # GELU's input is a linear layer's output: bfloat16 under the step's autocast (CPU: float32)
    h = x.detach().to(torch.bfloat16 if device == "cuda" else torch.float32).requires_grad_()
    return {
        "gelu: F.gelu": (lambda: F.gelu(h), [h]),
        "gelu: tempo": (lambda: gelu(h), [h]),  # CUDA: the C++ node of pmexp.tempo.native where it builds
        "gelu: tempo, Python node": (lambda: gelu(h, native=False), [h]),
        "layernorm: F.layer_norm": (lambda: F.layer_norm(x, (HIDDEN,), w, b), [x, w, b]),
        "layernorm: tempo": (lambda: layer_norm(x, (HIDDEN,), w, b), [x, w, b]),  # CUDA: the C++ node
        "layernorm: tempo, Python node": (lambda: layer_norm(x, (HIDDEN,), w, b, native=False), [x, w, b]),
        "attention: softmax, F.dropout, matmul": (
            lambda: F.dropout(scores.softmax(-1), 0.1, True) @ value, [scores, value]),
        "attention: softmax, packed, matmul": (
            lambda: dropout(scores.softmax(-1), 0.1, True, "packed") @ value, [scores, value]),
        "attention: tempo softmax_dropout_matmul (packed)": (
            lambda: softmax_dropout_matmul(scores, value, 0.1, True, "packed")[0], [scores, value]),
    }


def host_rows(device: str = "cuda", calls: int = 2000, warmup: int = 100) -> list[dict]:
    """One row per path: forward and forward + sum + backward microseconds, and the ratio to the
    stock path of its layer kind (the first of its kind in :func:`paths`)."""
    cuda = device.startswith("cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rows, stock = [], {}
    for name, (call, leaves) in paths(device).items():
        def both(call=call, leaves=leaves):
            with autocast:
                out = call()
            torch.autograd.grad(out.sum(), leaves)

        def forward(call=call):
            with autocast:
                return call()

        for _ in range(warmup):
            both()
        row = {"path": name, "forward_us": _sync_time(forward, calls, sync) * 1e6,
               "forward_backward_us": _sync_time(both, calls, sync) * 1e6}
        kind = name.split(":")[0]
        base = stock.setdefault(kind, row)
        row["forward_vs_stock"] = row["forward_us"] / base["forward_us"]
        row["forward_backward_vs_stock"] = row["forward_backward_us"] / base["forward_backward_us"]
        rows.append(row)
    return rows


def to_markdown(rows: list[dict], env: dict, device: str) -> str:
    lines = [f"Tempo layers' host cost per call on {env.get('device_name', device)} (torch {env['torch']}, "
             f"commit {env['pmexp_commit']}); {ROWS}x{HIDDEN} activations, attention 1x{HEADS}x{ROWS}x{KEYS}.", "",
             "| path | forward us | fwd+sum+bwd us | forward vs stock | fwd+bwd vs stock |", "|---|---|---|---|---|"]
    lines += [f"| {r['path']} | {r['forward_us']:.1f} | {r['forward_backward_us']:.1f} | "
              f"{r['forward_vs_stock']:.2f} | {r['forward_backward_vs_stock']:.2f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pmexp.bench.tempo_host", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (a smoke run: CPU kernels dominate)")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None, help="directory for tempo_host.json / tempo_host.md")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device here: pass --device cpu for a smoke run")
    rows = host_rows(args.device, args.calls, warmup=min(100, args.calls))
    env = env_info()
    report(rows, to_markdown(rows, env, args.device), env, args.out, "tempo_host", echo=True)


if __name__ == "__main__":
    main()
