"""The bit-shift rewrites of compiled unpacking, on the CPU: what each does to a compiled tiny BERT (2 layers,
hidden 64, batch 8 x 128, packed) and to softmax -> dropout -> matmul under CUDA's realize thresholds.

    python runs/2026-11-30-compiled-bits/cpu_shifts.py > runs/2026-11-30-compiled-bits/cpu_shifts.md

Per rewrite of pmexp.masks.bits.unpack_bits_torch's compiled branch: the kernels a step calls, the 8-element
uint8 buffers Inductor allocates (the shifts, realized), the bytes kept for backward by dtype (unpacked masks
bool, bits uint8), and the float32 buffers of the probabilities' size the attention's backward stores.
"""
import re
import sys

import torch
import transformers
from torch._inductor.utils import run_and_get_code

import pmexp.dropout.traced as traced
from pmexp.dropout import apply
from pmexp.masks import SavedTensorAccounting


def per_call(packed, numel):  # main: arange + (packed[0] & 0)
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device) + (packed.reshape(-1)[:1] & 0)
    return ((packed.reshape(-1, 1) >> shifts) & 1).reshape(-1)[:numel] != 0


def constant(packed, numel):  # a constant Inductor inlines (<= 8 elements)
    shifts = torch.tensor(range(8), dtype=torch.uint8, device=packed.device)
    return ((packed.reshape(-1, 1) >> shifts) & 1).reshape(-1)[:numel] != 0


def full_size(packed, numel):  # arange + (every byte & 0)
    rows = packed.reshape(-1, 1)
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device) + (rows & 0)
    return ((rows >> shifts) & 1).reshape(-1)[:numel] != 0


def stacked(packed, numel):  # eight Python-int shifts
    flat = packed.reshape(-1)
    return torch.stack([(flat >> i) & 1 for i in range(8)], dim=1).reshape(-1)[:numel] != 0


def bert() -> tuple[int, int, dict]:
    torch._dynamo.reset()
    cfg = transformers.BertConfig(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=128, attn_implementation="eager")
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(cfg).train()
    apply(model, "packed")
    ids, labels = torch.randint(5, 99, (8, 128)), torch.randint(0, 2, (8,))
    fn = torch.compile(model)
    _, codes = run_and_get_code(lambda: fn(input_ids=ids, labels=labels).loss.backward())
    calls = sum(len(re.findall(r"^\s+cpp_fused_\w+\(", code, flags=re.M)) for code in codes)
    tiny = sum(len(re.findall(r"empty_strided_cpu\(\(8, \), \(1, \), torch\.uint8\)", code)) for code in codes)
    with SavedTensorAccounting(model.parameters()) as acct:
        loss = fn(input_ids=ids, labels=labels).loss
    loss.backward()
    return calls, tiny, acct.stats()["saved_bytes_by_dtype"]


def attention_backward_float32() -> int:
    """float32 buffers of the probabilities' size Inductor realizes in backward (matmul outputs aside), with
    CUDA's thresholds (tests/test_compile.py's _realized_probs_buffers, for this one number)."""
    from torch._inductor import graph as inductor_graph

    b, h, s, d = 2, 3, 64, 16
    found, codegen = [], inductor_graph.GraphLowering.codegen

    def spy(self, *args, **kwargs):
        found.append(sum(1 for buf in self.buffers if type(buf).__name__ == "ComputedBuffer"
                         and buf.get_dtype() == torch.float32 and buf.get_numel() >= b * h * s * s))
        return codegen(self, *args, **kwargs)

    def attention(q, k, v):
        probs = (torch.matmul(q, k.transpose(-1, -2)) * d**-0.5).softmax(-1)
        return torch.matmul(traced.packed_traced(probs, 0.3, exact=False), v)

    torch._dynamo.reset()
    q, k, v = (torch.randn(b, h, s, d, requires_grad=True) for _ in range(3))
    thresholds = {"realize_opcount_threshold": 30, "realize_acc_reads_threshold": 8, "fx_graph_cache": False}
    inductor_graph.GraphLowering.codegen = spy
    try:
        with torch._inductor.config.patch(thresholds), torch._functorch.config.patch(enable_autograd_cache=False):
            torch.compile(attention)(q, k, v).sum().backward()
    finally:
        inductor_graph.GraphLowering.codegen = codegen
    return found[1]


print(f"CPU, torch {torch.__version__}, transformers {transformers.__version__}, python {sys.version.split()[0]}\n")
print("| unpack's shifts | kernels a step | 8-element uint8 buffers | kept for backward: bool / uint8 / float32 bytes "
      "| attention backward: float32 buffers of the probabilities' size |")
print("|---|---|---|---|---|")
for rewrite in (per_call, constant, full_size, stacked):
    traced.unpack_bits_torch = rewrite  # what packed_traced calls
    calls, tiny, kept = bert()
    kept = " / ".join(f"{kept.get(dtype, 0):,}" for dtype in ("bool", "uint8", "float32"))
    print(f"| {rewrite.__name__} | {calls} | {tiny} | {kept} | {attention_backward_float32()} |")
