"""Host microseconds per call of compiled packed's draws, called as Inductor's wrapper calls them (OpOverload,
real CUDA tensors): the C++ op, then the same with the Autograd key made a fallthrough, against the Triton path's
randint + pmexp::philox_bits, torch.empty((n, 0)) alone, and aten.native_dropout. n = 4096 (the GPU keeps up:
the host's cost alone); median of 7 blocks of 2,000 calls, synchronized per block.

    python runs/2026-11-30-compiled-native/op_host_cost.py

Why: call 4 counted 19 more kernels a step and no more Inductor launches for compiled MiniLM's packed, yet its
forward took the host 1.1 ms more than standard's (about 58 us per draw).
"""
import statistics
import time

import torch

from pmexp.dropout import kernels, native  # noqa: F401  (registers pmexp::philox_bits)

assert native.load() is not None, native.why_not()
n, p = 4096, 0.1
count = torch.empty((n, 0), dtype=torch.uint8, device="cuda")
x = torch.randn(n, device="cuda")
op, triton_op = torch.ops.pmexp_native.philox_bits.default, torch.ops.pmexp.philox_bits.default


def per_call_us(fn, calls=2000, blocks=7) -> float:
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(times)


def triton_draw():
    seed = torch.ops.aten.randint.low(0, 2**62, [1], dtype=torch.int64, device=x.device)
    return triton_op(seed, n, p)


rows = {
    "pmexp_native::philox_bits (C++ op)": lambda: op(count, p),
    "torch.empty((n, 0), uint8)": lambda: torch.empty((n, 0), dtype=torch.uint8, device="cuda"),
    "randint + pmexp::philox_bits (Triton draw)": triton_draw,
    "aten.native_dropout (x, p)": lambda: torch.ops.aten.native_dropout.default(x, p, True),
}
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
for name, fn in rows.items():
    print(f"{name}: {per_call_us(fn):.1f} us", flush=True)
lib = torch.library.Library("pmexp_native", "IMPL")
lib.impl("philox_bits", torch.library.fallthrough_kernel, "Autograd")
print(f"pmexp_native::philox_bits, Autograd a fallthrough: {per_call_us(lambda: op(count, p)):.1f} us", flush=True)
