"""Host cost of pmexp's routing layers in a BERT step, dropout itself replaced by torch's (CPU, tiny)."""
import statistics, sys, time
import torch, torch.nn.functional as F, transformers
import pmexp.dropout.functional as fn
from pmexp.dropout import apply, fusion, module, surgery, attention_matmul

def stand_in(x, p=0.5, training=True, variant="packed"):
    return F.dropout(x, p, training)
def stand_in_add(x, r, p=0.5, training=True, variant="packed"):
    return F.dropout(x, p, training) + r
for m in (fn, module, surgery, attention_matmul):
    m.dropout = stand_in
fusion.dropout_add = stand_in_add

torch.set_num_threads(1)
cfg = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=6, num_attention_heads=2,
                              intermediate_size=64, attn_implementation="eager")
def build(variant):
    torch.manual_seed(0)
    m = transformers.BertForSequenceClassification(cfg).train()
    if variant != "standard":
        print(apply(m, variant, fuse_attention_matmul=False), file=sys.stderr)
    return m
ids = torch.randint(5, 99, (2, 8)); labels = torch.randint(0, 2, (2,))
models = {v: build(v) for v in ("standard", "packed")}
def step(m):
    m(input_ids=ids, labels=labels).loss.backward()
def t(m, n=300):
    s = time.perf_counter()
    for _ in range(n): step(m)
    return (time.perf_counter() - s) / n * 1e6
for m in models.values():
    for _ in range(30): step(m)
res = {v: [] for v in models}
for _ in range(7):
    for v, m in models.items():
        res[v].append(t(m))
for v in res:
    print(f"{v:10s} {statistics.median(res[v]):8.1f} us/step  {[round(x) for x in res[v]]}")
