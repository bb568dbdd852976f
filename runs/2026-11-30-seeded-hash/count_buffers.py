"""Count the buffers Inductor's output code allocates at the attention probabilities' size or more.

    python runs/2026-11-30-seeded-hash/count_buffers.py code.log HEADS SEQ

Reads a `TORCH_LOGS=output_code` log; prints, per generated module (forward, backward ...), the
count of buffers by dtype whose element count is at least HEADS x SEQ x SEQ: one sample's attention
probabilities (the int64 partial index the old hash stored had that shape, (1, heads, S, S)).
"""

import math
import re
import sys

path, heads, seq = sys.argv[1], *map(int, sys.argv[2:4])
probs = heads * seq * seq
text = open(path).read()
modules = re.split(r"Output code written to|async_compile = AsyncCompile\(\)", text)
alloc = re.compile(r"(buf\d+) = empty_strided_\w+\(\(([\d, ]*)\), \([\d, ]*\), torch\.(\w+)\)")
for i, code in enumerate(modules):
    counts: dict[str, int] = {}
    for _, sizes, dtype in alloc.findall(code):
        if math.prod(int(n) for n in sizes.replace(" ", "").split(",") if n) >= probs:
            counts[dtype] = counts.get(dtype, 0) + 1
    if counts:
        print(f"module {i}: {counts} (buffers of >= {probs:,} elements)")
