"""cProfile of host_model.py's model (argv[1]: standard or packed): Python calls a step and pmexp's frames.

    cd runs/2026-11-30-fuse-policy/cpu_host && python prof_model.py packed
"""

import cProfile
import io
import pstats
import sys

from host_model import build, step

model = build(sys.argv[1])
for _ in range(30):
    step(model)
profiler = cProfile.Profile()
profiler.enable()
for _ in range(300):
    step(model)
profiler.disable()
out = io.StringIO()
pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(40)
print("\n".join(line for line in out.getvalue().splitlines() if "function calls" in line or "pmexp" in line))
