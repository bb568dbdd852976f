"""Which first launches can a CUDA-graph capture take, in a fresh process with Python's GC off (so no old graph
is destroyed mid-capture)? Each probe runs in its own process; prints one line per probe.

    python runs/2026-11-30-compiled-native/capture_probe.py

Why: calls 1-2 failed graph tests at moving places ("operation failed due to a previous error during capture",
with "operation not permitted when stream is capturing (function reset)" warnings, which CUDAGraph::reset prints:
an old graph destroyed during the capture). Two candidate causes: kernels loaded lazily inside a capture (torch's
randint, a Triton kernel compiled there), or the cyclic GC collecting an earlier test's graphs mid-capture (torch
2.11's torch.cuda.graph no longer calls gc.collect() on entry unless torch.compiler.config.force_cudagraph_gc).
"""
import subprocess
import sys

PROBES = {
    "randint first launched inside a capture": """
x = torch.empty(1, device="cuda")
with torch.cuda.graph(g):
    s = torch.randint(0, 2**62, (1,), device="cuda", dtype=torch.int64)
""",
    "a Triton kernel compiled and first launched inside a capture": """
import importlib, sys, tempfile, pathlib
folder = tempfile.mkdtemp()  # Triton reads a kernel's source from its file
pathlib.Path(folder, "probe_kernel.py").write_text(
    "import triton\\nimport triton.language as tl\\n@triton.jit\\ndef k(p):\\n    tl.store(p, tl.load(p) + 1)\\n")
sys.path.insert(0, folder)
k = importlib.import_module("probe_kernel").k
x = torch.zeros(1, device="cuda")
with torch.cuda.graph(g):
    k[(1,)](x)
""",
    "an old graph in a reference cycle collected during a capture": """
import gc
old = torch.cuda.CUDAGraph()
y = torch.zeros(1 << 20, device="cuda")
with torch.cuda.graph(old):
    z = y * 2
cycle = [old, z]
cycle.append(cycle)
del old, z, cycle
with torch.cuda.graph(g):
    w = y + 1
    gc.collect()
""",
}
PROLOGUE = "import gc, torch\ngc.disable()\ntorch.zeros(1, device='cuda')\ng = torch.cuda.CUDAGraph()\n"
EPILOGUE = "\ng.replay(); torch.cuda.synchronize(); print('ok')\n"

for name, body in PROBES.items():
    run = subprocess.run([sys.executable, "-c", PROLOGUE + body + EPILOGUE], capture_output=True, text=True)
    last = (run.stdout.strip().splitlines() or run.stderr.strip().splitlines() or ["?"])[-1]
    print(f"{name}: rc={run.returncode} {last[:200]}", flush=True)
