"""Python host cost of the fused attention path, kernels mocked out (CPU, tiny tensors).

    cd runs/2026-11-30-fuse-policy/cpu_host && python host_fused.py

Stock, stock under autocast and the fused path interleaved, 7 rounds of 3000 calls (forward + backward).
"""
import statistics
import time

import torch
import torch.nn.functional as F

from pmexp.dropout import functional as fn
from pmexp.dropout import masked_matmul as mm
from pmexp.dropout.attention_matmul import AttentionShims


class FakeKernels:
    KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
    @staticmethod
    def forward(x, seed, p, store_bits, out_dtype=None):
        return torch.empty_like(x, dtype=out_dtype), torch.empty(1, dtype=torch.uint8)
    @staticmethod
    def backward(grad, bits, p, out_dtype=None):
        return torch.empty_like(grad, dtype=out_dtype)

fn._KERNELS = FakeKernels
mm._uses_kernel = lambda x: True
mm.MIN_PROBABILITIES = 0
torch.set_num_threads(1)
probs0 = torch.rand(1, 1, 8, 8)
value = torch.rand(1, 1, 8, 8, requires_grad=True)

def stock():
    probs = probs0.clone().requires_grad_()
    out = torch.matmul(F.dropout(probs, 0.1, True), value)
    out.sum().backward()

def fused():
    probs = probs0.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        shims = AttentionShims("packed")
        d = shims.dropout(probs, 0.1, True)
        out = shims.matmul(d, value)
    assert type(out.grad_fn).__name__ == "_MaskedMatmulBackward"
    out.float().sum().backward()

def stock_autocast():
    probs = probs0.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = torch.matmul(F.dropout(probs, 0.1, True), value)
    out.float().sum().backward()

def time_us(f, n=3000):
    start = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - start) / n * 1e6


if __name__ == "__main__":
    paths = {"stock": stock, "stock_autocast": stock_autocast, "fused": fused}
    for f in paths.values():  # warm-up
        for _ in range(200):
            f()
    res = {name: [] for name in paths}
    for _ in range(7):  # interleaved rounds: stock, stock_autocast, fused, stock, ...
        for name, f in paths.items():
            res[name].append(time_us(f))
    for name, times in res.items():
        print(f"{name:16s} {statistics.median(times):7.1f} us per fwd+bwd  {[round(x, 1) for x in times]}")
    extra = [f - s for f, s in zip(res["fused"], res["stock_autocast"], strict=True)]
    print(f"fused - stock_autocast per round: {statistics.median(extra):.1f} us [{min(extra):.1f}, {max(extra):.1f}]")
