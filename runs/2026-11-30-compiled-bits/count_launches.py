"""Kernel launches a compiled MiniLM step (forward + backward graphs) issues, from the Inductor output code
the wrapper call dumped (TORCH_LOGS=output_code; wrapper/<bits>/code_<variant>.txt.gz), with the kernel
families packed adds: the seed's randint, the per-call bit-shift tensor, and pmexp::philox_bits.

    python runs/2026-11-30-compiled-bits/count_launches.py > runs/2026-11-30-compiled-bits/launches.md
"""
import gzip
import re
from pathlib import Path

HERE = Path(__file__).parent
FAMILIES = {  # column: what a kernel's name starts with
    "the seed's randint": "triton_poi_fused_randint",
    "pmexp::philox_bits (user Triton kernel)": "_bits_kernel",
    "hash bits (randint inlined)": "triton_per_fused___lshift_____rshift____to_copy_add_arange_bitwise_and_bitwise_or",
    "bit shifts (arange + packed[0] & 0)": "triton_poi_fused_add_arange_bitwise_and_slice",
}
print("| bits source | variant | launches a step | " + " | ".join(FAMILIES) + " |")
print("|---|---|---|" + "---|" * len(FAMILIES))
for bits in ("philox", "hash"):
    for variant in ("standard", "packed"):
        code = gzip.open(HERE / "wrapper" / bits / f"code_{variant}.txt.gz", "rt").read()
        launches = re.findall(r"(\w+)\.run\(", code)
        counts = [sum(name.startswith(family) for name in launches) for family in FAMILIES.values()]
        print(f"| {bits} | {variant} | {len(launches)} | " + " | ".join(map(str, counts)) + " |")
