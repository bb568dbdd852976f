"""Python host cost of the fused attention path, kernels mocked out (CPU, tiny tensors)."""
import time, types, statistics
import torch, torch.nn.functional as F
from pmexp.dropout import functional as fn, masked_matmul as mm
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

def t(f, n=3000):
    for _ in range(200): f()
    rs = []
    for _ in range(5):
        s = time.perf_counter()
        for _ in range(n): f()
        rs.append((time.perf_counter() - s) / n * 1e6)
    return statistics.median(rs)

for name, f in [("stock", stock), ("stock_autocast", stock_autocast), ("fused", fused), ("stock", stock), ("fused", fused)]:
    print(f"{name:16s} {t(f):7.1f} us per fwd+bwd")
