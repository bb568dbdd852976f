"""cProfile of host_model.py's packed model (argv[1]: standard or packed): Python calls a step and
pmexp's own frames. python runs/2026-11-30-fuse-policy/cpu_host/prof_model.py packed"""
import cProfile
import io
import pathlib
import pstats
import sys

exec(pathlib.Path(__file__).with_name("host_model.py").read_text().split("models = {v")[0])


def step(m):
    m(input_ids=ids, labels=labels).loss.backward()


m = build(sys.argv[1])
for _ in range(30):
    step(m)
pr = cProfile.Profile()
pr.enable()
for _ in range(300):
    step(m)
pr.disable()
s = io.StringIO()
pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(40)
print("\n".join(line for line in s.getvalue().splitlines() if "function calls" in line or "pmexp" in line))
