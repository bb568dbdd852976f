"""Where a training step's device time goes, per dropout variant (torch.profiler).

    python -m pmexp.bench.profile_step --model bert_large --variants standard packed seeded

Builds a random-init BERT (eager attention), applies the variant, and profiles a few bf16
training steps on synthetic tokens; prints the kernels with the most device time and the step's
wall time. For finding why one variant is slower than another, not for reported throughput.
"""

from __future__ import annotations

import argparse
import time

import torch

from pmexp.dropout import apply

SIZES = {
    "bert_large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "tinybert": dict(hidden_size=312, num_hidden_layers=4, num_attention_heads=12, intermediate_size=1200),
}


def profile(model_name: str, variant: str, batch: int, seq: int, steps: int = 3) -> None:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(**SIZES[model_name], max_position_embeddings=max(512, seq), attn_implementation="eager")
    model = BertForSequenceClassification(cfg).cuda().train()
    apply(model, variant)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), device="cuda")
    labels = torch.randint(0, 2, (batch,), device="cuda")

    def step():
        with torch.autocast("cuda", torch.bfloat16):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CUDA, torch.profiler.ProfilerActivity.CPU]
    ) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    print(
        f"== {model_name} {variant} B{batch} S{seq}: {(time.perf_counter() - t0) / steps * 1e3:.1f} ms/step (profiled)"
    )
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=60))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bert_large", choices=sorted(SIZES))
    parser.add_argument("--variants", nargs="+", default=["standard", "packed", "seeded"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=512)
    args = parser.parse_args()
    for variant in args.variants:
        profile(args.model, variant, args.batch, args.seq)


if __name__ == "__main__":
    main()
