"""Compiled packed's 8-byte shift buffers (one kernel and one saved output per dropout call) under functorch's
``recompute_views``, on the CPU: a compiled tiny BERT (2 layers, hidden 64, batch 8 x 128), standard and packed.

    python runs/2026-11-30-eager-host/cpu_recompute_views.py > runs/2026-11-30-eager-host/cpu_recompute_views.md

Why: unpacking's shifts are ``arange(8) + (packed[:1] & 0)`` (pmexp.masks.bits.unpack_bits_torch); the slice
``packed[:1]`` is 4x smaller than its input, so the partitioner's reduction heuristic bans recomputing it and
saves the 8-byte shifts instead: on the H200 a forward kernel and a saved output per call (19 in compiled MiniLM,
runs/2026-11-30-compiled-bits), which cost host time in a host-bound step (runs/2026-11-30-eager-host, call 2).
With ``torch._functorch.config.recompute_views`` a view is never banned, so the shifts could be recomputed from
the bits in backward. Per setting: kernels a step, 8-element uint8 buffers, bytes kept for backward by dtype,
forward graph outputs (what AOTAutograd's runtime wrapper handles per call), and the float32 buffers of the
probabilities' size attention's backward stores under CUDA's thresholds (cpu_shifts.py's measure).
"""
import re
import sys
from pathlib import Path

import torch
import transformers
from torch._inductor.utils import run_and_get_code

from pmexp.dropout import apply
from pmexp.masks import SavedTensorAccounting

CPU_SHIFTS = Path(__file__).parents[1] / "2026-11-30-compiled-bits" / "cpu_shifts.py"


def bert(variant: str) -> tuple[int, int, dict, int]:
    torch._dynamo.reset()
    cfg = transformers.BertConfig(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=128, attn_implementation="eager")
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(cfg).train()
    apply(model, variant)
    ids, labels = torch.randint(5, 99, (8, 128)), torch.randint(0, 2, (8,))
    outputs = []
    from torch._functorch import partitioners

    partition = partitioners.min_cut_rematerialization_partition

    def spy(joint, inputs, **kwargs):
        fw, bw = partition(joint, inputs, **kwargs)
        outputs.append(len(next(n for n in fw.graph.nodes if n.op == "output").args[0]))
        return fw, bw

    partitioners.min_cut_rematerialization_partition = spy
    import torch._inductor.compile_fx as compile_fx
    original = compile_fx.min_cut_rematerialization_partition
    compile_fx.min_cut_rematerialization_partition = spy
    try:
        fn = torch.compile(model)
        _, codes = run_and_get_code(lambda: fn(input_ids=ids, labels=labels).loss.backward())
    finally:
        partitioners.min_cut_rematerialization_partition = partition
        compile_fx.min_cut_rematerialization_partition = original
    calls = sum(len(re.findall(r"^\s+cpp_fused_\w+\(", code, flags=re.M)) for code in codes)
    tiny = sum(len(re.findall(r"empty_strided_cpu\(\(8, \), \(1, \), torch\.uint8\)", code)) for code in codes)
    with SavedTensorAccounting(model.parameters()) as acct:
        loss = fn(input_ids=ids, labels=labels).loss
    loss.backward()
    return calls, tiny, acct.stats()["saved_bytes_by_dtype"], sum(outputs)


def main() -> None:
    namespace: dict = {}  # cpu_shifts.py's functions, without running its table (it has no main guard)
    exec(compile(CPU_SHIFTS.read_text().split("\nprint(")[0], str(CPU_SHIFTS), "exec"), namespace)
    probs_buffers = namespace["attention_backward_float32"]
    print(f"CPU, torch {torch.__version__}, transformers {transformers.__version__}, python {sys.version.split()[0]}\n")
    print("| variant | recompute_views | kernels a step | 8-element uint8 buffers | kept for backward: bool / uint8 / "
          "float32 bytes | forward graph outputs | attention backward: float32 buffers of the probabilities' size |")
    print("|---|---|---|---|---|---|---|")
    for variant in ("standard", "packed"):
        for views in (False, True):
            with torch._functorch.config.patch(recompute_views=views):
                calls, tiny, kept, outputs = bert(variant)
                probs = probs_buffers() if variant == "packed" else ""
            kept = " / ".join(f"{kept.get(dtype, 0):,}" for dtype in ("bool", "uint8", "float32"))
            print(f"| {variant} | {views} | {calls} | {tiny} | {kept} | {outputs} | {probs} |")


if __name__ == "__main__":
    main()
