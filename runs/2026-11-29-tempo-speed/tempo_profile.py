"""Where Tempo's step time goes (issue 12, item 5): device and host time per step, the kernels with
the most device time for standard and tempo:packed, and Tempo's LayerNorm backward before and after
the change to torch's fused backward (the old formula inlined here for the comparison).

    python3 runs/2026-11-29-tempo-speed/tempo_profile.py > $OUT/profile.txt   # CUDA only
"""

from __future__ import annotations

import torch
import triton.testing
from torch.profiler import ProfilerActivity, profile

from pmexp.bench.step import make_step
from pmexp.tempo import layer_norm


def old_backward(grad, y, rstd, weight, bias):  # the torch-op backward this commit replaces
    op = torch.float32
    g, x_hat = grad.to(op), (y.to(op) - bias.to(op)) / weight.to(op)
    gw = g * weight.to(op)
    dx = rstd.to(op) * (gw - gw.mean(-1, keepdim=True) - x_hat * (gw * x_hat).mean(-1, keepdim=True))
    return dx.to(grad.dtype), (g * x_hat).sum((0, 1)), g.sum((0, 1))


def layer_norm_backward_table() -> None:
    """float32 only: under autocast LayerNorm runs in float32, so that is what BERT's bf16 steps run."""
    print("## LayerNorm backward, (16, 512, 1024) float32, loop median ms (triton.testing.do_bench)")
    x = torch.randn(16, 512, 1024, device="cuda", requires_grad=True)
    w = (torch.rand(1024, device="cuda") + 0.5).requires_grad_()
    b = torch.randn(1024, device="cuda").requires_grad_()
    g = torch.randn_like(x)
    y, _, rstd = torch.native_layer_norm(x.detach(), (1024,), w.detach(), b.detach(), 1e-5)
    stock_y = torch.nn.functional.layer_norm(x, (1024,), w, b)
    tempo_y = layer_norm(x, (1024,), w, b)
    stock = triton.testing.do_bench(lambda: torch.autograd.grad(stock_y, (x, w, b), g, retain_graph=True))
    new = triton.testing.do_bench(lambda: torch.autograd.grad(tempo_y, (x, w, b), g, retain_graph=True))
    old = triton.testing.do_bench(lambda: old_backward(g, y, rstd, w.detach(), b.detach()))
    print(f"stock {stock:.3f}  tempo now {new:.3f}  tempo before {old:.3f}")


def profile_steps(cell: str, variant: str, steps: int = 3) -> None:
    step = make_step(cell, variant, "eager")
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    # The table's footer, "Self CUDA time total", is the device time of the `steps` steps. (Summing the
    # rows' self times instead counts an op and its kernels both, and the optimizer's annotation: the
    # first call's "device ... ms/step" header lines were that sum, 278.2 and 249.0, and are not used.)
    print(f"\n## {cell} {variant}: {steps} steps")
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=18, max_name_column_width=60))


if __name__ == "__main__":
    layer_norm_backward_table()
    for variant in ("standard", "tempo:packed"):
        profile_steps("bert_large_512", variant)
