"""Host cost of pmexp's routing layers in a BERT step, dropout itself replaced by torch's (CPU, tiny).

    cd runs/2026-11-30-fuse-policy/cpu_host && python host_model.py

Standard and packed interleaved (A B A B), 7 rounds of 300 steps; prints each one's median step time
and the per-round ratio standard / packed as median [min, max].
"""

import statistics
import sys
import time

import torch
import torch.nn.functional as F
import transformers

import pmexp.dropout.functional as fn
from pmexp.dropout import apply, attention_matmul, fusion, module, surgery


def stand_in(x, p=0.5, training=True, variant="packed"):
    return F.dropout(x, p, training)


def stand_in_add(x, r, p=0.5, training=True, variant="packed"):
    return F.dropout(x, p, training) + r


for m in (fn, module, surgery, attention_matmul):  # only the routing stays pmexp's
    m.dropout = stand_in
fusion.dropout_add = stand_in_add

torch.set_num_threads(1)
CFG = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=6, num_attention_heads=2,
                              intermediate_size=64, attn_implementation="eager")
IDS, LABELS = torch.randint(5, 99, (2, 8)), torch.randint(0, 2, (2,))


def build(variant):
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(CFG).train()
    if variant != "standard":
        print(apply(model, variant, fuse_attention_matmul=False), file=sys.stderr)
    return model


def step(model):
    model(input_ids=IDS, labels=LABELS).loss.backward()


def time_us(model, n=300):
    start = time.perf_counter()
    for _ in range(n):
        step(model)
    return (time.perf_counter() - start) / n * 1e6


if __name__ == "__main__":
    models = {v: build(v) for v in ("standard", "packed")}
    for model in models.values():
        for _ in range(30):
            step(model)
    res = {v: [] for v in models}
    for _ in range(7):
        for v, model in models.items():
            res[v].append(time_us(model))
    for v in res:
        print(f"{v:10s} {statistics.median(res[v]):8.1f} us/step  {[round(x) for x in res[v]]}")
    ratios = [s / p for s, p in zip(res["standard"], res["packed"], strict=True)]
    print(f"standard / packed per round: {statistics.median(ratios):.3f} [{min(ratios):.3f}, {max(ratios):.3f}]")
