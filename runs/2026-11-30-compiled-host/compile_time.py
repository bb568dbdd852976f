"""What merging compiled packed's draws costs at compile time: first-step time and Inductor kernels generated.

    python runs/2026-11-30-compiled-host/compile_time.py --out OUT/compile_time.json     # ~3 min on an H200

Compiled MiniLM fp32 S128 B32 (the bench's cell), one process per model, each with empty Inductor and Triton
caches: standard, packed with its Inductor options (draws merged), packed without them (a draw per dropout).
The merged draw's slices sit at a different offset per dropout, which Inductor writes into each kernel as a
constant, so layers that shared a kernel may each get their own. Per model: the first step's seconds (trace,
compile, run), the second's, and Inductor's generated-kernel count (``torch._inductor.metrics``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

MODELS = {"standard": ("standard", True), "packed merged": ("packed", True), "packed per draw": ("packed", False)}


def one(variant: str, merged: bool) -> dict:
    """In this process (fresh caches set by the caller): build, compile, time the first two steps."""
    import torch
    from torch._inductor import metrics

    from pmexp.bench.step import build_cell_model
    from pmexp.dropout.traced import inductor_options

    model, inputs, _ = build_cell_model("minilm_mrpc", variant, "cuda")
    compiled = torch.compile(model, options=(inductor_options(variant) if merged else {}) or None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, foreach=True)
    times = []
    for _ in range(2):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        compiled(**inputs).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {"first_step_s": times[0], "second_step_s": times[1], "generated_kernels": metrics.generated_kernel_count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--one", nargs=2, metavar=("VARIANT", "MERGED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1] == "1")))
        return
    rows = {}
    for name, (variant, merged) in MODELS.items():
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": f"{cache}/inductor", "TRITON_CACHE_DIR": f"{cache}/triton"}
            done = subprocess.run([sys.executable, __file__, "--out", args.out, "--one", variant, str(int(merged))],
                                  env=env, capture_output=True, text=True, check=True)
            rows[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(name, rows[name], flush=True)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
