#!/usr/bin/env bash
# Ran 2026-11-30 at 3c2d3f5 (branch compiled-hash-bits) once per PMEXP_COMPILED_BITS: runs/2026-11-30-compiled-bits
# (wrapper/, launches.md; its host-us table came out as noise).
# Where compiled packed's extra host time goes (MiniLM fp32 compiled packed 0.861x of standard,
# same device time, 492 kernels a step to 433: README.md of ../2026-11-30-tempo-ln-native). Two answers:
# 1. Host us per call of one compiled dropout, forward+sum+backward on 4096 elements (the GPU keeps up), by
#    variant: standard, packed, seeded (the compiled twin of the eager host table).
# 2. Inductor's generated wrapper for the MiniLM step, standard and packed (TORCH_LOGS=output_code into
#    $OUT/code_<variant>.txt): per variant the count of kernel launches, of extern calls, and of the
#    lines that draw packed's seed (randint) and call pmexp::philox_bits, which say whether philox_bits
#    runs inlined as an Inductor kernel or as a Python custom op, and what else each call launches.
# ~3 min on nvidia-h200 (cold Inductor cache). device tool, carry .carry/whl:
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-30-compiled-minilm/wrapper.sh
source runs/lanes.sh
timeout 200 python3 - > "$OUT/host_compiled.txt" 2>&1 <<'PY'
import statistics, time, torch
from pmexp.dropout import PackedDropout
for variant in ("standard", "packed", "seeded", "standard", "packed", "seeded"):
    torch._dynamo.reset()
    layer = torch.compile(PackedDropout(0.1, variant=variant).train(), fullgraph=True)
    x = torch.randn(4096, device="cuda", requires_grad=True)
    def call(): layer(x).sum().backward()
    for _ in range(20): call()
    torch.cuda.synchronize(); times = []
    for _ in range(200):
        start = time.perf_counter(); call(); times.append((time.perf_counter() - start) * 1e6)
    torch.cuda.synchronize()
    print(f"{variant}: compiled dropout forward+sum+backward, host us per call (median of 200): {statistics.median(times):.1f}")
PY
cat "$OUT/host_compiled.txt" | grep "us per call" || tail -5 "$OUT/host_compiled.txt"
for v in standard packed; do
  TORCH_LOGS=output_code timeout 200 python3 -c "
import torch
from pmexp.bench.step import _build_model
model, inputs, _ = _build_model('minilm_mrpc', '$v')
torch.compile(model)(**inputs).loss.backward(); torch.cuda.synchronize()" > "$OUT/code_$v.txt" 2>&1
  echo "$v: launches $(grep -c '\.run(' $OUT/code_$v.txt), extern $(grep -c 'extern_kernels\.\|torch\.ops\.' $OUT/code_$v.txt), randint $(grep -c -i 'randint' $OUT/code_$v.txt), philox_bits $(grep -c 'philox_bits' $OUT/code_$v.txt)"
done
grep -n -m 12 "philox_bits\|randint" "$OUT/code_packed.txt" | cut -c1-200
